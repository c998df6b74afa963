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
Third round, every n: GeomLoss ``SamplesLoss("sinkhorn", backend="online")`` (KeOps) on the same
problem (its conventions and the accuracy setting: ``_geomloss_fn``), one first call and 1-2
repeats (it is slow on CPU).

``python -m benchmarks.transport --n N --impl ...`` runs the solvers named, timed one after
the other (run one per process for its peak RSS; README, "Sinkhorn at scale against
GeomLoss"); ``--check`` compares each returned value and the plan's marginals against a float64
reference.
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
    # the mean of |x_i - y_j|^2 over all pairs, without the (n, m) matrix (float64)
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    mean_cost = (xn**2).sum(1).mean() + (yn**2).sum(1).mean() - 2 * xn.mean(0) @ yn.mean(0)
    eps = float(mean_cost) / 20
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


# GeomLoss's epsilon-scaling ratio in the benchmark rows: the cheapest of those tried at n = 2000
# (``python -m benchmarks.transport --n 2000 --check --impl geomloss --scaling ...``) whose
# returned value is within 1e-4 (relative) of the float64 reference (0.7 and 0.8: 6e-4). No
# ratio tried gives marginals as accurate as ours at THRESHOLD (0.995: 9e-4 L1 against our
# 6e-4, at ~700x our time); README, "Sinkhorn at scale against GeomLoss".
GEOMLOSS_SCALING = 0.9


def _geomloss_fn(x, y, eps, *, scaling=GEOMLOSS_SCALING, backend="online"):
    """GeomLoss's ``SamplesLoss("sinkhorn", backend="online")`` on our problem, or the reason
    it is missing. Returns a callable giving (cost, f, g) in our conventions.

    GeomLoss's cost for p = 2 is |x - y|^2 / 2 and its epsilon is ``blur ** p``, so our
    (C = |x - y|^2, eps) is its (C / 2, eps / 2): ``blur = sqrt(eps / 2)``; its value and
    potentials are half of ours. ``debias=False`` (the entropic OT cost, not the Sinkhorn
    divergence). Its potentials F, G give the plan ``a_i b_j exp((F_i + G_j - C_ij / 2) /
    (eps / 2))``; ott-jax's absorb the weights: ``f = 2 F + eps log a``. GeomLoss has no stopping
    tolerance: it runs its epsilon schedule (from diameter^2 down to blur^2, ratio
    ``scaling ** 2`` per step, then one extrapolation step), so its accuracy is set by
    `scaling`, checked against a float64 reference (``--check``)."""
    try:
        import torch
        from geomloss import SamplesLoss
    except ImportError:
        return None, "geomloss not installed (see benchmarks/README.md, peers)"
    xt = torch.from_numpy(np.array(x))
    yt = torch.from_numpy(np.array(y))
    n, m = xt.shape[0], yt.shape[0]
    loss = SamplesLoss("sinkhorn", p=2, blur=float(np.sqrt(eps / 2)), scaling=scaling,
                       debias=False, backend=backend, potentials=True)

    def solve():
        with torch.no_grad():
            F, G = loss(xt, yt)
        F, G = F.reshape(-1).double(), G.reshape(-1).double()
        cost = 2 * (F.mean() + G.mean())
        return (float(cost), 2 * F.numpy() + eps * np.log(1 / n),
                2 * G.numpy() + eps * np.log(1 / m))

    import geomloss
    return solve, {"geomloss_version": geomloss.__version__, "geomloss_scaling": scaling,
                   "geomloss_blur": float(np.sqrt(eps / 2)), "geomloss_backend": backend}


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
        geomloss, gl_info = _geomloss_fn(x, y, eps)
        glname = f"GeomLoss online (scaling={GEOMLOSS_SCALING})"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # POT warns when it stops on max iterations
            timed = H.time_interleaved(fast, repeats=repeats, syncs=pot_sync)
            if slow:
                timed |= H.time_interleaved(slow, repeats=max(2, repeats // 3), syncs=pot_sync)
            if geomloss is not None:  # ~1e8 pairs/s on 2 CPU cores: one first call, 1-2 repeats
                timed |= H.time_interleaved({glname: geomloss}, repeats=max(1, repeats // 5),
                                            warmup=0, syncs={glname: lambda o: o})
        for impl, (timing, res) in timed.items():
            if impl == glname:
                cost, f, g = res
                out.append(H.row(group=group, name="sinkhorn", impl=impl, timing=timing,
                                 sizes=sizes, dtype="float32", extra=gl_info | {
                                     "timed_in": "third round", "cost_value": cost,
                                     "marginal_l1_error": _plan_stats(x, y, f, g, eps)[
                                         "marginal_l1_error"]}))
                continue
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
                          "cost_value": float(res[0]),
                          "marginal_l1_error": _marginal_error_from_potentials(
                              x, y, res[1], res[2], eps)}
            out.append(H.row(group=group, name="sinkhorn", impl=impl, timing=timing,
                             sizes=sizes, dtype="float32", baseline=impl == baseline,
                             throughput=throughput, extra=extra))
        if missing:
            out.append(H.skipped(group=group, name="sinkhorn", impl="POT", sizes=sizes,
                                 dtype="float32", why=missing))
        if geomloss is None:
            out.append(H.skipped(group=group, name="sinkhorn", impl=glname, sizes=sizes,
                                 dtype="float32", why=gl_info))
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


# --------------------------------------------------------------------------------------------
# Sinkhorn at scale against GeomLoss (one solve per process, for peak memory) and the float64
# accuracy check. ``python -m benchmarks.transport --help``.


def _plan_stats(x, y, f, g, eps, rows_per_block: int = 1000) -> dict:
    """From potentials (ott-jax convention, P = exp((f + g - C) / eps)), in float64, block by
    block: L1 error of both marginals (uniform weights), <P, C> and the primal entropic cost
    <P, C> + eps KL(P | a b^T) (KL with the mass term, = the dual value at the optimum)."""
    xn, yn, f, g = (np.asarray(v, np.float64) for v in (x, y, f, g))
    n, m = xn.shape[0], yn.shape[0]
    rows_sum, cols_sum, pc, plogp = np.zeros(n), np.zeros(m), 0.0, 0.0
    for s in range(0, n, rows_per_block):
        xb = xn[s:s + rows_per_block]
        c = ((xb[:, None, :] - yn[None, :, :]) ** 2).sum(-1)
        logp = (f[s:s + rows_per_block, None] + g[None, :] - c) / eps
        p = np.exp(logp)
        rows_sum[s:s + rows_per_block] = p.sum(1)
        cols_sum += p.sum(0)
        pc += float((p * c).sum())
        plogp += float((p * logp).sum())
    mass = rows_sum.sum()
    kl = plogp - mass * np.log(1 / (n * m)) - mass + 1.0
    err = np.abs(rows_sum - 1 / n).sum() + np.abs(cols_sum - 1 / m).sum()
    return {"marginal_l1_error": float(err), "transport_cost": pc,
            "primal_entropic_cost": pc + eps * kl}


def _reference(x, y, eps) -> dict:
    """float64 Sinkhorn (POT) to a marginal error of ~1e-12: kernel mode, or the log domain
    when the kernel's result is not that accurate (underflow)."""
    import warnings

    import ot
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = xn.shape[0]
    a = np.full(n, 1 / n)
    cost = ot.dist(xn, yn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, log = ot.sinkhorn(a, a, cost, eps, stopThr=1e-13, numItermax=100_000, log=True)
    # POT: P = diag(u) K diag(v), so f = eps log u, g = eps log v in the ott-jax convention.
    with np.errstate(divide="ignore"):
        f, g = eps * np.log(log["u"]), eps * np.log(log["v"])
    stats = _plan_stats(xn, yn, f, g, eps) | {"solver": "ot.sinkhorn float64"}
    if not stats["marginal_l1_error"] <= 1e-10:
        _, log = ot.bregman.sinkhorn_log(a, a, cost, eps, stopThr=1e-14,
                                         numItermax=100_000, log=True)
        f, g = eps * log["log_u"], eps * log["log_v"]
        stats = _plan_stats(xn, yn, f, g, eps) | {"solver": "ot.bregman.sinkhorn_log float64"}
    return stats | {"iterations": int(log["niter"])}


def _solvers(x, y, eps, which, *, block_size=None, scaling=GEOMLOSS_SCALING,
             max_iterations=MAX_ITERATIONS):
    """name -> callable returning (cost or None, f, g) in ott-jax's convention."""
    n = x.shape[0]
    out = {}
    if "ours" in which:
        def ours():
            r = fl.transport.sinkhorn(x, y, epsilon=eps, threshold=THRESHOLD,
                                      max_iterations=max_iterations)
            jax.block_until_ready(r.f)
            return float(r.cost), np.asarray(r.f), np.asarray(r.g), int(r.iterations)
        out["ours (default route)"] = ours
    if "ours-blocked" in which:
        from flowjax_lab import _blocks
        bs = block_size or _blocks.row_block(n, n, x.dtype)  # the size-chosen default

        def blocked():
            r = fl.transport.sinkhorn(x, y, epsilon=eps, threshold=THRESHOLD,
                                      max_iterations=max_iterations, block_size=bs)
            jax.block_until_ready(r.f)
            return float(r.cost), np.asarray(r.f), np.asarray(r.g), int(r.iterations)
        out[f"ours block_size={bs}"] = blocked
    if "geomloss" in which:
        fn, _ = _geomloss_fn(x, y, eps, scaling=scaling)
        out[f"GeomLoss online scaling={scaling}"] = lambda: (*fn(), None)
    if "pot" in which:
        import ot
        xn, yn = np.asarray(x), np.asarray(y)
        a = np.full(n, 1 / n, xn.dtype)

        def pot():
            _, log = ot.sinkhorn(a, a, ot.dist(xn, yn), eps,
                                 stopThr=THRESHOLD / float(np.sqrt(n)),
                                 numItermax=MAX_ITERATIONS, log=True)
            return None, eps * np.log(log["u"]), eps * np.log(log["v"]), int(log["niter"])
        out["POT ot.sinkhorn (kernel)"] = pot
    return out


def _main(argv=None) -> int:
    import argparse
    import json
    import os
    import time

    p = argparse.ArgumentParser(prog="python -m benchmarks.transport",
                                description="Sinkhorn at scale: ours vs GeomLoss online vs POT.")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--impl", nargs="+", default=["ours", "ours-blocked", "geomloss", "pot"],
                   choices=["ours", "ours-blocked", "geomloss", "pot"])
    p.add_argument("--check", action="store_true",
                   help="also solve a float64 reference and compare values and marginals "
                        "(and try GeomLoss at several --scaling values)")
    p.add_argument("--scaling", type=float, nargs="+", default=[GEOMLOSS_SCALING])
    p.add_argument("--block-size", type=int, default=None)
    p.add_argument("--max-iterations", type=int, default=MAX_ITERATIONS,
                   help="ours only: a budget below convergence times a few iterations at "
                        "sizes where a converged solve takes too long")
    p.add_argument("--repeats", type=int, default=1, help="timed solves after the first")
    p.add_argument("--stats", action="store_true",
                   help="marginal errors and costs from the potentials (float64, O(n^2) time)")
    args = p.parse_args(argv)
    x, y, eps = problem(args.n, jnp.float32)
    print(json.dumps({"n": args.n, "d": DIM, "epsilon": eps, "threshold": THRESHOLD,
                      "load": os.getloadavg(), "rss_after_setup_MiB":
                      H.process_peak_rss_bytes() / 2**20}), flush=True)
    if args.check:
        ref = _reference(x, y, eps)
        print(json.dumps({"impl": "float64 reference (POT)"} | ref),
              flush=True)
    fns = {}
    for s in args.scaling:
        fns |= _solvers(x, y, eps, args.impl, block_size=args.block_size, scaling=s,
                        max_iterations=args.max_iterations)
    for name, fn in fns.items():
        start = time.perf_counter()
        res = fn()
        first = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            res = fn()
            times.append(time.perf_counter() - start)
        cost, f, g, iters = res
        rec = {"impl": name, "first_s": first, "run_s": times, "iterations": iters,
               "cost": cost, "peak_rss_MiB": H.process_peak_rss_bytes() / 2**20,
               "load": os.getloadavg()}
        if args.stats or args.check:
            rec |= _plan_stats(x, y, f, g, eps)
        if args.check:
            rec["cost_rel_err_vs_ref"] = (None if cost is None else
                                          abs(cost - ref["primal_entropic_cost"])
                                          / abs(ref["primal_entropic_cost"]))
            rec["primal_rel_err_vs_ref"] = (abs(rec["primal_entropic_cost"]
                                                - ref["primal_entropic_cost"])
                                            / abs(ref["primal_entropic_cost"]))
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(_main())
