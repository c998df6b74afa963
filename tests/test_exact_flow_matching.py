"""The exact flow-matching field to an empirical target: identities, stability, memorization."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl


def _data(key, m=37, d=2):
    return 2.0 * jax.random.normal(key, (m, d))


def test_chunked_streaming_equals_single_pass_and_is_permutation_invariant(getkey):
    data, x = _data(getkey()), jax.random.normal(getkey(), (9, 2))
    whole = fl.fields.ExactFlowMatching(data, chunk_size=1000)
    chunked = fl.fields.ExactFlowMatching(data, chunk_size=8)  # 37 = 4 * 8 + 5: padded chunk
    shuffled = fl.fields.ExactFlowMatching(data[jax.random.permutation(getkey(), 37)],
                                           chunk_size=5)
    # chunk_size=None over the budget: blocks of 5 particles x 5 data points (both padded)
    blocked = fl.fields.ExactFlowMatching(data, memory_budget=(2 + 3) * 8 * 5**2)
    assert fl.fields.ExactFlowMatching(data)._block(x) == (9, 37)  # dense below the budget
    assert blocked._block(x) == (5, 5) and chunked._block(x) == (9, 8)
    for t in (0.0, 0.4, 0.97):
        for field in (chunked, shuffled, blocked):
            np.testing.assert_allclose(field(t, x), whole(t, x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t", [0.0, 0.3, 0.8, 0.999])
def test_score_and_divergence_match_autodiff(getkey, t):
    """score = grad log alpha_t and divergence = trace of the Jacobian, by autodiff."""
    weights = jax.random.dirichlet(getkey(), jnp.ones(37))
    field = fl.fields.ExactFlowMatching(_data(getkey()), weights, chunk_size=16)
    x = 2 * jax.random.normal(getkey(), (6, 2))
    grad = jax.vmap(jax.grad(lambda xi: field.log_prob(t, xi[None])[0]))(x)
    np.testing.assert_allclose(field.score(t, x), grad, rtol=1e-9, atol=1e-9)
    jac = jax.vmap(jax.jacfwd(lambda xi: field(t, xi[None])[0]))(x)
    np.testing.assert_allclose(field.divergence(t, x), jnp.trace(jac, axis1=1, axis2=2),
                               rtol=1e-7, atol=1e-7)


def test_log_prob_is_the_gaussian_mixture_density(getkey):
    data, x, t = _data(getkey(), m=5), jax.random.normal(getkey(), (4, 2)), 0.6
    field = fl.fields.ExactFlowMatching(data)
    comps = jnp.stack([fl.Gaussian(t * y, (1 - t) ** 2 * jnp.eye(2)).log_prob(x) for y in data])
    np.testing.assert_allclose(field.log_prob(t, x),
                               jax.scipy.special.logsumexp(comps, axis=0) - np.log(5), rtol=1e-12)


def test_single_point_gives_the_straight_line_field(getkey):
    y, x = jax.random.normal(getkey(), (1, 3)), jax.random.normal(getkey(), (5, 3))
    field = fl.fields.ExactFlowMatching(y)
    for t in (0.0, 0.5, 0.9):
        np.testing.assert_allclose(field(t, x), (y - x) / (1 - t), rtol=1e-12)


def test_many_gaussian_samples_approach_the_linear_gaussian_field(getkey):
    """With data ~ N(0, cov1) the empirical field converges to A_t x (theory) as m grows."""
    cov1 = jnp.array([[2.0, 0.6], [0.6, 0.5]])
    chol = jnp.linalg.cholesky(cov1)
    x = jax.random.normal(getkey(), (64, 2))
    errors = []
    for m in (100, 6400):
        data = jax.random.normal(getkey(), (m, 2)) @ chol.T
        field = fl.fields.ExactFlowMatching(data, chunk_size=800)
        row = []
        for t in (0.2, 0.5):
            _, a_t = fl.theory.flow_matching_gaussian(jnp.eye(2), cov1, t)
            x_t = x @ jnp.linalg.cholesky((1 - t) ** 2 * jnp.eye(2) + t**2 * cov1).T
            row.append(float(fl.metrics.relative_error(field(t, x_t), x_t @ a_t.T)))
        errors.append(max(row))
    assert errors[1] < 0.05
    assert errors[1] < errors[0] / 3  # O(m^-1/2): a factor 8 in expectation


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_finite_up_to_t_equal_one_where_naive_softmax_underflows(getkey, dtype):
    data = _data(getkey(), m=50).astype(dtype)
    field = fl.fields.ExactFlowMatching(data)
    x = jnp.concatenate([jax.random.normal(getkey(), (4, 2)), jnp.full((1, 2), 300.0)])
    x = x.astype(dtype)
    for t in (0.9, 1 - 1e-4, 1.0):
        v, div = field(t, x), field.divergence(t, x)
        assert v.dtype == dtype and bool(jnp.all(jnp.isfinite(v)) & jnp.all(jnp.isfinite(div)))
        # Near t = 1 the posterior sits on the nearest data point.
        nearest = data[jnp.argmin(jnp.sum((x[:, None] - data[None]) ** 2, -1), axis=1)]
        if t == 1.0:
            np.testing.assert_allclose(field.denoiser(t, x), nearest, rtol=1e-5)


def test_memorization_samples_land_on_training_points(getkey):
    """Fresh noise integrated through the exact field reproduces training points, far closer
    than fresh data from the same distribution comes to them."""
    train = fl.datasets.sample("moons", getkey(), 64)
    field = fl.fields.ExactFlowMatching(train)
    traj = fl.simulate(field, jax.random.normal(getkey(), (200, 2)), rtol=1e-6, atol=1e-6)
    assert int(traj.status) == 0
    nearest = lambda x: jnp.min(jnp.sqrt(jnp.sum((x[:, None] - train[None]) ** 2, -1)), axis=1)
    generated = nearest(traj.x1)
    fresh = nearest(fl.datasets.sample("moons", getkey(), 200))
    assert float(jnp.max(generated)) < 1e-3
    assert float(jnp.median(fresh)) > 100 * float(jnp.max(generated))
    # Samples spread over many training points rather than collapsing on a few.
    hits = jnp.argmin(jnp.sum((traj.x1[:, None] - train[None]) ** 2, -1), axis=1)
    assert len(np.unique(np.asarray(hits))) > 32
