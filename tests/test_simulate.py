"""simulate: convergence orders, Gaussian flow matching vs theory, log-densities, gradients,
stats and status."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import linregress

import flowjax_lab as fl

COV0 = jnp.array([[1.0, 0.0], [0.0, 0.2]])
COV1 = jnp.array([[1.4, 0.6], [0.6, 0.7]])


def growth(t, x, args):
    """dx/dt = cos(t) x, solved by x(t) = x0 exp(sin t)."""
    return jnp.cos(t) * x


ORDERS = {
    "euler": (1, (16, 32, 64)),
    "heun": (2, (8, 16, 32)),
    "midpoint": (2, (8, 16, 32)),
    "ralston": (2, (8, 16, 32)),
    "bosh3": (3, (4, 8, 16)),
    "rk4": (4, (4, 8, 16)),
    "tsit5": (5, (2, 4, 8)),
    "dopri5": (5, (2, 4, 8)),
}


@pytest.mark.slow
@pytest.mark.parametrize("solver", sorted(ORDERS))
def test_fixed_step_convergence_order(solver):
    order, steps = ORDERS[solver]
    x0 = jnp.ones((2, 1))
    exact = x0 * jnp.exp(jnp.sin(2.0))
    errors = [
        float(jnp.max(jnp.abs(fl.simulate(growth, x0, t1=2.0, solver=solver, steps=k).x1 - exact)))
        for k in steps
    ]
    slope = linregress(np.log(2.0 / np.array(steps)), np.log(errors)).slope
    # At least the nominal order; pre-asymptotic super-convergence (tsit5) is allowed.
    assert order - 0.5 < slope < order + 1.2, (solver, slope, errors)


def _cov(x):
    c = x - x.mean(0, keepdims=True)
    return c.T @ c / x.shape[0]


def test_gaussian_flow_matching_reaches_cov1_error_shrinks_with_n():
    field = fl.fields.GaussianFlowMatching(COV0, COV1)
    errors = []
    for n in (250, 4000, 64000):
        errs = []
        for seed in range(3):
            x0 = fl.Gaussian(jnp.zeros(2), COV0).sample(jax.random.key(seed), n)
            x1 = fl.simulate(field, x0, rtol=1e-8, atol=1e-8).x1
            errs.append(float(jnp.linalg.norm(_cov(x1) - COV1) / jnp.linalg.norm(COV1)))
        errors.append(np.mean(errs))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < errors[0] / 5  # O(n^{-1/2}): the ideal ratio is 16


def test_intermediate_covariances_follow_theory():
    x0 = fl.Gaussian(jnp.zeros(2), COV0).sample(jax.random.key(0), 20000)
    # Whiten the sample so that its covariance is exactly COV0: the pushforward is then exact.
    x0 = x0 @ jnp.linalg.solve(jnp.linalg.cholesky(_cov(x0)), jnp.eye(2)).T
    x0 = x0 @ jnp.linalg.cholesky(COV0).T
    traj = fl.simulate(fl.fields.GaussianFlowMatching(COV0, COV1), x0, saveat=5, rtol=1e-9,
                       atol=1e-9)
    for t, x in zip(traj.ts, traj.xs, strict=True):
        cov_t, _ = fl.theory.flow_matching_gaussian(COV0, COV1, t)
        np.testing.assert_allclose(_cov(x), cov_t, atol=1e-6)


class Opaque(eqx.Module):
    """A field without a `divergence` method, to force the JVP route."""

    inner: eqx.Module

    def __call__(self, t, x, args):
        return self.inner(t, x, args)


@pytest.mark.parametrize("route", ["method", "jvp"])
def test_exact_log_density_matches_gaussian_pushforward(route):
    field = fl.fields.GaussianFlowMatching(COV0, COV1)
    field = field if route == "method" else Opaque(field)
    source = fl.Gaussian(jnp.zeros(2), COV0)
    x0 = source.sample(jax.random.key(3), 64)
    traj = fl.simulate(field, x0, log_density="exact", logp0=source.log_prob(x0), rtol=1e-9,
                       atol=1e-9)
    target = fl.Gaussian(jnp.zeros(2), COV1)
    np.testing.assert_allclose(traj.logp[-1], target.log_prob(traj.x1), atol=1e-6)


def test_hutchinson_agrees_with_exact_in_expectation():
    field = Opaque(fl.fields.GaussianFlowMatching(COV0, COV1))
    x0 = fl.Gaussian(jnp.zeros(2), COV0).sample(jax.random.key(4), 4000)
    exact = fl.simulate(field, x0, log_density="exact").logp[-1]
    hutch = fl.simulate(field, x0, log_density="hutchinson", key=jax.random.key(5)).logp[-1]
    # Per particle the estimate is noisy; its mean over particles converges to the exact mean.
    assert abs(float(jnp.mean(hutch - exact))) < 0.05 * float(jnp.std(hutch - exact)) + 1e-3
    assert float(jnp.std(hutch - exact)) > 0  # it is an estimate, not the exact trace


def test_pointwise_divergence_equals_jvp_route(getkey):
    rule = lambda t, x, a: jnp.tanh(x[::-1] * (1 + t)) + x**2
    field = fl.fields.pointwise(rule)
    x = jax.random.normal(getkey(), (7, 2))
    from flowjax_lab._simulate import divergence_exact

    _, via_jvp = divergence_exact(Opaque(field), 0.3, x, None)
    np.testing.assert_allclose(field.divergence(0.3, x), via_jvp, rtol=1e-12)


@pytest.mark.parametrize("solver", ["heun", "rk4", "tsit5", "dopri8"])
def test_stats_count_field_evaluations(solver):
    calls = []

    def counted(t, x, args):
        jax.debug.callback(lambda: calls.append(1))
        return growth(t, x, args)

    for kwargs in ({"steps": 7}, {"rtol": 1e-6, "atol": 1e-6}):
        calls.clear()
        traj = fl.simulate(counted, jnp.ones((3, 2)), solver=solver, **kwargs)
        jax.block_until_ready(traj.xs)
        assert int(traj.stats["num_field_evals"]) == len(calls)


def test_max_steps_reached_is_reported_not_raised():
    traj = fl.simulate(growth, jnp.ones((2, 2)), t1=50.0, rtol=1e-10, atol=1e-10, max_steps=8)
    assert int(traj.status) == fl.Status.MAX_STEPS_REACHED
    assert "max_steps" in traj.message
    with pytest.raises(Exception, match="simulate failed"):
        fl.simulate(growth, jnp.ones((2, 2)), t1=50.0, rtol=1e-10, atol=1e-10, max_steps=8,
                    throw=True)


def test_blow_up_is_reported_as_nonfinite():
    traj = fl.simulate(lambda t, x, a: x**3, jnp.ones((2, 1)), t1=2.0, solver="euler",
                       steps=200)
    assert int(traj.status) == fl.Status.NONFINITE
    assert not traj.ok


class Linear(eqx.Module):
    weight: jax.Array

    def __call__(self, t, x, args):
        return jnp.tanh(x @ self.weight.T) * (1 + t)


@pytest.mark.parametrize("adjoint", ["recursive", "backsolve", "direct"])
def test_gradients_match_finite_differences(adjoint, getkey):
    weight = 0.5 * jax.random.normal(getkey(), (2, 2))
    x0 = jax.random.normal(getkey(), (5, 2))
    kwargs = {"adjoint": adjoint, "rtol": 1e-10, "atol": 1e-10}
    if adjoint == "direct":
        kwargs = {"adjoint": adjoint, "solver": "rk4", "steps": 40}

    def loss(w, x):
        return jnp.sum(fl.simulate(Linear(w), x, **kwargs).x1 ** 2)

    gw, gx = jax.grad(loss, argnums=(0, 1))(weight, x0)
    dw, dx = jax.random.normal(getkey(), weight.shape), jax.random.normal(getkey(), x0.shape)
    h = 1e-5
    fd = (loss(weight + h * dw, x0 + h * dx) - loss(weight - h * dw, x0 - h * dx)) / (2 * h)
    np.testing.assert_allclose(jnp.sum(gw * dw) + jnp.sum(gx * dx), fd, rtol=1e-5)


@pytest.mark.parametrize("solver", ["euler", "rk4", "tsit5"])
def test_fixed_steps_on_the_grid_give_diffeqsolves_numbers_and_gradients(solver, getkey):
    """Fixed steps saved on the step grid with the default adjoint take `fixed_step_states` (a
    plain scan of diffrax's steps); `adjoint="direct"` still goes through ``diffeqsolve``."""
    weight = 0.5 * jax.random.normal(getkey(), (2, 2))
    x0 = jax.random.normal(getkey(), (5, 2))

    def run(w, adjoint):
        return fl.simulate(Linear(w), x0, solver=solver, steps=8, saveat=5, adjoint=adjoint,
                           log_density="exact")

    fast, reference = run(weight, "recursive"), run(weight, "direct")
    for got, want in ((fast.xs, reference.xs), (fast.logp, reference.logp),
                      (fast.ts, reference.ts)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert {k: int(v) for k, v in fast.stats.items()} == {
        k: int(v) for k, v in reference.stats.items()}
    assert int(fast.status) == int(reference.status) == fl.Status.SUCCESS
    loss = lambda w, adjoint: jnp.sum(run(w, adjoint).xs ** 2) + jnp.sum(run(w, adjoint).logp)
    np.testing.assert_allclose(jax.grad(loss)(weight, "recursive"),
                               jax.grad(loss)(weight, "direct"), rtol=1e-10)


def test_float32_in_float32_out():
    x0 = jnp.ones((4, 2), jnp.float32)
    traj = fl.simulate(growth, x0, log_density="exact", saveat=3)
    assert traj.xs.dtype == jnp.float32 and traj.logp.dtype == jnp.float32
    assert traj.ts.dtype == jnp.float32


def test_same_key_same_result():
    x0 = jnp.ones((4, 2))
    a = fl.simulate(growth, x0, log_density="hutchinson", key=jax.random.key(7)).logp
    b = fl.simulate(growth, x0, log_density="hutchinson", key=jax.random.key(7)).logp
    np.testing.assert_array_equal(a, b)


def test_saveat_times_and_solver_object():
    ts = jnp.array([0.0, 0.25, 1.0])
    traj = fl.simulate(growth, jnp.ones((2, 1)), saveat=ts, solver=dfx.Dopri5())
    np.testing.assert_allclose(traj.ts, ts)
    np.testing.assert_allclose(traj.xs[:, 0, 0], jnp.exp(jnp.sin(ts)), rtol=1e-4)


def test_simulate_is_jittable_and_vmappable():
    x0 = jnp.ones((3, 4, 1)) * jnp.arange(1.0, 4.0)[:, None, None]
    run = jax.jit(jax.vmap(lambda x: fl.simulate(growth, x, solver="rk4", steps=20).x1))
    np.testing.assert_allclose(run(x0), x0 * jnp.exp(jnp.sin(1.0)), rtol=1e-5)
