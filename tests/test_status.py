"""One `Status` for every solver: each failure provoked in each solver is reported with its code,
`ok`, `message`, and raised with that message by `throw=True` (eagerly and under `jit`)."""

import re

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest

import flowjax_lab as fl
from flowjax_lab import diffusion, flows, transport
from flowjax_lab._status import finite_status, first_failure, from_diffrax

S = fl.Status
X = jax.random.normal(jax.random.key(0), (12, 2))
Y = jax.random.normal(jax.random.key(1), (15, 2)) + 1.0
KEY = jax.random.key(2)
ENERGY = fl.fields.Interaction(flows.PowerLawKernel(2.0, 0.5),
                               flows.QuadraticPotential(0.5)).energy


def cubic(t, x, args):
    return x**3


def growth(t, x, args):
    return x


def nan_model(t, x):
    return x * jnp.nan


def _stop(model):
    raise KeyboardInterrupt


def _fit(loss, **kwargs):
    return fl.learn.fit(loss, jnp.ones(2), optax.sgd(0.1), KEY, progress=False, **kwargs)


# name -> (run(throw) -> a result with `.status` or a status array, expected status, whether
# the solver takes `throw`; the others are raised through `raise_on_failure`)
CASES = {
    "simulate blow-up": (lambda throw: fl.simulate(
        cubic, jnp.ones((2, 1)), t1=2.0, solver="euler", steps=200, throw=throw), S.NONFINITE,
        True),
    "simulate tiny max_steps": (lambda throw: fl.simulate(
        growth, jnp.ones((2, 2)), t1=50.0, rtol=1e-10, atol=1e-10, max_steps=8, throw=throw),
        S.MAX_STEPS_REACHED, True),
    "simulate_sde blow-up": (lambda throw: fl.simulate_sde(
        cubic, 0.1, jnp.ones((2, 1)), KEY, t1=2.0, steps=200, throw=throw), S.NONFINITE, True),
    "jko tiny max_steps": (lambda throw: flows.jko(ENERGY, X, 0.1, 2, max_steps=2, throw=throw),
                           S.NOT_CONVERGED, True),
    "jko_step tiny max_steps": (lambda throw: flows.jko_step(
        ENERGY, X, 0.1, max_steps=2, throw=throw)[1], S.NOT_CONVERGED, True),
    "sinkhorn 2 iterations": (lambda throw: transport.sinkhorn(
        X, Y, epsilon=0.1, max_iterations=2, throw=throw), S.NOT_CONVERGED, True),
    "sinkhorn_divergence 2 iterations": (lambda throw: transport.sinkhorn_divergence(
        X, Y, max_iterations=2, throw=throw, return_status=True)[1], S.NOT_CONVERGED, True),
    "w2 sinkhorn tiny epsilon": (lambda throw: transport.w2(
        X, Y, method="sinkhorn", epsilon=1e-4, throw=throw, return_status=True)[1],
        S.NOT_CONVERGED, True),
    "entropic coupling 2 iterations": (lambda throw: transport.minibatch_coupling(
        X, X, epsilon=0.1, key=KEY, max_iterations=2, throw=throw, return_status=True)[2],
        S.NOT_CONVERGED, True),
    "fit NaN loss": (lambda throw: _fit(lambda w, key: jnp.sum(w) * jnp.nan, steps=3),
                     S.NONFINITE, False),
    "fit Ctrl-C": (lambda throw: _fit(lambda w, key: jnp.sum(w**2), steps=4, chunk=2,
                                      eval_every=2, evaluate=_stop), S.INTERRUPTED, False),
    "probability flow tiny max_steps": (lambda throw: diffusion.sample_probability_flow(
        lambda t, x: x, diffusion.VP(), X, prediction="eps", max_steps=2),
        S.MAX_STEPS_REACHED, False),
    "ddim NaN model": (lambda throw: diffusion.ddim(nan_model, diffusion.VP(), X,
                                                    prediction="eps", steps=4), S.NONFINITE,
                       False),
    "reverse SDE (heun) NaN model": (lambda throw: diffusion.sample_reverse_sde(
        nan_model, diffusion.VP(), X, KEY, prediction="eps", steps=4, method="heun"),
        S.NONFINITE, False),
}


@pytest.mark.parametrize("name", CASES)
def test_each_failure_is_reported_and_raised(name):
    run, expected, takes_throw = CASES[name]
    result = run(False)
    status = getattr(result, "status", result)
    assert int(status) == expected, (S.message(status), S.message(expected))
    if hasattr(result, "ok"):
        assert not bool(result.ok)
        assert result.message == S.message(expected)
    with pytest.raises(RuntimeError, match="failed: " + re.escape(S.message(expected))):
        if takes_throw:
            jax.block_until_ready(run(True))
        else:
            result.raise_on_failure()


