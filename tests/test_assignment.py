"""`transport.linear_assignment` (auction in XLA) and the solvers of `optimal_permutation`
against scipy's `linear_sum_assignment`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import flowjax_lab as fl
from flowjax_lab._status import Status

solve = jax.jit(jax.vmap(fl.transport.linear_assignment))


def _clouds(key, n, dtype):
    """Squared distances between 8gaussians and moons samples, as in OT-CFM."""
    k0, k1 = jax.random.split(key)
    x0 = fl.datasets.sample("8gaussians", k0, n, dtype=dtype)
    x1 = fl.datasets.sample("moons", k1, n, dtype=dtype)
    return jnp.sum((x0[:, None, :] - x1[None, :, :]) ** 2, axis=-1)


def _check(costs, result, *, rtol):
    """Every problem of the batch: a permutation, converged, of scipy's optimal cost (relative
    tolerance `rtol`, one per problem or one for all)."""
    costs = np.asarray(costs, np.float64)
    perms = np.asarray(result.permutation)
    assert np.all(np.asarray(result.status) == Status.SUCCESS)
    rtols = np.broadcast_to(rtol, len(costs))
    for cost, perm, gap, rtol in zip(costs, perms, np.asarray(result.gap), rtols, strict=True):
        n = cost.shape[0]
        assert sorted(perm.tolist()) == list(range(n))
        rows, cols = linear_sum_assignment(cost)
        best = cost[rows, cols].sum()
        ours = cost[np.arange(n), perm].sum()
        assert best - 1e-12 * abs(best) <= ours <= best + rtol * abs(best), (ours, best, gap)
        assert ours - best <= gap + rtol * abs(best)  # the certificate holds


def _ties(key, n, dtype):
    """Duplicated points (each thrice, on both sides), a constant and an integer cost matrix."""
    x = jax.random.normal(key, (max(n // 3, 1), 2), dtype)
    dup = jnp.tile(x, (3, 1))[:n]
    duplicated = jnp.sum((dup[:, None] - dup[None]) ** 2, axis=-1)
    constant = jnp.full((n, n), 3.0, dtype)
    integers = jax.random.randint(key, (n, n), 0, 5).astype(dtype)
    return [duplicated, constant, integers]


@pytest.mark.parametrize("n, dtype, rtol", [(2, jnp.float32, 1e-7), (24, jnp.float32, 1e-7),
                                            (24, jnp.float64, 1e-12)])
def test_equal_cost_to_scipy_with_ties_under_vmap(getkey, n, dtype, rtol):
    clouds = [_clouds(getkey(), n, dtype) for _ in range(2)]
    uniform = [jax.random.uniform(getkey(), (n, n), dtype) for _ in range(2)]
    costs = jnp.stack(clouds + uniform + _ties(getkey(), n, dtype))
    result = solve(costs)
    assert result.permutation.dtype == jnp.int32 and result.prices.dtype == dtype
    assert result.permutation.shape == (7, n) and result.gap.shape == (7,)
    _check(costs, result, rtol=[rtol] * 4 + [0.0] * 3)  # ties: integer totals, exactly equal
    assert float(result.cost[4]) == 0.0 and float(result.cost[5]) == 3.0 * n


def test_equal_cost_to_scipy_at_n_1024(getkey):
    cost = _clouds(getkey(), 1024, jnp.float32)
    _check(cost[None], solve(cost[None]), rtol=1e-7)


def test_reports_non_convergence():
    cost = np.array([[4, 1, 3], [2, 0, 5], [3, 2, 2]])  # integers: read as the default float
    result = fl.transport.linear_assignment(cost, max_iterations=1)
    assert result.prices.dtype == jnp.float64
    assert int(result.status) == Status.NOT_CONVERGED and not result.ok
    with pytest.raises(RuntimeError, match="linear_assignment failed"):
        result.raise_on_failure()


def test_nan_under_jit_names_the_argument():
    cost = jnp.ones((3, 3)).at[1, 2].set(jnp.nan)
    with pytest.raises(Exception, match="`cost` contains NaN or inf"):
        jax.block_until_ready(jax.jit(fl.transport.linear_assignment)(cost).permutation)


@pytest.mark.parametrize("solver", ["network_simplex", "hungarian", "auction"])
def test_every_solver_of_optimal_permutation_is_optimal_under_vmap(getkey, solver):
    """Clouds, and duplicated points (ties), float64: scipy's optimal cost to 1e-12."""
    n = 24
    k0, k1 = jax.random.split(getkey())
    x0 = jax.vmap(lambda k: fl.datasets.sample("8gaussians", k, n, dtype=jnp.float64))(
        jax.random.split(k0, 3))
    x1 = jax.vmap(lambda k: fl.datasets.sample("moons", k, n, dtype=jnp.float64))(
        jax.random.split(k1, 3))
    x1 = x1.at[2].set(jnp.tile(x0[2, :8], (3, 1)))  # each point thrice: tied assignments
    x0 = x0.at[2].set(jnp.tile(x0[2, :8], (3, 1)) + 0.5)
    solve = jax.jit(jax.vmap(lambda a, b: fl.transport.optimal_permutation(a, b, solver=solver)))
    perms = np.asarray(solve(x0, x1))
    for a, b, perm in zip(np.asarray(x0), np.asarray(x1), perms, strict=True):
        cost = np.sum((a[:, None] - b[None]) ** 2, axis=-1)
        assert sorted(perm.tolist()) == list(range(n))
        rows, cols = linear_sum_assignment(cost)
        best = cost[rows, cols].sum()
        assert abs(cost[np.arange(n), perm].sum() - best) <= 1e-12 * best


def test_network_simplex_stopped_short_falls_back_to_the_hungarian(getkey, monkeypatch):
    """POT's emd out of pivots reports a result code other than 1 and a plan that need not be
    optimal: the exact answer must come anyway."""
    import ot

    from flowjax_lab.transport import _assignment

    def stopped(a, b, cost, numItermax, log):
        plan = np.eye(len(a)) / len(a)  # the identity pairing, not optimal
        return plan, {"result_code": 3}

    monkeypatch.setattr(ot, "emd", stopped)
    cost = np.asarray(_clouds(getkey(), 16, jnp.float64))
    perm = _assignment._network_simplex(cost)
    rows, cols = linear_sum_assignment(cost)
    assert np.isclose(cost[np.arange(16), perm].sum(), cost[rows, cols].sum(), rtol=1e-12)
    assert not np.isclose(np.trace(cost), cost[rows, cols].sum())
