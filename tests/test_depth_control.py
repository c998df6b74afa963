"""Control through depth: gradients through the dynamics and the Sinkhorn divergence against
finite differences; the in-context map against the full dynamics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_lab.learn import DepthControl, DepthControlLoss


@pytest.mark.slow
def test_gradient_through_dynamics_matches_finite_differences(getkey):
    model = DepthControl.init(getkey(), 2, 3, scale=0.3)
    x0 = jax.random.normal(getkey(), (16, 2))
    y = jax.random.normal(getkey(), (16, 2)) @ jnp.array([[1.5, 0.3], [0.0, 0.4]])
    loss = DepthControlLoss(lambda k, n: x0, lambda k, n: y, 16, threshold=1e-10)
    key = getkey()
    grad = jax.grad(loss)(model, key)
    directions = jax.tree.map(lambda a: jax.random.normal(getkey(), a.shape), grad)
    eps = 1e-5
    shifted = lambda s: jax.tree.map(lambda a, b: a + s * eps * b, model, directions)
    fd = (loss(shifted(1.0), key) - loss(shifted(-1.0), key)) / (2 * eps)
    analytic = sum(jnp.sum(a * b) for a, b in zip(jax.tree.leaves(grad),
                                                   jax.tree.leaves(directions), strict=True))
    assert abs(float(fd)) > 1e-3
    np.testing.assert_allclose(analytic, fd, rtol=1e-6)


def test_in_context_map_follows_the_context_dynamics(getkey):
    model = DepthControl.init(getkey(), 2, 2, scale=0.5)
    alpha = jax.random.normal(getkey(), (12, 2))
    whole = model(alpha)
    # a query placed on a context token follows that token; the context is not disturbed
    np.testing.assert_allclose(model.in_context(alpha, alpha[3:5]), whole[3:5], rtol=1e-10)
    perm = jax.random.permutation(getkey(), 12)
    x = jax.random.normal(getkey(), (3, 2))
    np.testing.assert_allclose(model.in_context(alpha[perm], x), model.in_context(alpha, x),
                               rtol=1e-10)
