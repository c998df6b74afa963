"""Bad input to the attention API: each row is (call, exception, message regex)."""

import jax.numpy as jnp
import pytest

import flowjax_lab as fl
from flowjax_lab.fields import Attention, PiecewiseConstant, residual_transformer

I2, I3 = jnp.eye(2), jnp.eye(3)
X = jnp.ones((4, 2)) / jnp.sqrt(2.0)
H2 = jnp.stack([I2, I2])
COV = jnp.eye(2)

CASES = [
    # Attention: shapes of Q, K, V, output, heads, mask, options
    (lambda: Attention(jnp.ones(2), I2, I2), ValueError, r"`Q` must have shape \(k, d\)"),
    (lambda: Attention(I2, I3, I2), ValueError, r"`K` must have the shape of `Q`"),
    (lambda: Attention(I2, I2, jnp.ones((2, 3))), ValueError, r"`V` must map dimension d = 2"),
    (lambda: Attention(I2, I2, jnp.ones((3, 2))), ValueError, r"pass an `output` projection"),
    (lambda: Attention(I2, I2, jnp.ones((3, 2)), output=jnp.ones((2, 2))), ValueError,
     r"`output` must have shape \(d, e\) = \(2, 3\)"),
    (lambda: Attention(H2, I2, I2), ValueError, r"`K` must have 3 axes like `Q`"),
    (lambda: Attention(H2, jnp.stack([I2] * 3), H2), ValueError, r"head axes disagree"),
    (lambda: Attention(I2, I2, I2, normalization="softmx"), ValueError,
     r"Unknown `normalization`.*Did you mean 'softmax'"),
    (lambda: Attention(I2, I2, I2, normalization="sinkhorn", sinkhorn_iterations=0), ValueError,
     r"`sinkhorn_iterations` must be an integer >= 1"),
    (lambda: Attention(I2, I2, I2, sinkhorn_iterations=1.5), TypeError,
     r"`sinkhorn_iterations` must be an integer"),
    (lambda: Attention(I2, I2, I2, chunk_size=0), ValueError, r"`chunk_size`"),
    (lambda: Attention(I2, I2, I2, memory_budget=0), ValueError, r"`memory_budget`"),
    (lambda: Attention(I2, I2, I2, mask=jnp.ones(4)), ValueError, r"`mask` must be a boolean"),
    (lambda: Attention(I2, I2, I2, mask=jnp.ones(5, bool))(0.0, X), ValueError,
     r"`mask` has length 5 but the cloud `x` has 4"),
    (lambda: Attention(I2, I2, I2)(0.0, jnp.ones((4, 3))), ValueError, r"`x`.*d = 2"),
    (lambda: Attention(I2, I2, I2)(0.0, jnp.ones(4)), ValueError, r"`x`.*\(n, d\)"),
    (lambda: Attention(lambda t: "no", I2, I2), TypeError, r"`Q` must be an array or a function"),
    (lambda: PiecewiseConstant(jnp.ones(())), ValueError, r"`values` must have a leading layer"),
    (lambda: PiecewiseConstant(jnp.ones((2, 2)), t0=1.0, t1=0.0), ValueError, r"`t1` must be >"),
    # residual_transformer
    (lambda: residual_transformer(Attention(I2, I2, I2), X, 0), ValueError, r"`layers`"),
    (lambda: residual_transformer(Attention(I2, I2, I2), X, 3, t0=1.0, t1=0.0), ValueError,
     r"`t1` must be >= `t0`"),
    # theory
    (lambda: fl.theory.attention_covariance(COV, I2, I3, I2, jnp.ones(2)), ValueError,
     r"`Q` and `K` must share a shape"),
    (lambda: fl.theory.attention_covariance(COV, I3, I3, I3, jnp.ones(2)), ValueError,
     r"act on dimension 3 but `cov0` is 2 x 2"),
    (lambda: fl.theory.attention_covariance(COV, I2, I2, jnp.ones((2, 3)), jnp.ones(2)),
     ValueError, r"`V` must have shape \(d, d\)"),
    (lambda: fl.theory.attention_covariance(-COV, I2, I2, I2, jnp.ones(2)), ValueError,
     r"`cov0` must be positive definite"),
    (lambda: fl.theory.attention_covariance(COV, I2, I2, I2, jnp.array([0.0, 2.0, 1.0])),
     ValueError, r"`ts` must be increasing"),
    (lambda: fl.theory.attention_covariance_identity(COV, I2, I2, jnp.array([-1.0])),
     ValueError, r"`ts` must be"),
    # clustering
    (lambda: fl.clustering.clustered_fraction(X[:1]), ValueError, r"at least two tokens"),
    (lambda: fl.clustering.clustered_fraction(X, threshold=1.5), ValueError,
     r"`threshold` must be a cosine"),
    (lambda: fl.clustering.cluster_count(jnp.ones(3)), ValueError, r"`x`.*\(n, d\)"),
    (lambda: fl.clustering.attention_energy(X, -1.0), ValueError, r"`beta` must be > 0"),
]


@pytest.mark.parametrize("call,exception,message", CASES)
def test_bad_input(call, exception, message):
    with pytest.raises(exception, match=message):
        call()
