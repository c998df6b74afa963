"""The attention field: an independent NumPy reference, chunked == dense, Sinkhorn, invariances,
masks, heads, gradients against finite differences, dtype, memory and the choice of blocks."""

import itertools

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_lab import _blocks
from flowjax_lab._blocks import choose_block
from flowjax_lab.fields import Attention, PiecewiseConstant


def numpy_attention(x, Q, K, V, W, *, normalization="softmax", causal=False, mask=None,
                    iterations=1):
    """Explicit loops over heads with the full score matrix, in float64 NumPy."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    keys = np.ones(n, bool) if mask is None else np.asarray(mask)
    visible = keys[None, :] & (np.tril(np.ones((n, n), bool)) if causal else True)
    y = np.zeros_like(x)
    for q, k, v, o in zip(Q, K, V, W, strict=True):
        s = (x @ q.T) @ (x @ k.T).T
        w = np.where(visible, np.exp(s - s.max()), 0.0)
        if normalization == "mean":
            p = np.exp(s) * visible / visible.sum(1, keepdims=True)
        else:
            p = w / w.sum(1, keepdims=True)
            for _ in range(iterations - 1 if normalization == "sinkhorn" else 0):
                columns = p.sum(0, keepdims=True)
                p = p / np.where(columns > 0, columns, 1) * n / keys.sum()
                p = p / p.sum(1, keepdims=True)
        y += p @ (x @ v.T) @ o.T
    return y


def params(key, h=2, k=3, d=4, e=None, scale=0.5):
    e = d if e is None else e
    kq, kk, kv, ko = jax.random.split(key, 4)
    shape = (lambda *s: (h, *s)) if h else (lambda *s: s)
    return (scale * jax.random.normal(kq, shape(k, d)), scale * jax.random.normal(kk, shape(k, d)),
            jax.random.normal(kv, shape(e, d)) / np.sqrt(d),
            None if e == d else jax.random.normal(ko, shape(d, e)) / np.sqrt(e))


CASES = list(itertools.product(("softmax", "mean", "sinkhorn"), (False, True)))


@pytest.mark.parametrize("normalization,causal", CASES)
def test_chunked_equals_dense_equals_numpy(getkey, normalization, causal):
    n, d = 29, 4
    x = jax.random.normal(getkey(), (n, d))
    Q, K, V, _ = params(getkey())
    mask = jnp.arange(n) % 4 != 1
    kw = dict(normalization=normalization, causal=causal, mask=mask, sinkhorn_iterations=4)
    dense = Attention(Q, K, V, **kw)(0.0, x)
    chunked = Attention(Q, K, V, chunk_size=8, **kw)(0.0, x)
    eye = np.broadcast_to(np.eye(d), (2, d, d))
    ref = numpy_attention(x, np.asarray(Q), np.asarray(K), np.asarray(V), eye,
                          normalization=normalization, causal=causal, mask=np.asarray(mask),
                          iterations=4)
    np.testing.assert_allclose(dense, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(chunked, dense, rtol=1e-12, atol=1e-13)


def test_sinkhorn_one_iteration_is_softmax(getkey):
    x = jax.random.normal(getkey(), (23, 3))
    Q, K, V, _ = params(getkey(), h=0, d=3)
    for chunk in (None, 5):
        soft = Attention(Q, K, V, chunk_size=chunk)(0.0, x)
        sink = Attention(Q, K, V, normalization="sinkhorn", sinkhorn_iterations=1,
                         chunk_size=chunk)(0.0, x)
        np.testing.assert_array_equal(sink, soft)


def test_sinkhorn_columns_converge(getkey):
    """Doubly stochastic P with V = W = I moves the mean by the mean: (1/n) sum_i v_i = mean(x).
    The gap must shrink as iterations grow (and is large for softmax)."""
    x = jax.random.normal(getkey(), (40, 2)) + 1.0
    Q, K = jnp.eye(2), jnp.array([[1.0, 0.5], [-0.5, 1.0]])
    gaps = [float(jnp.linalg.norm(jnp.mean(
        Attention(Q, K, jnp.eye(2), normalization="sinkhorn", sinkhorn_iterations=m,
                  chunk_size=16)(0.0, x), axis=0) - jnp.mean(x, axis=0))) for m in (1, 3, 30)]
    assert gaps[0] > 1e-2 and gaps[1] < gaps[0] / 2 and gaps[2] < 1e-8


@pytest.mark.parametrize("normalization", ["softmax", "mean", "sinkhorn"])
def test_permutation_equivariance(getkey, normalization):
    n = 19
    x = jax.random.normal(getkey(), (n, 4))
    perm = jax.random.permutation(getkey(), n)
    field = Attention(*params(getkey())[:3], normalization=normalization, chunk_size=6)
    np.testing.assert_allclose(field(0.0, x[perm]), field(0.0, x)[perm], rtol=1e-12, atol=1e-13)


def test_causal_mask_sees_only_the_past(getkey):
    n, i = 17, 9
    x = jax.random.normal(getkey(), (n, 4))
    later = x.at[i + 1:].set(jax.random.normal(getkey(), (n - i - 1, 4)))
    for chunk in (None, 4):
        field = Attention(*params(getkey())[:3], causal=True, chunk_size=chunk)
        a, b = field(0.0, x), field(0.0, later)
        np.testing.assert_allclose(a[: i + 1], b[: i + 1], rtol=1e-13, atol=1e-14)
        assert float(jnp.max(jnp.abs(a[i + 1:] - b[i + 1:]))) > 1e-3
    # the first token attends to itself only: v_0 = V x_0 under softmax
    Q, K, V, _ = params(getkey(), h=0)
    np.testing.assert_allclose(Attention(Q, K, V, causal=True)(0.0, x)[0], V @ x[0], rtol=1e-12)


def test_multihead_is_the_sum_of_heads_with_rectangular_projections(getkey):
    x = jax.random.normal(getkey(), (15, 4))
    Q, K, V, W = params(getkey(), h=3, k=2, d=4, e=5)
    whole = Attention(Q, K, V, output=W, chunk_size=4)(0.0, x)
    parts = sum(Attention(Q[h], K[h], V[h], output=W[h])(0.0, x) for h in range(3))
    np.testing.assert_allclose(whole, parts, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("normalization,causal", [("softmax", True), ("sinkhorn", False),
                                                  ("mean", False)])
def test_gradients_match_finite_differences(getkey, normalization, causal):
    n, d = 13, 3
    x = jax.random.normal(getkey(), (n, d))
    Q, K, V, W = params(getkey(), h=2, k=2, d=d, e=2)
    weights = jax.random.normal(getkey(), (n, d))
    mask = jnp.arange(n) != 3

    def loss(theta, y, chunk):
        q, k = theta
        field = Attention(q, k, V, output=W, normalization=normalization, causal=causal,
                          mask=mask, sinkhorn_iterations=3, chunk_size=chunk)
        return jnp.sum(weights * jnp.tanh(field(0.0, y)))

    grad_dense = jax.grad(loss, argnums=(0, 1))((Q, K), x, None)
    grad_chunk = jax.grad(loss, argnums=(0, 1))((Q, K), x, 4)
    for a, b in zip(jax.tree.leaves(grad_chunk), jax.tree.leaves(grad_dense), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # central finite differences along random directions, in float64
    dq, dx = jax.random.normal(getkey(), Q.shape), jax.random.normal(getkey(), x.shape)
    eps = 1e-5
    fd_q = (loss((Q + eps * dq, K), x, 4) - loss((Q - eps * dq, K), x, 4)) / (2 * eps)
    fd_x = (loss((Q, K), x + eps * dx, 4) - loss((Q, K), x - eps * dx, 4)) / (2 * eps)
    np.testing.assert_allclose(jnp.sum(grad_chunk[0][0] * dq), fd_q, rtol=1e-7)
    np.testing.assert_allclose(jnp.sum(grad_chunk[1] * dx), fd_x, rtol=1e-7)


def test_chunked_gradient_never_builds_an_n_by_n_array(getkey):
    n, chunk = 96, 8
    x = jax.random.normal(getkey(), (n, 4))
    Q, K, V, _ = params(getkey(), h=1)
    loss = lambda y: jnp.sum(Attention(Q, K, V, chunk_size=chunk, normalization="sinkhorn")(
        0.0, y) ** 2)
    jaxpr = jax.make_jaxpr(jax.grad(loss))(x)
    sizes = []

    def walk(jx):
        for eqn in jx.eqns:
            sizes.extend(int(np.prod(v.aval.shape)) for v in eqn.outvars
                         if hasattr(v.aval, "shape"))
            for value in eqn.params.values():
                for sub in value if isinstance(value, tuple | list) else (value,):
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        walk(sub.jaxpr)
                    elif isinstance(sub, jax.extend.core.Jaxpr):
                        walk(sub)

    walk(jaxpr.jaxpr)
    assert max(sizes) < n * n // 4, max(sizes)
    dense = jax.make_jaxpr(jax.grad(lambda y: jnp.sum(Attention(Q, K, V)(0.0, y) ** 2)))(x)
    assert any(int(np.prod(v.aval.shape)) >= n * n for e in dense.jaxpr.eqns for v in e.outvars)


def test_dtype_is_kept_and_sphere_velocity_is_tangent(getkey):
    x = jax.random.normal(getkey(), (10, 4), dtype=jnp.float32)
    Q, K, V, _ = params(getkey())  # float64 parameters
    assert Attention(Q, K, V, chunk_size=4, normalization="sinkhorn")(0.0, x).dtype == jnp.float32
    g = jax.grad(lambda z: jnp.sum(Attention(Q, K, V, chunk_size=4)(0.0, z)))(x)
    assert g.dtype == jnp.float32
    x = x.astype(jnp.float64)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    field = Attention(2.0 * jnp.eye(4), jnp.eye(4), jnp.eye(4), sphere=True)
    np.testing.assert_allclose(jnp.sum(field(0.0, x) * x, axis=1), 0.0, atol=1e-13)
    # off the sphere the field is extended radially, the same eagerly and under jit
    scaled = x * jnp.linspace(0.5, 2.0, 10)[:, None]
    np.testing.assert_allclose(field(0.0, scaled), field(0.0, x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(jax.jit(lambda y: field(0.0, y))(scaled), field(0.0, x), rtol=1e-13,
                               atol=1e-14)


def test_piecewise_constant_depth_parameters(getkey):
    values = jax.random.normal(getkey(), (4, 2, 2))
    theta = PiecewiseConstant(values)
    for layer in range(4):
        np.testing.assert_array_equal(theta(layer / 4), values[layer])
        np.testing.assert_array_equal(theta((layer + 0.99) / 4), values[layer])
    x = jax.random.normal(getkey(), (6, 2))
    layered = Attention(theta, jnp.eye(2), jnp.eye(2))
    np.testing.assert_allclose(layered(0.6, x), Attention(values[2], jnp.eye(2), jnp.eye(2))(
        0.6, x), rtol=1e-14)
    g = jax.grad(lambda v: jnp.sum(Attention(PiecewiseConstant(v), jnp.eye(2), jnp.eye(2))(
        0.3, x)))(values)
    others = g[jnp.array([0, 2, 3])]
    assert float(jnp.max(jnp.abs(g[1]))) > 0 and float(jnp.max(jnp.abs(others))) == 0


def test_choose_block_is_dense_below_the_budget_and_blocks_above(monkeypatch):
    assert choose_block(1000, 1000, 4, jnp.float32) is None  # 16 MB of 128 MiB: dense
    assert choose_block(16_384, 16_384, 4, jnp.float32) == _blocks.MAX_BLOCK == 1024
    assert choose_block(60_000, 60_000, 4, jnp.float32) == 1017  # 59 even blocks, little padding
    assert choose_block(100, 100, 1, jnp.float64, budget_bytes=100 * 100 * 8) is None
    assert choose_block(100, 100, 1, jnp.float64, budget_bytes=100 * 100 * 8 - 1) == 50
    with pytest.raises(ValueError, match="`budget_bytes` must be a positive integer"):
        choose_block(10, 10, 1, jnp.float32, budget_bytes=0)
    monkeypatch.setattr(_blocks, "PAIR_BUDGET_BYTES", 1234)  # read when a field is built
    assert Attention(jnp.eye(2), jnp.eye(2), jnp.eye(2)).memory_budget == 1234
    assert Attention(jnp.eye(2), jnp.eye(2), jnp.eye(2), chunk_size=7).chunk_size == 7


def test_default_call_above_the_budget_streams_with_the_dense_values_and_gradients(getkey):
    """chunk_size=None above the memory budget: the values and gradients of the dense path, in a
    compiled program far below the n^2 numbers of the dense scores."""
    n, d = 256, 4
    x = jax.random.normal(getkey(), (n, d))
    Q, K, V, _ = params(getkey(), h=1, d=d)
    budget = 4 * 8 * 16**2  # blocks of 16 x 16 float64 pairs
    assert choose_block(n, n, 4, x.dtype, budget) == 16

    def loss(y, memory_budget):
        field = Attention(Q, K, V, memory_budget=memory_budget)
        return jnp.sum(jnp.tanh(field(0.0, y)))

    streamed, dense = (jax.jit(jax.value_and_grad(lambda y, b=b: loss(y, b))).lower(x).compile()
                       for b in (budget, 2**40))
    for a, b in zip(streamed(x), dense(x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    temp = [f.memory_analysis().temp_size_in_bytes for f in (streamed, dense)]
    scores = n * n * 8  # bytes of one (n, n) float64 array
    assert temp[0] < scores / 8 and temp[1] > 3 * scores, temp
