"""Entropic OT between two clouds: flowjax_lab.transport.sinkhorn vs raw ott-jax vs POT.

Problem: x ~ N(0, I_2), y ~ N(1, I_2), n = m, uniform weights, squared Euclidean cost,
epsilon = mean cost / 20 (ott-jax's default rule, computed once and passed to everyone), stopping
threshold 1e-3 on the L1 norm of the marginal error (ott-jax's default norm; POT stops on an L2
norm, so it gets 1e-3 / sqrt(n), which guarantees the same L1 bound). Every row reports the L1
error of both marginals of the plan it returns, measured afterwards, so that "same tolerance" can
be checked. ``ot.emd2`` solves the exact (unregularised) problem and is listed for scale.

Also measured: ``transport.sinkhorn(momentum=1.5)`` and raw ott-jax with the same constant
momentum (over-relaxation 1.5), which cut the iterations to the same tolerance; ott-jax's
``SinkhornOutput.primal_cost`` (``<P, C>``) against the solve itself.
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


def _pot_rows(group, sizes, dtype_name, x, y, eps, repeats):
    try:
        import ot
    except ImportError:
        return [H.skipped(group=group, name="sinkhorn", impl=f"POT {m}", sizes=sizes,
                          dtype=dtype_name, why="POT not installed (pip install .[peers])")
                for m in ("ot.sinkhorn", "ot.bregman.sinkhorn_log", "ot.emd2")]
    import warnings

    xn, yn = np.asarray(x), np.asarray(y)
    n = xn.shape[0]
    a = np.full(n, 1 / n, xn.dtype)

    def cost():
        return ot.dist(xn, yn)  # squared Euclidean, same dtype

    # POT stops on the L2 norm of the column-marginal error; ||v||_1 <= sqrt(n) ||v||_2, so this
    # threshold guarantees the same L1 error as ott-jax's.
    stop = THRESHOLD / float(np.sqrt(n))

    def kernel():
        return ot.sinkhorn(a, a, cost(), eps, stopThr=stop, numItermax=MAX_ITERATIONS,
                           log=True)

    def log_domain():
        return ot.bregman.sinkhorn_log(a, a, cost(), eps, stopThr=stop,
                                       numItermax=MAX_ITERATIONS, log=True)

    def exact():
        a64 = a.astype(np.float64)
        return ot.emd2(a64, a64, cost().astype(np.float64), numItermax=10_000_000)

    rows = []
    for impl, fn, reps in (("POT ot.sinkhorn (kernel)", kernel, repeats),
                           ("POT ot.bregman.sinkhorn_log", log_domain, max(1, repeats // 2)),
                           ("POT ot.emd2 (exact)", exact, max(1, repeats // 2))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # POT warns when it stops on max iterations
            timing, out = H.time_call(fn, repeats=reps, warmup=0, sync=lambda o: o)
        extra = {"pot_version": ot.__version__, "pot_stopThr_l2": stop}
        if impl.startswith("POT ot.emd2"):
            extra["cost_value"] = float(out)
        else:
            plan, log = out
            extra["marginal_l1_error"] = _marginal_error(plan, n)
            extra["iterations"] = int(log.get("niter", -1))
        rows.append(H.row(group=group, name="sinkhorn", impl=impl, timing=timing, sizes=sizes,
                          dtype=dtype_name, extra=extra))
    return rows


def rows(quick: bool, repeats: int | None = None, max_n: int | None = None) -> list[dict]:
    sizes_n = (200,) if quick else (1000, 4000)
    sizes_n = tuple(n for n in sizes_n if max_n is None or n <= max_n) or sizes_n[:1]
    repeats = repeats or (3 if quick else 7)
    dtype = jnp.float32
    out = []
    for n in sizes_n:
        x, y, eps = problem(n, dtype)
        group = f"sinkhorn n={n}"
        sizes = {"n": n, "m": n, "d": DIM, "epsilon": eps, "threshold": THRESHOLD}
        raw = _ott_solver(x, y, eps)
        relaxed = _ott_solver(x, y, eps, over_relaxation=OVER_RELAXATION)

        def ours(momentum=None):
            r = fl.transport.sinkhorn(x, y, epsilon=eps, threshold=THRESHOLD,
                                      max_iterations=MAX_ITERATIONS, momentum=momentum)
            return r.cost, r.f, r.g, r.iterations, r.converged

        fns = {
            "flowjax_lab transport.sinkhorn": ours,
            f"flowjax_lab sinkhorn momentum={OVER_RELAXATION}":
                lambda: ours(OVER_RELAXATION),
            "ott-jax Sinkhorn (same settings)": lambda: raw(x, y),
            f"ott-jax Sinkhorn, momentum {OVER_RELAXATION}": lambda: relaxed(x, y),
        }
        timed = H.time_interleaved(fns, repeats=repeats)
        for impl, (timing, res) in timed.items():
            iters = int(res[3])
            stats = H.compiled_stats(raw, x, y) if impl.startswith("ott-jax Sinkhorn (") else {}
            out.append(H.row(
                group=group, name="sinkhorn", impl=impl, timing=timing, sizes=sizes,
                dtype="float32", baseline=impl == "flowjax_lab transport.sinkhorn",
                throughput=(iters, "iterations/s"), memory_bytes=stats.get("memory_bytes"),
                extra={"iterations": iters, "converged": bool(res[4]),
                       "marginal_l1_error": _marginal_error_from_potentials(
                           x, y, res[1], res[2], eps)},
            ))
        out.extend(_pot_rows(group, sizes, "float32", x, y, eps, repeats))
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
