"""simulate_sde: strong orders of Euler-Maruyama and Milstein on geometric Brownian motion against
its exact solution on the same Brownian path, the heat flow against theory, the
Ornstein-Uhlenbeck variance, keys, dtypes and status.

Every compilation of an SDE solve costs seconds (diffrax's virtual Brownian tree), so the tests
share a few compiled solves: one affine SDE ``dx = mu x dt + (sigma x + c) dW`` whose
coefficients are traced `args`, with the end time `t1` traced as well.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import linregress

import flowjax_lab as fl

SHAPE = (10000, 2)
OU_STEPS = 50


def drift(t, x, args):
    return args["mu"] * x


def diffusion(t, x, args):
    return args["sigma"] * x + args["c"]


def solve(x0, key, *, t1, steps=1, solver="euler", mu=0.0, sigma=0.0, c=0.0, saveat=None):
    coefficients = {k: jnp.asarray(v, x0.dtype) for k, v in (("mu", mu), ("sigma", sigma),
                                                              ("c", c))}
    return fl.simulate_sde(drift, diffusion, x0, key, t1=t1, steps=steps, solver=solver,
                           args=coefficients, saveat=saveat)


def brownian(key, t1, shape=SHAPE):
    """W(t1) of the path that `key` drives (dx = dW from 0; exact for any number of steps)."""
    return solve(jnp.zeros(shape), key, t1=t1, c=1.0).x1


def gbm_exact(x0, w, t, mu, sigma):
    return x0 * jnp.exp((mu - sigma**2 / 2) * t + sigma * w)


def test_the_brownian_path_is_shared_across_step_counts():
    # The reference below relies on it: W(t1) does not depend on the number of steps.
    key = jax.random.key(0)
    w = brownian(key, 1.0)
    fine = solve(jnp.zeros(SHAPE), key, t1=1.0, c=1.0, steps=OU_STEPS)
    np.testing.assert_allclose(fine.x1, w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.var(np.asarray(w)), 1.0, rtol=0.05)


def test_strong_orders_on_geometric_brownian_motion():
    # Over one step of size h, the mean-square error against the exact solution on the same
    # Brownian path is O(h) for Euler-Maruyama and O(h^1.5) for Milstein; by Milstein's
    # fundamental theorem the global strong orders are one half less: 1/2 and 1. (Measured over
    # one step so that the step size is traced: every step count is a compilation of its own,
    # seconds each, which a global slope fit over several counts would pay per count.)
    mu, sigma = 0.5, 1.0
    key = jax.random.key(1)
    x0 = jnp.ones(SHAPE)
    hs = 2.0 ** -np.arange(2, 9)
    errors = {"euler": [], "milstein": []}
    for h in hs:
        exact = gbm_exact(x0, brownian(key, h), h, mu, sigma)
        for solver in errors:
            x1 = solve(x0, key, t1=h, solver=solver, mu=mu, sigma=sigma).x1
            errors[solver].append(float(jnp.sqrt(jnp.mean((x1 - exact) ** 2))))
    slopes = {s: linregress(np.log(hs), np.log(e)).slope for s, e in errors.items()}
    assert 0.85 < slopes["euler"] < 1.2, (slopes, errors)
    assert 1.35 < slopes["milstein"] < 1.7, (slopes, errors)
    assert all(m < e for m, e in zip(errors["milstein"], errors["euler"], strict=True))


def test_milstein_equals_euler_for_additive_noise():
    x0 = jax.random.normal(jax.random.key(3), SHAPE)
    key = jax.random.key(4)
    euler = solve(x0, key, t1=0.5, mu=-1.0, c=0.7).x1
    milstein = solve(x0, key, t1=0.5, mu=-1.0, c=0.7, solver="milstein").x1
    np.testing.assert_allclose(milstein, euler, rtol=1e-12, atol=1e-15)


def _cov(x):
    x = np.asarray(x)
    centred = x - x.mean(0)
    return centred.T @ centred / x.shape[0]


def test_heat_flow_covariance_matches_theory_error_shrinks_with_n():
    # dx = sqrt(2 D) dW from N(0, cov0): the law is N(0, cov0 + 2 D t I) (theory.heat_covariance).
    cov0 = jnp.array([[1.0, 0.3], [0.3, 0.5]])
    diffusivity = 0.4
    x0 = fl.Gaussian(jnp.zeros(2), cov0).sample(jax.random.key(5), SHAPE[0])
    for t in (0.5, 2.0):
        traj = solve(x0, jax.random.key(6), t1=t, c=np.sqrt(2 * diffusivity))
        assert int(traj.status) == fl.Status.SUCCESS
        reference = np.asarray(fl.theory.heat_covariance(cov0, t, diffusivity))
        x = np.asarray(traj.x1)
        # The particles are independent: 40 disjoint clouds of 250 against all 10000.
        small = np.mean([np.linalg.norm(_cov(part) - reference)
                         for part in np.split(x, 40)])
        full = np.linalg.norm(_cov(x) - reference)
        scale = np.sqrt(np.sum(reference**2) + np.trace(reference) ** 2)
        assert full < 4 * scale / np.sqrt(len(x)), (t, full)
        assert full < small / 2.5, (t, full, small)  # ideal ratio sqrt(40)


def ou_euler_variance(theta, sigma, h, steps):
    """Variance after `steps` Euler-Maruyama steps of dx = -theta x dt + sigma dW from a point."""
    r = (1 - theta * h) ** 2
    return sigma**2 * h * (1 - r**steps) / (1 - r)


def test_ornstein_uhlenbeck_stationary_variance():
    theta, sigma, steps = 1.0, 1.0, OU_STEPS
    x0 = jnp.full(SHAPE, 3.0)
    key = jax.random.key(7)
    run = lambda t1: np.asarray(solve(x0, key, t1=t1, steps=steps, mu=-theta, c=sigma).x1)
    n = x0.size
    sampling = 5 * np.sqrt(2 / n)  # relative accuracy of a sample variance
    # Transient at t = 0.5 (h = 0.01): mean 3 exp(-theta t), variance (1 - exp(-2 theta t))
    # sigma^2 / (2 theta), up to the O(h) bias of the scheme.
    x = run(0.5)
    np.testing.assert_allclose(x.mean(), 3 * np.exp(-0.5), atol=5 * np.sqrt(0.32 / n) + 0.01)
    np.testing.assert_allclose(x.var(), (1 - np.exp(-1.0)) / 2, rtol=sampling + 0.01)
    # At t = 5 (h = 0.1) the law is stationary: variance sigma^2 / (2 theta) up to the scheme's
    # bias theta h / 2 = 5%, and the scheme's own variance to sampling accuracy.
    x = run(5.0)
    assert abs(x.mean()) < 5 * np.sqrt(0.5 / n) + 3 * 0.9**steps
    np.testing.assert_allclose(x.var(), sigma**2 / (2 * theta), rtol=sampling + 0.05)
    np.testing.assert_allclose(x.var(), ou_euler_variance(theta, sigma, 0.1, steps),
                               rtol=sampling)
    # With big steps (h = 0.5) Euler-Maruyama's stationary variance is sigma^2 / (theta (2 -
    # theta h)) = 2/3, not 1/2: the solver is Euler-Maruyama, not the exact OU transition.
    x = run(25.0)
    np.testing.assert_allclose(x.var(), sigma**2 / (theta * (2 - theta * 0.5)), rtol=sampling)
    assert x.var() > 0.6


def test_same_key_same_paths_and_independent_particles():
    x0 = jnp.zeros(SHAPE)
    a = solve(x0, jax.random.key(8), t1=1.0, c=1.0)
    b = solve(x0, jax.random.key(8), t1=1.0, c=1.0)
    other = solve(x0, jax.random.key(9), t1=1.0, c=1.0)
    np.testing.assert_array_equal(a.xs, b.xs)
    assert not np.array_equal(np.asarray(a.x1), np.asarray(other.x1))
    # Diagonal noise: every coordinate of every particle has its own Brownian motion.
    np.testing.assert_allclose(np.corrcoef(np.asarray(a.x1).T), np.eye(2), atol=0.1)
    np.testing.assert_allclose(np.var(np.asarray(a.x1), axis=0), 1.0, rtol=0.1)
    np.testing.assert_array_equal(a.ts, [0.0, 1.0])
    assert a.xs.shape == (2, *SHAPE) and a.logp is None
    assert int(a.stats["num_steps"]) == 1


def test_status_reports_success_and_blow_up_and_float32_is_kept():
    ok = solve(jnp.ones(SHAPE), jax.random.key(10), t1=1.0, mu=0.5, sigma=0.2)
    assert int(ok.status) == fl.Status.SUCCESS and bool(ok.ok)
    assert ok.raise_on_failure() is ok
    # float32 in, float32 out; a drift that overflows float32 is reported, not raised.
    x0 = jnp.full(SHAPE, 1e10, jnp.float32)
    calm = solve(x0, jax.random.key(11), t1=1.0, mu=-0.5, c=1.0)
    assert calm.xs.dtype == jnp.float32 and calm.ts.dtype == jnp.float32
    assert int(calm.status) == fl.Status.SUCCESS
    blown = solve(x0, jax.random.key(11), t1=1.0, mu=1e30)
    assert int(blown.status) == fl.Status.NONFINITE and not bool(blown.ok)
    assert "NaN or inf" in blown.message
    with pytest.raises(RuntimeError, match="simulation failed"):
        blown.raise_on_failure()
