"""Measures: Gaussian sampling moments converge at the Monte-Carlo rate, log-densities against
scipy, weighted empirical clouds, keys, dtypes and jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import flowjax_lab as fl

MEAN = jnp.array([1.0, -2.0, 0.5])
# Correlated, anisotropic: a sampler that used chol instead of chol.T, or forgot the mean, fails.
COV = jnp.array([[2.0, 0.9, -0.4], [0.9, 1.0, 0.2], [-0.4, 0.2, 0.5]])


def _moment_errors(x, mean, cov):
    """|sample mean - mean| and |sample covariance - cov|_F (in NumPy: no compilations)."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(axis=0)
    sample_cov = centred.T @ centred / x.shape[0]
    return (float(np.linalg.norm(x.mean(axis=0) - np.asarray(mean))),
            float(np.linalg.norm(sample_cov - np.asarray(cov))))


def test_gaussian_sample_moments_converge_at_the_monte_carlo_rate():
    gaussian = fl.Gaussian(MEAN, COV)
    # E|mean error|^2 = tr(cov)/n; E|cov error|_F^2 = (|cov|_F^2 + tr(cov)^2)/n (Wishart).
    cov = np.asarray(COV)
    mean_scale = np.sqrt(np.trace(cov))
    cov_scale = np.sqrt(np.sum(cov**2) + np.trace(cov) ** 2)
    errors = {}
    for n in (1000, 100000):
        runs = [_moment_errors(gaussian.sample(jax.random.key(seed), n), MEAN, COV)
                for seed in range(3)]
        mean_err, cov_err = np.mean(runs, axis=0)
        assert mean_err < 4 * mean_scale / np.sqrt(n), (n, mean_err)
        assert cov_err < 4 * cov_scale / np.sqrt(n), (n, cov_err)
        errors[n] = (mean_err, cov_err)
    # 100x more samples: errors shrink by about 10 (at least 4).
    assert errors[100000][0] < errors[1000][0] / 4
    assert errors[100000][1] < errors[1000][1] / 4


def test_gaussian_sample_is_affine_in_the_standard_normal():
    # N(m, C) = m + L z with C = L L^T: whitening the samples gives back N(0, I) draws.
    x = np.asarray(fl.Gaussian(MEAN, COV).sample(jax.random.key(0), 100000))
    chol = np.linalg.cholesky(np.asarray(COV))
    z = np.linalg.solve(chol, (x - np.asarray(MEAN)).T).T
    mean_err, cov_err = _moment_errors(z, np.zeros(3), np.eye(3))
    assert mean_err < 4 * np.sqrt(3 / 100000) and cov_err < 4 * np.sqrt(12 / 100000)


def test_log_prob_matches_scipy_in_float64():
    gaussian = fl.Gaussian(MEAN, COV)
    rng = np.random.default_rng(0)
    x = jnp.asarray(2 * rng.normal(size=(50, 3)))
    reference = multivariate_normal(np.asarray(MEAN), np.asarray(COV)).logpdf(np.asarray(x))
    np.testing.assert_allclose(gaussian.log_prob(x), reference, rtol=1e-12, atol=1e-12)
    # One dimension and the standard normal.
    x1 = jnp.asarray(rng.normal(size=(20, 1)))
    np.testing.assert_allclose(fl.Gaussian.standard(1).log_prob(x1),
                               multivariate_normal(0.0, 1.0).logpdf(np.asarray(x1[:, 0])),
                               rtol=1e-12)


def test_log_prob_is_a_normalised_density():
    # Integrate exp(log_prob) on a grid in 2-d: total mass one.
    gaussian = fl.Gaussian(jnp.array([0.3, -0.2]), jnp.array([[0.5, 0.2], [0.2, 0.4]]))
    grid = np.linspace(-5.0, 5.0, 401)
    xx, yy = np.meshgrid(grid, grid)
    points = np.stack([xx.ravel(), yy.ravel()], axis=1)
    mass = np.sum(np.exp(np.asarray(gaussian.log_prob(points)))) * (grid[1] - grid[0]) ** 2
    np.testing.assert_allclose(mass, 1.0, rtol=1e-8)


def test_standard_gaussian():
    g = fl.Gaussian.standard(4, jnp.float32)
    assert g.mean.dtype == jnp.float32 and g.cov.dtype == jnp.float32
    np.testing.assert_array_equal(g.cov, jnp.eye(4))
    assert g.dim == 4


def test_empirical_default_weights_are_uniform_and_moments_are_weighted(getkey):
    points = jax.random.normal(getkey(), (7, 2))
    uniform = fl.Empirical(points)
    np.testing.assert_allclose(uniform.weights, np.full(7, 1 / 7), rtol=1e-15)
    np.testing.assert_allclose(jnp.sum(uniform.weights), 1.0, rtol=1e-15)
    weights = jnp.asarray(np.random.default_rng(1).dirichlet(np.ones(7)))
    cloud = fl.Empirical(points, weights)
    assert (cloud.n, cloud.dim) == (7, 2)
    p, w = np.asarray(points), np.asarray(weights)
    np.testing.assert_allclose(cloud.mean(), w @ p, rtol=1e-12)
    np.testing.assert_allclose(cloud.cov(), np.cov(p.T, aweights=w, bias=True), rtol=1e-12)


