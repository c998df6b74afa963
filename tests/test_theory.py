"""Closed forms of the theory module checked against their defining properties, in float64:
the Bures geodesic and Monge map, the Bures-Wasserstein distance, flow matching between
Gaussians and the heat flow. (Ott-jax cross-checks live in test_transport.py.)"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab.theory import (
    bures_geodesic,
    bures_monge_map,
    bures_w2_squared,
    flow_matching_gaussian,
    flow_matching_map,
    heat_covariance,
)


def _random_cov(seed, d=3, floor=0.2):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return jnp.asarray(a @ a.T / d + floor * np.eye(d))


COV0, COV1 = _random_cov(0), _random_cov(1)
ZERO = jnp.zeros(3)


def w2(cov_a, cov_b):
    return float(jnp.sqrt(bures_w2_squared(ZERO, cov_a, ZERO, cov_b)))


def test_bures_geodesic_endpoints():
    np.testing.assert_allclose(bures_geodesic(COV0, COV1, 0.0), COV0, atol=1e-12)
    np.testing.assert_allclose(bures_geodesic(COV0, COV1, 1.0), COV1, atol=1e-10)


def test_bures_geodesic_has_constant_speed():
    # A constant-speed geodesic: W2(cov0, cov_t) = t W2(cov0, cov1), W2(cov_t, cov1) = (1-t) W2.
    total = w2(COV0, COV1)
    assert total > 0.1
    for t in (0.1, 0.3, 0.5, 0.8):
        cov_t = bures_geodesic(COV0, COV1, t)
        assert np.all(np.linalg.eigvalsh(np.asarray(cov_t)) > 0)
        np.testing.assert_allclose(w2(COV0, cov_t), t * total, rtol=1e-7)
        np.testing.assert_allclose(w2(cov_t, COV1), (1 - t) * total, rtol=1e-7)
    # Geodesics compose: the geodesic from cov_s to cov1, at r, is cov_{s + r(1 - s)}.
    s, r = 0.3, 0.5
    np.testing.assert_allclose(bures_geodesic(bures_geodesic(COV0, COV1, s), COV1, r),
                               bures_geodesic(COV0, COV1, s + r * (1 - s)), atol=1e-9)


def test_bures_geodesic_is_not_the_linear_interpolation():
    # The midpoint of the linear interpolation is farther from both ends than half W2.
    linear = (COV0 + COV1) / 2
    total = w2(COV0, COV1)
    assert max(w2(COV0, linear), w2(linear, COV1)) > 0.5 * total * (1 + 1e-3)


@pytest.mark.parametrize("seeds", [(0, 1), (2, 3), (4, 5)])
def test_monge_map_pushes_cov0_to_cov1_and_is_symmetric_positive(seeds):
    cov0, cov1 = _random_cov(seeds[0], d=4), _random_cov(seeds[1], d=4)
    t = np.asarray(bures_monge_map(cov0, cov1))
    np.testing.assert_allclose(t, t.T, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(t) > 0)
    np.testing.assert_allclose(t @ np.asarray(cov0) @ t, cov1, atol=1e-10)
    # The inverse map is the map back.
    np.testing.assert_allclose(np.asarray(bures_monge_map(cov1, cov0)) @ t, np.eye(4), atol=1e-9)
    # Its transport cost E|x - T x|^2 under N(0, cov0) is the squared W2.
    cost = np.trace(np.asarray(cov0)) + np.trace(np.asarray(cov1)) - 2 * np.trace(t @ cov0)
    zero = jnp.zeros(4)
    np.testing.assert_allclose(cost, bures_w2_squared(zero, cov0, zero, cov1), rtol=1e-9)


def test_monge_map_to_a_singular_target():
    # cov1 of rank 1 (allowed): T is positive semi-definite and still pushes cov0 to cov1.
    v = jnp.array([[1.0], [2.0], [-1.0]])
    cov1 = v @ v.T
    t = np.asarray(bures_monge_map(COV0, cov1))
    np.testing.assert_allclose(t @ np.asarray(COV0) @ t, cov1, atol=1e-9)
    assert np.min(np.linalg.eigvalsh(t)) > -1e-9
    assert np.linalg.matrix_rank(t, tol=1e-6) == 1


def test_monge_map_of_commuting_covariances_is_the_ratio_of_square_roots():
    a, b = np.array([0.5, 2.0, 1.0]), np.array([3.0, 0.2, 1.0])
    rotation = np.linalg.qr(np.random.default_rng(7).normal(size=(3, 3)))[0]
    cov0 = jnp.asarray(rotation @ np.diag(a) @ rotation.T)
    cov1 = jnp.asarray(rotation @ np.diag(b) @ rotation.T)
    np.testing.assert_allclose(bures_monge_map(cov0, cov1),
                               rotation @ np.diag(np.sqrt(b / a)) @ rotation.T, atol=1e-12)


def test_bures_w2_squared_closed_form_for_commuting_covariances():
    m0, m1 = jnp.array([1.0, 0.0, -1.0]), jnp.array([0.0, 2.0, 0.5])
    a, b = np.array([0.5, 2.0, 1.0]), np.array([3.0, 0.2, 1.0])
    expected = np.sum((np.asarray(m0) - np.asarray(m1)) ** 2) + np.sum(
        (np.sqrt(a) - np.sqrt(b)) ** 2)
    np.testing.assert_allclose(
        bures_w2_squared(m0, jnp.diag(jnp.asarray(a)), m1, jnp.diag(jnp.asarray(b))), expected,
        rtol=1e-12)
    # The same covariances rotated together: W2 is invariant under a common isometry.
    rotation = jnp.asarray(np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))[0])
    rotated = [rotation @ jnp.diag(jnp.asarray(c)) @ rotation.T for c in (a, b)]
    np.testing.assert_allclose(bures_w2_squared(rotation @ m0, rotated[0], rotation @ m1,
                                                rotated[1]), expected, rtol=1e-10)
    # One dimension: (m0 - m1)^2 + (s0 - s1)^2.
    np.testing.assert_allclose(
        bures_w2_squared(jnp.array([1.0]), jnp.array([[4.0]]), jnp.array([-1.0]),
                         jnp.array([[9.0]])), 4.0 + 1.0, rtol=1e-12)


def test_bures_w2_is_a_metric():
    m = [jnp.asarray(np.random.default_rng(s).normal(size=3)) for s in range(3)]
    c = [_random_cov(10 + s) for s in range(3)]
    d = lambda i, j: float(jnp.sqrt(bures_w2_squared(m[i], c[i], m[j], c[j])))
    np.testing.assert_allclose(d(0, 1), d(1, 0), rtol=1e-10)
    assert d(0, 0) < 1e-6 and d(0, 1) > 0.1
    assert d(0, 2) <= d(0, 1) + d(1, 2) + 1e-12
    assert d(1, 2) <= d(1, 0) + d(0, 2) + 1e-12


def test_flow_matching_gaussian_endpoints():
    cov_0, a_0 = flow_matching_gaussian(COV0, COV1, 0.0)
    cov_1, a_1 = flow_matching_gaussian(COV0, COV1, 1.0)
    np.testing.assert_allclose(cov_0, COV0, atol=1e-14)
    np.testing.assert_allclose(cov_1, COV1, atol=1e-14)
    # E[X1 - X0 | X_t = x]: at t = 0, X0 = x and E X1 = 0, so -x; at t = 1, x - E X0 = x.
    np.testing.assert_allclose(a_0, -np.eye(3), atol=1e-12)
    np.testing.assert_allclose(a_1, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("t", [0.1, 0.4, 0.75])
def test_flow_matching_velocity_transports_the_covariance(t):
    # The linear field A_t moves N(0, cov_t) along the interpolant's law: the Lyapunov equation
    # d cov_t / dt = A_t cov_t + cov_t A_t^T (checked by central finite differences).
    cov_t, a_t = flow_matching_gaussian(COV0, COV1, t)
    h = 1e-5
    derivative = (flow_matching_gaussian(COV0, COV1, t + h)[0]
                  - flow_matching_gaussian(COV0, COV1, t - h)[0]) / (2 * h)
    np.testing.assert_allclose(a_t @ cov_t + cov_t @ a_t.T, derivative, rtol=1e-8, atol=1e-9)
    # And A_t cov_t = Cov(X1 - X0, X_t) = t cov1 - (1 - t) cov0 is symmetric.
    np.testing.assert_allclose(a_t @ cov_t, t * COV1 - (1 - t) * COV0, atol=1e-12)


def test_flow_matching_velocity_is_the_conditional_expectation():
    # Monte Carlo: regress X1 - X0 on X_t for independent Gaussian pairs; the slope is A_t.
    n, t = 200000, 0.6
    rng = np.random.default_rng(0)
    x0 = rng.multivariate_normal(np.zeros(3), np.asarray(COV0), size=n)
    x1 = rng.multivariate_normal(np.zeros(3), np.asarray(COV1), size=n)
    xt = (1 - t) * x0 + t * x1
    slope = np.linalg.lstsq(xt, x1 - x0, rcond=None)[0].T
    _, a_t = flow_matching_gaussian(COV0, COV1, t)
    assert np.linalg.norm(slope - np.asarray(a_t)) < 0.05 * np.linalg.norm(np.asarray(a_t))


def test_flow_matching_map_follows_the_interpolant_covariance():
    # Phi_t pushes N(0, cov0) to N(0, cov_t) at every t, not only t = 1.
    np.testing.assert_allclose(flow_matching_map(COV0, COV1, 0.0), np.eye(3), atol=1e-12)
    for t in (0.3, 0.7):
        phi = flow_matching_map(COV0, COV1, t)
        np.testing.assert_allclose(phi @ COV0 @ phi.T, flow_matching_gaussian(COV0, COV1, t)[0],
                                   atol=1e-6)


def test_heat_covariance_solves_the_heat_equation():
    # rho_t = N(m, heat_covariance(cov0, t, D)) satisfies d rho/dt = D Laplacian(rho) pointwise.
    diffusivity, mean = 0.7, jnp.array([0.5, -0.3, 0.1])

    def density(t, x):
        cov = heat_covariance(COV0, t, diffusivity)
        return jnp.exp(fl.Gaussian(mean, cov).log_prob(x[None, :])[0])

    time_derivative = jax.jit(jax.vmap(jax.grad(density, argnums=0), in_axes=(None, 0)))
    laplacian = jax.jit(jax.vmap(lambda t, x: jnp.trace(jax.hessian(density, argnums=1)(t, x)),
                                 in_axes=(None, 0)))
    points = jnp.asarray(np.random.default_rng(1).normal(size=(6, 3)))
    for t in (0.0, 0.4, 1.5):
        t = jnp.asarray(t)
        lhs, rhs = time_derivative(t, points), diffusivity * laplacian(t, points)
        assert np.all(np.abs(np.asarray(lhs)) > 1e-6)  # a non-trivial check
        np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-14)


def test_heat_covariance_semigroup_and_limits():
    s, t, diffusivity = 0.3, 0.9, 0.4
    np.testing.assert_allclose(
        heat_covariance(heat_covariance(COV0, s, diffusivity), t, diffusivity),
        heat_covariance(COV0, s + t, diffusivity), atol=1e-14)
    np.testing.assert_allclose(heat_covariance(COV0, 0.0), COV0, atol=0)
    np.testing.assert_allclose(heat_covariance(COV0, 2.0, diffusivity=0.0), COV0, atol=0)
    # A singular start (a Dirac mass) is allowed and spreads to 2 D t I.
    np.testing.assert_allclose(heat_covariance(jnp.zeros((2, 2)), 0.5, 3.0), 3.0 * np.eye(2),
                               atol=1e-15)


def test_float32_in_float32_out():
    c0, c1 = COV0.astype(jnp.float32), COV1.astype(jnp.float32)
    assert bures_geodesic(c0, c1, 0.5).dtype == jnp.float32
    assert bures_monge_map(c0, c1).dtype == jnp.float32
    assert all(a.dtype == jnp.float32 for a in flow_matching_gaussian(c0, c1, 0.5))
    assert heat_covariance(c0, 0.5).dtype == jnp.float32
    zero = jnp.zeros(3, jnp.float32)
    assert bures_w2_squared(zero, c0, zero, c1).dtype == jnp.float32