def test_successes_are_ok_and_pass_throw():
    traj = fl.simulate(growth, jnp.ones((2, 2)), throw=True)
    assert int(traj.status) == S.SUCCESS and bool(traj.ok) and traj.message == "success"
    assert traj.raise_on_failure() is traj
    result = transport.sinkhorn(X, Y, epsilon=0.5, throw=True)
    assert bool(result.converged) and bool(result.ok)
    value, method, status = transport.w2(X, X + 1, return_method=True, return_status=True)
    assert method == "exact" and int(status) == S.SUCCESS
    assert int(transport.minibatch_coupling(X, X, return_status=True)[2]) == S.SUCCESS
    fitted = _fit(lambda w, key: jnp.sum(w**2), steps=2)
    assert fitted.ok and fitted.status == S.SUCCESS and not fitted.interrupted


def test_throw_under_jit_raises_the_status_message():
    simulate = jax.jit(lambda x: fl.simulate(cubic, x, t1=2.0, solver="euler", steps=200,
                                             throw=True).xs)
    with pytest.raises(RuntimeError, match="simulate failed: the state became NaN"):
        jax.block_until_ready(simulate(jnp.ones((2, 1))))
    solve = jax.jit(lambda x: transport.sinkhorn(x, Y, epsilon=0.1, max_iterations=2,
                                                 throw=True).cost)
    with pytest.raises(RuntimeError, match="sinkhorn failed: the iterative solver did not"):
        jax.block_until_ready(solve(X))
    check = jax.jit(lambda x: fl.simulate(cubic, x, t1=2.0, solver="euler", steps=200)
                    .raise_on_failure().xs)
    with pytest.raises(RuntimeError, match="simulation failed: the state became NaN"):
        jax.block_until_ready(check(jnp.ones((2, 1))))


def test_statuses_batch_under_vmap():
    statuses = jax.vmap(lambda eps: transport.sinkhorn(X, Y, epsilon=eps, max_iterations=50)
                        .status)(jnp.array([1e-3, 1.0]))
    np.testing.assert_array_equal(statuses, [S.NOT_CONVERGED, S.SUCCESS])


def test_theory_ode_failures_raise_their_message():
    with pytest.raises(RuntimeError, match="flow_matching_map failed: the maximum number"):
        fl.theory.flow_matching_map(jnp.eye(2), 2 * jnp.eye(2), rtol=1e-30, atol=1e-30)
    with pytest.raises(RuntimeError, match="linear_network_covariance failed: the maximum"):
        fl.theory.linear_network_covariance(jnp.eye(3), jnp.eye(2), jnp.ones((1, 2)),
                                            jnp.linspace(0.0, 1.0, 3), rtol=1e-30, atol=1e-30)
    with pytest.raises(RuntimeError, match="attention_covariance failed: the maximum number"):
        eye = jnp.eye(2)
        jax.block_until_ready(fl.theory.attention_covariance(
            eye, eye, eye, eye, jnp.linspace(0.0, 0.4, 5), max_steps=2).covs)


def test_diffrax_and_optimistix_results_map_to_one_status():
    table = [(dfx.RESULTS.successful, S.SUCCESS), (dfx.RESULTS.event_occurred, S.SUCCESS),
             (dfx.RESULTS.max_steps_reached, S.MAX_STEPS_REACHED),
             (dfx.RESULTS.dt_min_reached, S.SOLVER_FAILURE),
             (dfx.RESULTS.internal_error, S.SOLVER_FAILURE),
             (optx.RESULTS.successful, S.SUCCESS),
             (optx.RESULTS.nonlinear_max_steps_reached, S.NOT_CONVERGED),
             (optx.RESULTS.nonlinear_divergence, S.SOLVER_FAILURE),
             (optx.RESULTS.nonfinite, S.NONFINITE)]
    for result, code in table:
        assert int(from_diffrax(result)) == code, result
    assert int(jax.jit(from_diffrax)(dfx.RESULTS.max_steps_reached)) == S.MAX_STEPS_REACHED


def test_status_helpers():
    assert len(set(S.MESSAGES)) == len(S.MESSAGES) == 6
    assert int(finite_status(S.SUCCESS, jnp.ones(2), None)) == S.SUCCESS
    assert int(finite_status(S.SUCCESS, jnp.array([1.0, jnp.inf]))) == S.NONFINITE
    # an earlier failure is kept, not overwritten by the NaN it caused
    assert int(finite_status(S.MAX_STEPS_REACHED, jnp.array([jnp.nan]))) == S.MAX_STEPS_REACHED
    assert int(first_failure(S.SUCCESS, S.NOT_CONVERGED, S.NONFINITE)) == S.NOT_CONVERGED
    assert int(first_failure(S.SUCCESS, S.SUCCESS)) == S.SUCCESS