def test_empirical_sampling_frequencies_follow_the_weights():
    points = jnp.arange(4.0)[:, None] * jnp.ones((1, 2))
    weights = jnp.array([0.1, 0.2, 0.3, 0.4])
    n = 100000
    draws = fl.Empirical(points, weights).sample(jax.random.key(0), n)
    assert draws.shape == (n, 2)
    counts = np.bincount(np.asarray(draws[:, 0]).astype(int), minlength=4) / n
    w = np.asarray(weights)
    assert np.all(np.abs(counts - w) < 5 * np.sqrt(w * (1 - w) / n)), counts
    # A zero weight is never drawn.
    never = fl.Empirical(points, jnp.array([0.0, 0.5, 0.5, 0.0])).sample(jax.random.key(1), 1000)
    assert set(np.unique(np.asarray(never[:, 0]))) == {1.0, 2.0}


def test_empirical_sample_moments_converge_to_the_weighted_moments(getkey):
    weights = np.random.default_rng(0).dirichlet(np.ones(20))
    cloud = fl.Empirical(jax.random.normal(getkey(), (20, 2)), weights)
    mean, cov = np.asarray(cloud.mean()), np.asarray(cloud.cov())
    errors = []
    for n in (1000, 100000):
        mean_err, _ = _moment_errors(cloud.sample(jax.random.key(n), n), mean, cov)
        errors.append(mean_err)
        assert mean_err < 5 * np.sqrt(np.trace(cov) / n)
    assert errors[1] < errors[0]


@pytest.mark.parametrize("kind", ["gaussian", "empirical"])
def test_same_key_same_samples_different_key_different(kind):
    measure = fl.Gaussian(MEAN, COV) if kind == "gaussian" else fl.Empirical(
        jnp.arange(30.0).reshape(10, 3))
    a = measure.sample(jax.random.key(3), 1000)
    b = measure.sample(jax.random.key(3), 1000)
    c = measure.sample(jax.random.key(4), 1000)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_float32_in_float32_out(getkey):
    mean32, cov32 = MEAN.astype(jnp.float32), COV.astype(jnp.float32)
    gaussian = fl.Gaussian(mean32, cov32)
    x = gaussian.sample(getkey(), 10)
    assert x.dtype == jnp.float32 and gaussian.log_prob(x).dtype == jnp.float32
    # A float64 covariance follows the float32 mean; float64 points are read in float32.
    mixed = fl.Gaussian(mean32, COV)
    assert mixed.cov.dtype == jnp.float32
    assert mixed.log_prob(x.astype(jnp.float64)).dtype == jnp.float32
    cloud = fl.Empirical(x, jnp.full(10, 0.1, jnp.float64))
    assert cloud.weights.dtype == jnp.float32
    assert cloud.sample(getkey(), 10).dtype == jnp.float32
    assert cloud.mean().dtype == jnp.float32 and cloud.cov().dtype == jnp.float32
    # Integer points become the default float.
    assert fl.Empirical(jnp.arange(6).reshape(3, 2)).points.dtype == jnp.float64


def test_jit_compatible(getkey):
    gaussian = fl.Gaussian(MEAN, COV)
    key = getkey()
    np.testing.assert_allclose(jax.jit(lambda k: gaussian.sample(k, 100))(key),
                               gaussian.sample(key, 100), rtol=1e-12)
    x = gaussian.sample(key, 100)
    np.testing.assert_allclose(jax.jit(lambda y: gaussian.log_prob(y))(x), gaussian.log_prob(x),
                               rtol=1e-12)

    # Built inside jit from traced parameters (the checks use error_if there).
    @jax.jit
    def log_prob(mean, cov, x):
        return fl.Gaussian(mean, cov).log_prob(x)

    np.testing.assert_allclose(log_prob(MEAN, COV, x), gaussian.log_prob(x), rtol=1e-12)

    @jax.jit
    def weighted_mean(points, weights):
        return fl.Empirical(points, weights).mean()

    w = jnp.asarray(np.random.default_rng(2).dirichlet(np.ones(100)))
    np.testing.assert_allclose(weighted_mean(x, w), np.asarray(w) @ np.asarray(x), rtol=1e-12)
    # Measures are pytrees: they cross a jit boundary as arguments.
    np.testing.assert_allclose(jax.jit(lambda g: g.mean)(gaussian), MEAN)


def test_traced_bad_weights_raise_at_run_time(getkey):
    x = jax.random.normal(getkey(), (4, 2))

    @jax.jit
    def make(weights):
        return fl.Empirical(x, weights).weights

    np.testing.assert_allclose(make(jnp.full(4, 0.25)), 0.25)
    with pytest.raises(Exception, match="`weights` must sum to one"):
        jax.block_until_ready(make(jnp.full(4, 0.3)))
