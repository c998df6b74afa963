"""Entropic OT between two clouds: flowjax_lab.transport.sinkhorn vs raw ott-jax vs POT.

Problem: x ~ N(0, I_2), y ~ N(1, I_2), n = m, uniform weights, squared Euclidean cost,
epsilon = mean cost / 20 (ott-jax's default rule, computed once and passed to everyone), stopping
threshold 1e-3 on the L1 norm of the column-marginal error (ott-jax's default norm, checked every
10 iterations; POT also checks every 10 iterations, but the L2 norm of the same column-marginal
error, so it gets 1e-3 / sqrt(n), which guarantees the same L1 bound). Every row reports the L1
error of both marginals of the plan it returns, measured afterwards, so that "same tolerance" can
be checked. ``ot.emd2`` solves the exact (unregularised) problem and is listed for scale.

Rows, per n: ``transport.sinkhorn`` by default (kernel mode, checked, log-domain fallback; the
baseline), with ``momentum=1.5``, and POT ``ot.sinkhorn`` (kernel mode), timed round robin; then,
at n <= 4000 only (the log domain costs n^2 exponentials per half-iteration) and in a second
round robin with fewer repeats: ``transport.sinkhorn(lse_mode=True)`` (the log domain, plain and
with momentum 1.5), raw ott-jax (log domain, same settings), POT ``ot.bregman.sinkhorn_log`` and
``ot.emd2``. At n = 1000: ott-jax's ``SinkhornOutput.primal_cost`` (``<P, C>``) against the solve.
"""

import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import acceleration, sinkhorn as ott_sinkhorn

import flowjax_lab as fl
from flowjax_lab.transport._ott import ott_promotion

from . import _harness as H

THRESHOLD = 1e-3
MAX_ITERATIONS = 2000
OVER_RELAXATION = 1.5
DIM = 2


