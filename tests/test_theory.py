"""Closed forms of the theory module checked against their defining properties, in float64:
the Bures geodesic and Monge map, the Bures-Wasserstein distance, flow matching between
Gaussians, the heat flow, the speed of the linear-network Riccati flow (the paper's risk) and the
time convention (`t0`) of the moment ODEs. (Ott-jax cross-checks live in test_transport.py.)"""

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


SZZ = jnp.array([[1.0, 0.3, 0.0], [0.3, 0.8, 0.1], [0.0, 0.1, 0.5]])
SYZ = jnp.array([[1.0, -0.5, 0.3], [0.2, 0.8, -0.4]])
NEURONS0 = _random_cov(7, d=5, floor=0.1)


def linear_network(ts, **kwargs):
    return fl.theory.linear_network_covariance(NEURONS0, SZZ, SYZ, jnp.asarray(ts), rtol=1e-11,
                                               atol=1e-11, **kwargs)


@pytest.mark.parametrize("risk_scale", [0.5, 2.0])
def test_linear_network_risk_scale_is_a_change_of_clock(risk_scale):
    # R = c E|y - Mz|^2 moves each neuron c times as fast as the paper's risk (c = 1): the
    # former 1/2 E|y - Mz|^2 at time 2t is the default at time t
    ts = jnp.linspace(0.0, 6.0, 7)
    np.testing.assert_allclose(linear_network(ts / risk_scale, risk_scale=risk_scale),
                               linear_network(ts), atol=1e-8)
    np.testing.assert_allclose(linear_network(ts), linear_network(ts, risk_scale=1.0), atol=0)


@pytest.mark.parametrize("risk_scale", [1.0, 0.5])
def test_linear_network_dissipates_its_risk_as_a_wasserstein_gradient_flow(risk_scale):
    # Along a Wasserstein gradient flow dR/dt = -E|grad_theta dR/dmu(theta)|^2. With the first
    # variation v^T G u, G = dR/dM (from jax.grad of R(M) = c E|y - Mz|^2 written out, up to a
    # constant), the squared speed is tr(G Suu G^T) + tr(G^T Svv G). This fixes the factor 2c of
    # the paper's Riccati ODE independently of the solver's right-hand side.
    def risk(m):
        return risk_scale * (jnp.trace(m @ SZZ @ m.T) - 2 * jnp.sum(SYZ * m))

    h = 1e-4
    for t in (0.0 + h, 0.4, 1.2):
        before, now, after = linear_network([t - h, t, t + h], risk_scale=risk_scale)
        rate = (risk(after[3:, :3]) - risk(before[3:, :3])) / (2 * h)
        g = jax.grad(risk)(now[3:, :3])
        speed = jnp.trace(g @ now[:3, :3] @ g.T) + jnp.trace(g.T @ now[3:, 3:] @ g)
        assert float(speed) > 1e-5  # not yet at rest
        np.testing.assert_allclose(rate, -speed, rtol=1e-6)


def test_linear_network_reaches_least_squares_at_the_papers_rate():
    # the predictor's error decays like exp(-1.44 t) for this problem under the paper's risk
    # (half that under 1/2 E|y - Mz|^2): the experiment's t1 rests on it
    least_squares = SYZ @ jnp.linalg.inv(SZZ)
    sigmas = fl.theory.linear_network_covariance(0.3 * jnp.eye(5), SZZ, SYZ,
                                                 jnp.array([5.0, 10.0]), rtol=1e-12, atol=1e-12)
    errors = [float(jnp.linalg.norm(s[3:, :3] - least_squares)) for s in sigmas]
    assert 1.3 < np.log(errors[0] / errors[1]) / 5 < 1.6, errors


def _attention(ts, **kwargs):
    q = jnp.array([[1.0, 0.5, 0.0], [-0.3, 0.8, 0.2]])
    k = jnp.array([[0.7, -0.4, 0.1], [0.2, 0.9, -0.3]])
    return fl.theory.attention_covariance(COV0, q, k, jnp.eye(3), jnp.asarray(ts), rtol=1e-11,
                                          atol=1e-11, **kwargs)


def _attention_identity(ts, **kwargs):
    q = jnp.array([[1.0, 0.5, 0.0], [-0.3, 0.8, 0.2]])
    k = jnp.array([[0.7, -0.4, 0.1], [0.2, 0.9, -0.3]])
    return fl.theory.attention_covariance_identity(COV0, q, k, jnp.asarray(ts), **kwargs)


def _covs(result):
    return result if isinstance(result, jax.Array) else result.covs


@pytest.mark.parametrize("solve", [linear_network, _attention, _attention_identity],
                         ids=["linear_network", "attention", "attention_identity"])
def test_initial_law_at_t0_shifts_the_solution(solve):
    # the convention of `theory`: cov0 is the law at t0 (default 0), `ts` are output times >= t0
    ts = jnp.array([0.0, 0.05, 0.1, 0.2])
    t0 = 1.75
    base, shifted = solve(ts), solve(ts + t0, t0=t0)
    np.testing.assert_allclose(_covs(shifted), _covs(base), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(_covs(base)[0], _covs(solve(ts, t0=0.0))[0], atol=0)
    np.testing.assert_allclose(_covs(base)[0], COV0 if solve is not linear_network else NEURONS0,
                               atol=1e-12)
    # `ts` need not start at t0: outputs at later times only
    np.testing.assert_allclose(_covs(solve(ts[1:] + t0, t0=t0)), _covs(base)[1:], rtol=1e-8,
                               atol=1e-9)
    if not isinstance(base, jax.Array):
        assert bool(base.blew_up) == bool(shifted.blew_up)
        np.testing.assert_allclose(shifted.blow_up_time, base.blow_up_time + t0, rtol=1e-9)
        np.testing.assert_allclose(shifted.ts, ts + t0, atol=0)


def test_attention_blow_up_time_on_the_clock_of_t0():
    # a positive-definite M + M^T: the closed form blows up, at t0 plus the time it takes
    base = _attention_identity(jnp.array([0.0]))
    assert bool(base.blew_up)
    for t0 in (-1.0, 2.5):
        shifted = _attention_identity(jnp.array([t0]), t0=t0)
        np.testing.assert_allclose(shifted.blow_up_time, base.blow_up_time + t0, rtol=1e-12)
        ode = _attention(jnp.linspace(t0, t0 + 2 * float(base.blow_up_time), 3), t0=t0)
        np.testing.assert_allclose(ode.blow_up_time, shifted.blow_up_time, rtol=1e-6)


@pytest.mark.parametrize("call", [
    lambda t0: linear_network([0.5, 1.0], t0=t0),
    lambda t0: _attention([0.5, 1.0], t0=t0),
    lambda t0: _attention_identity([0.5, 1.0], t0=t0),
], ids=["linear_network", "attention", "attention_identity"])
def test_times_before_t0_are_refused(call):
    with pytest.raises(ValueError, match=r"`ts` must be >= `t0`"):
        call(0.75)
    with pytest.raises(ValueError, match=r"`t0` must be a finite scalar"):
        call(float("nan"))
    with pytest.raises(ValueError, match=r"`t0` must be a scalar"):
        call(jnp.zeros(2))
    with pytest.raises(TypeError, match=r"`t0` must be a real scalar"):
        call("0")
