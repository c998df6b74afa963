"""MMD and energy distance between samples: against the Gaussian closed form (error shrinking with
n), zero on identical clouds, symmetric, permutation invariant, chunking invisible, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl

MEAN0, MEAN1 = jnp.zeros(2), jnp.array([0.7, -0.3])
COV0 = jnp.array([[1.0, 0.3], [0.3, 0.6]])
COV1 = jnp.array([[0.5, -0.2], [-0.2, 1.4]])


def test_mmd_converges_to_the_gaussian_closed_form(getkey):
    exact = fl.theory.gaussian_mmd_squared(MEAN0, COV0, MEAN1, COV1, bandwidth=0.8)
    keys = jax.random.split(getkey(), 8)
    errors = []
    for n in (100, 1600):
        estimates = [fl.metrics.mmd_squared(fl.Gaussian(MEAN0, COV0).sample(k0, n),
                                            fl.Gaussian(MEAN1, COV1).sample(k1, n),
                                            bandwidth=0.8, chunk_size=256)
                     for k0, k1 in keys.reshape(4, 2)]
        errors.append(float(jnp.sqrt(jnp.mean((jnp.array(estimates) - exact) ** 2))))
    assert float(exact) > 0.05
    # the U-statistic's error is O(1/sqrt(n)): 16x the points, about 4x smaller
    assert errors[1] < errors[0] / 2.5
    assert errors[1] < 0.1 * float(exact)


def test_gaussian_mmd_vanishes_only_for_equal_gaussians():
    assert abs(float(fl.theory.gaussian_mmd_squared(MEAN0, COV0, MEAN0, COV0))) < 1e-14
    assert float(fl.theory.gaussian_mmd_squared(MEAN0, COV0, MEAN0, COV1)) > 1e-3
    np.testing.assert_allclose(fl.theory.gaussian_mmd_squared(MEAN0, COV0, MEAN1, COV1),
                               fl.theory.gaussian_mmd_squared(MEAN1, COV1, MEAN0, COV0),
                               rtol=1e-13)


@pytest.mark.parametrize("metric", ["mmd_v", "energy"])
def test_discrepancies_of_empirical_measures(metric, getkey):
    measure = {"mmd_v": lambda x, y, c=7: fl.metrics.mmd_squared(x, y, bandwidth="median",
                                                                   unbiased=False, chunk_size=c),
               "energy": lambda x, y, c=7: fl.metrics.energy_distance(x, y, chunk_size=c)}[metric]
    x = jax.random.normal(getkey(), (30, 3))
    y = jax.random.normal(getkey(), (23, 3)) + 0.5
    value = measure(x, y)
    assert float(value) > 0
    assert abs(float(measure(x, x))) < 1e-12
    np.testing.assert_allclose(measure(y, x), value, rtol=1e-12)
    np.testing.assert_allclose(measure(x[jax.random.permutation(getkey(), 30)], y), value,
                               rtol=1e-12)
    np.testing.assert_allclose(measure(x, y, 1000), value, rtol=1e-12)  # one chunk = many
    # differentiable everywhere, also on coinciding points (energy distance's |0|)
    grad = jax.grad(lambda z: measure(z, y))(x)
    direction = jax.random.normal(getkey(), x.shape)
    eps = 1e-6
    fd = (measure(x + eps * direction, y) - measure(x - eps * direction, y)) / (2 * eps)
    np.testing.assert_allclose(jnp.sum(grad * direction), fd, rtol=1e-6)
    assert bool(jnp.all(jnp.isfinite(jax.grad(lambda z: measure(z, x))(x))))


def test_energy_distance_matches_a_dense_computation(getkey):
    x, y = jax.random.normal(getkey(), (9, 2)), jax.random.normal(getkey(), (5, 2))
    dist = lambda a, b: np.linalg.norm(np.asarray(a)[:, None] - np.asarray(b)[None], axis=-1)
    dense = 2 * dist(x, y).mean() - dist(x, x).mean() - dist(y, y).mean()
    np.testing.assert_allclose(fl.metrics.energy_distance(x, y, chunk_size=2), dense,
                               rtol=1e-12)


def test_dtype_kept_and_jit(getkey):
    x = jax.random.normal(getkey(), (20, 2), dtype=jnp.float32)
    y = jax.random.normal(getkey(), (20, 2), dtype=jnp.float32)
    assert fl.metrics.mmd_squared(x, y).dtype == jnp.float32
    assert fl.metrics.energy_distance(x, y).dtype == jnp.float32
    np.testing.assert_allclose(jax.jit(fl.metrics.energy_distance)(x, y),
                               fl.metrics.energy_distance(x, y), rtol=1e-6)


X = jnp.ones((4, 2))
ROWS = [
    (lambda: fl.metrics.mmd_squared(jnp.ones(3), X), ValueError, "`x` must be a particle cloud"),
    (lambda: fl.metrics.mmd_squared(X, jnp.ones((4, 3))), ValueError, "`y` must have dimension"),
    (lambda: fl.metrics.mmd_squared(X, X, bandwidth=0.0), ValueError, "`bandwidth` must be > 0"),
    (lambda: fl.metrics.mmd_squared(X, X, bandwidth="mean"), ValueError, "`bandwidth`"),
    (lambda: fl.metrics.mmd_squared(X[:1], X), ValueError, "two points per cloud"),
    (lambda: fl.metrics.mmd_squared(X, X, chunk_size=0), ValueError, "`chunk_size`"),
    (lambda: fl.metrics.energy_distance(X, X.at[0, 0].set(jnp.nan)), ValueError,
     "`y` contains NaN"),
    (lambda: fl.metrics.median_bandwidth(X, X, max_points=1), ValueError, "`max_points`"),
    (lambda: fl.theory.gaussian_mmd_squared(MEAN0, COV0, MEAN1, jnp.ones((2, 2)) * -1),
     ValueError, "`cov1` must be positive semi-definite"),
    (lambda: fl.theory.gaussian_mmd_squared(jnp.zeros(3), COV0, MEAN1, COV1), ValueError,
     r"`mean0` must have shape \(2,\)"),
    (lambda: fl.theory.gaussian_mmd_squared(MEAN0, COV0, MEAN1, COV1, bandwidth=-1.0),
     ValueError, "`bandwidth` must be > 0"),
]


@pytest.mark.parametrize(("thunk", "error", "match"), ROWS)
def test_bad_input(thunk, error, match):
    with pytest.raises(error, match=match):
        thunk()