def problem(n: int, dtype):
    kx, ky = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (n, DIM), dtype)
    y = jax.random.normal(ky, (n, DIM), dtype) + 1.0
    cost = jnp.sum((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
    eps = float(jnp.mean(cost)) / 20
    return x, y, eps


def _ott_solver(x, y, eps, *, over_relaxation=None):
    """A jitted raw ott-jax solve; returns (output-as-tuple) of plain arrays."""
    n = x.shape[0]

    @jax.jit
    def solve(x, y):
        with ott_promotion():
            geom = pointcloud.PointCloud(x, y, epsilon=eps)
            a = jnp.full((n,), 1 / n, x.dtype)
            prob = linear_problem.LinearProblem(geom, a=a, b=a)
            kw = {}
            if over_relaxation is not None:  # constant momentum from the first iteration
                kw["momentum"] = acceleration.Momentum(start=0, value=over_relaxation)
            solver = ott_sinkhorn.Sinkhorn(threshold=THRESHOLD, max_iterations=MAX_ITERATIONS,
                                           **kw)
            out = solver(prob)
            return out.reg_ot_cost, out.f, out.g, out.n_iters, out.converged

    return solve


def _marginal_error_from_potentials(x, y, f, g, eps) -> float:
    n = x.shape[0]
    xn, yn, f, g = (np.asarray(v, np.float64) for v in (x, y, f, g))
    cost = np.sum((xn[:, None, :] - yn[None, :, :]) ** 2, axis=-1)
    return _marginal_error(np.exp((f[:, None] + g[None, :] - cost) / eps), n)


def _marginal_error(plan, n: int) -> float:
    plan = np.asarray(plan, np.float64)
    if not np.all(np.isfinite(plan)):
        return float("nan")
    u = np.full(n, 1 / n)
    return float(np.abs(plan.sum(1) - u).sum() + np.abs(plan.sum(0) - u).sum())


def _pot_fns(x, y, eps):
    """POT's solvers on this problem, or the reason they are missing."""
    try:
        import ot
    except ImportError:
        return None, "POT not installed (see benchmarks/README.md, peers)"
    xn, yn = np.asarray(x), np.asarray(y)
    n = xn.shape[0]
    a = np.full(n, 1 / n, xn.dtype)
    # POT stops on the L2 norm of the column-marginal error; ||v||_1 <= sqrt(n) ||v||_2, so this
    # threshold guarantees the same L1 error as ott-jax's.
    stop = THRESHOLD / float(np.sqrt(n))

    def cost():
        return ot.dist(xn, yn)  # squared Euclidean, same dtype

    fns = {
        "POT ot.sinkhorn (kernel)": lambda: ot.sinkhorn(
            a, a, cost(), eps, stopThr=stop, numItermax=MAX_ITERATIONS, log=True),
        "POT ot.bregman.sinkhorn_log": lambda: ot.bregman.sinkhorn_log(
            a, a, cost(), eps, stopThr=stop, numItermax=MAX_ITERATIONS, log=True),
        "POT ot.emd2 (exact)": lambda: ot.emd2(a.astype(np.float64), a.astype(np.float64),
                                               cost().astype(np.float64), numItermax=10_000_000),
    }
    return (fns, {"pot_version": ot.__version__, "pot_stopThr_l2": stop}), None


def rows(quick: bool, repeats: int | None = None, max_n: int | None = None) -> list[dict]:
    import warnings

    sizes_n = (200,) if quick else (1000, 4000, 10000)
    sizes_n = tuple(n for n in sizes_n if max_n is None or n <= max_n) or sizes_n[:1]
    repeats = repeats or (3 if quick else 7)
    dtype = jnp.float32
    baseline = "flowjax_lab transport.sinkhorn (default)"
    out = []
    for n in sizes_n:
        x, y, eps = problem(n, dtype)
        group = f"sinkhorn n={n}"
        sizes = {"n": n, "m": n, "d": DIM, "epsilon": eps, "threshold": THRESHOLD}
        raw = _ott_solver(x, y, eps)

        def ours(momentum=None, lse_mode=None):
            r = fl.transport.sinkhorn(x, y, epsilon=eps, threshold=THRESHOLD,
                                      max_iterations=MAX_ITERATIONS, momentum=momentum,
                                      lse_mode=lse_mode)
            return r.cost, r.f, r.g, r.iterations, r.converged

        pot, missing = _pot_fns(x, y, eps)
        pot_fns, pot_extra = pot if pot else ({}, {})
        fast = {baseline: ours,
                f"flowjax_lab sinkhorn momentum={OVER_RELAXATION}": lambda: ours(OVER_RELAXATION)}
        slow = {}
        if n <= 4000:
            slow = {"flowjax_lab sinkhorn lse_mode=True (log domain)": lambda: ours(lse_mode=True),
                    f"flowjax_lab sinkhorn lse_mode=True momentum={OVER_RELAXATION}":
                        lambda: ours(OVER_RELAXATION, lse_mode=True),
                    "ott-jax Sinkhorn (log domain, same settings)": lambda: raw(x, y)}
        for name, fn in pot_fns.items():
            if name.startswith("POT ot.sinkhorn"):
                fast[name] = fn
            elif n <= 4000:
                slow[name] = fn
        pot_sync = {name: (lambda o: o) for name in pot_fns}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # POT warns when it stops on max iterations
            timed = H.time_interleaved(fast, repeats=repeats, syncs=pot_sync)
            if slow:
                timed |= H.time_interleaved(slow, repeats=max(2, repeats // 3), syncs=pot_sync)
        for impl, (timing, res) in timed.items():
            extra = {"timed_in": "second round" if impl in slow else "first round"}
            throughput = None
            if impl.startswith("POT"):
                extra |= pot_extra
                if "emd2" in impl:
                    extra["cost_value"] = float(res)
                else:
                    plan, log = res
                    extra["marginal_l1_error"] = _marginal_error(plan, n)
                    extra["iterations"] = int(log.get("niter", -1))
            else:
                iters = int(res[3])
                throughput = (iters, "iterations/s")
                extra |= {"iterations": iters, "converged": bool(res[4]),
                          "marginal_l1_error": _marginal_error_from_potentials(
                              x, y, res[1], res[2], eps)}
            out.append(H.row(group=group, name="sinkhorn", impl=impl, timing=timing,
                             sizes=sizes, dtype="float32", baseline=impl == baseline,
                             throughput=throughput, extra=extra))
        if missing:
            out.append(H.skipped(group=group, name="sinkhorn", impl="POT", sizes=sizes,
                                 dtype="float32", why=missing))
        if n == sizes_n[0]:
            out.extend(_primal_cost_rows(n, x, y, eps, sizes, repeats))
    return out


def _primal_cost_rows(n, x, y, eps, sizes, repeats) -> list[dict]:
    """ott-jax's primal_cost vs the solve, and our transport_cost, in one jit each."""
    group = f"primal cost n={n}"

    def ott_out(x, y):
        with ott_promotion():
            geom = pointcloud.PointCloud(x, y, epsilon=eps)
            a = jnp.full((n,), 1 / n, x.dtype)
            solver = ott_sinkhorn.Sinkhorn(threshold=THRESHOLD, max_iterations=MAX_ITERATIONS)
            return solver(linear_problem.LinearProblem(geom, a=a, b=a))

    solve = jax.jit(lambda x, y: ott_out(x, y).reg_ot_cost)
    out = jax.block_until_ready(jax.jit(ott_out)(x, y))

    @jax.jit
    def primal(out):
        with ott_promotion():
            return out.primal_cost

    res = fl.transport.sinkhorn(x, y, epsilon=eps, threshold=THRESHOLD)
    ours = jax.jit(lambda r: r.transport_cost())
    timed = H.time_interleaved({
        "ott-jax solve (reg_ot_cost)": lambda: solve(x, y),
        "ott-jax out.primal_cost alone": lambda: primal(out),
        "flowjax_lab transport_cost alone": lambda: ours(res),
    }, repeats=repeats)
    rows = []
    for impl, (timing, value) in timed.items():
        rows.append(H.row(group=group, name="primal_cost", impl=impl, timing=timing,
                          sizes=sizes, dtype="float32", baseline=impl.startswith("ott-jax solve"),
                          extra={"value": float(value)}))
    return rows
