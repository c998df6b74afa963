"""Interaction field: the radial fast path against the generic per-pair path, a dense (n, n)
version and KeOps; the field and its gradient, time and compiled memory.

Problem: ``fields.Interaction(GaussianKernel(1), QuadraticPotential(1))`` on x ~ N(0, I_d),
float32. Two parts, each measured in one run with the repeats interleaved:

- sweep (d = 2 and 64): one velocity evaluation of the fast path (a `RadialKernel`: pair terms
  from blocks of squared distances) against a dense version that materialises the (n, n, d)
  differences and kernel gradients (skipped where its arrays would exceed DENSE_LIMIT_GB). The
  fast rows of each d carry the log-log slope of run time against n (2 expected).
- scale (d = 3, n = 10^4 and 10^5): the field and its gradient (``jax.grad`` of
  ``sum(v(x) * r)``) by the fast path, by the generic path (the same kernel behind a lambda, so
  that `Interaction` differentiates it once per pair) and by KeOps (``pykeops.torch.LazyTensor``,
  where it imports; its CPU kernels compile on first use). On CPU the generic path and KeOps run
  up to n = SLOW_MAX_N, and n = 1e5 is timed once.

Memory is XLA's estimate of the compiled program (arguments + outputs + temporaries).

    python -m benchmarks --only interaction            # through the suite
    python benchmarks/interaction.py [--quick] [--scale] [--max-n N]   # alone, prints JSON
    python benchmarks/interaction.py --scale --keops-at-scale --what field   # KeOps at 10^5 too
"""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    from benchmarks import _harness as H
else:
    from . import _harness as H

from flowjax_lab import flows
from flowjax_lab.fields import Interaction

DENSE_LIMIT_GB = 4.0
SLOW_MAX_N = 10_000  # on CPU, the generic path and KeOps at n = 1e5 take minutes per call
KERNEL, POTENTIAL = flows.GaussianKernel(scale=1.0), flows.QuadraticPotential(1.0)


def dense_velocity(kernel, potential, x):
    n = x.shape[0]
    off = ~jnp.eye(n, dtype=bool)
    z = jnp.where(off[..., None], x[:, None, :] - x[None, :, :], 1)
    grads = jnp.where(off[..., None], jax.vmap(jax.vmap(jax.grad(kernel)))(z), 0)
    return -jax.vmap(jax.grad(potential))(x) - jnp.sum(grads, axis=1) / n


def sizes_for(quick: bool) -> dict[int, tuple[int, ...]]:
    if quick:
        return {2: (1000, 3000), 64: (1000,)}
    if jax.devices()[0].platform in ("gpu", "tpu"):
        return {2: (1000, 3000, 10000, 30000, 100000), 64: (1000, 3000, 10000, 30000, 100000)}
    # n = 1e5 is 1e10 pair evaluations per call: seconds per call on a laptop CPU.
    return {2: (1000, 3000, 10000, 30000), 64: (1000, 3000, 10000)}


def sweep_rows(quick: bool, repeats: int) -> list[dict]:
    field = Interaction(KERNEL, POTENTIAL)
    fast_fn = jax.jit(lambda y: field(0.0, y))
    dense_fn = jax.jit(lambda y: dense_velocity(KERNEL, POTENTIAL, y))
    out = []
    for d, ns in sizes_for(quick).items():
        fast_rows = []
        for n in ns:
            x = jax.random.normal(jax.random.key(n + d), (n, d), jnp.float32)
            sizes = {"n": n, "d": d}
            group = f"interaction n={n} d={d}"
            fns = {"fast": lambda x=x: fast_fn(x)}
            dense_gb = 3 * n * n * d * 4 / 2**30
            if dense_gb <= DENSE_LIMIT_GB:
                fns["dense"] = lambda x=x: dense_fn(x)
            timings = H.time_interleaved(fns, repeats=repeats)
            fast = H.row(group=group, name="Interaction (radial fast path)", impl="flowjax_lab",
                         timing=timings["fast"][0], sizes=sizes, dtype="float32", baseline=True,
                         throughput=(n * (n - 1), "pairs/s"),
                         memory_bytes=H.compiled_stats(fast_fn, x)["memory_bytes"])
            out.append(fast)
            fast_rows.append(fast)
            if "dense" in fns:
                diff = float(jnp.max(jnp.abs(timings["dense"][1] - timings["fast"][1])))
                out.append(H.row(group=group, name="dense (n, n, d)", impl="jax dense",
                                 timing=timings["dense"][0], sizes=sizes, dtype="float32",
                                 throughput=(n * (n - 1), "pairs/s"),
                                 memory_bytes=H.compiled_stats(dense_fn, x)["memory_bytes"],
                                 extra={"max_abs_diff_vs_fast": diff}))
            else:
                out.append(H.skipped(group=group, name="dense (n, n, d)", impl="jax dense",
                                     sizes=sizes, dtype="float32",
                                     why=f"needs about {dense_gb:.1f} GiB"))
        if len(fast_rows) >= 2:
            slope = float(np.polyfit(np.log([r["sizes"]["n"] for r in fast_rows]),
                                     np.log([r["run_s"] for r in fast_rows]), 1)[0])
            for r in fast_rows:
                r["loglog_slope_time_vs_n"] = slope
    return out


def _keops_fns(x, r):
    """``{"field": ..., "gradient": ...}`` by KeOps for the same problem, or a reason why not."""
    try:
        import torch
        from pykeops.torch import LazyTensor
    except Exception as err:  # noqa: BLE001 - any import failure means "not available"
        return None, f"pykeops not importable ({type(err).__name__}: {err})"
    n, scale = x.shape[0], KERNEL.scale
    xt = torch.tensor(np.asarray(x))
    rt = torch.tensor(np.asarray(r))

    def velocity(y):  # -grad V - 1/n sum_j grad W(x_i - x_j), grad W(z) = -z W(z) / scale^2
        diff = LazyTensor(y[:, None, :]) - LazyTensor(y[None, :, :])
        w = (-(diff**2).sum(-1) / (2 * scale**2)).exp()
        return -y + (w * diff).sum(1) / (n * scale**2)

    def field():
        with torch.no_grad():
            return velocity(xt).numpy()

    def gradient():
        y = xt.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad((velocity(y) * rt).sum(), y)
        return grad.numpy()

    return {"field": field, "gradient": gradient}, None


def scale_rows(quick: bool, repeats: int, max_n: int | None = None, keops_at_scale: bool = False,
               whats: tuple = ("field", "gradient")) -> list[dict]:
    """`keops_at_scale`: KeOps at every n on CPU too (one timing each: minutes at 10^5)."""
    ns = (1000, 3000) if quick else (10_000, 100_000)
    ns = tuple(n for n in ns if max_n is None or n <= max_n) or ns[:1]
    d = 3
    fast_field = Interaction(KERNEL, POTENTIAL)
    generic_field = Interaction(lambda z: KERNEL(z), POTENTIAL)  # the type hidden: generic path
    out = []
    for n in ns:
        key_x, key_r = jax.random.split(jax.random.key(n))
        x = jax.random.normal(key_x, (n, d), jnp.float32)
        r = jax.random.normal(key_r, (n, d), jnp.float32)
        sizes = {"n": n, "d": d}
        slow_ok = n <= SLOW_MAX_N or jax.devices()[0].platform != "cpu"
        keops, keops_missing = _keops_fns(x, r) if slow_ok or keops_at_scale else (None, None)
        for what in whats:
            group = f"interaction {what} n={n} d={d}"
            jitted = {}
            for path, field in (("fast", fast_field), ("generic", generic_field)):
                if path == "generic" and not slow_ok:
                    continue
                v = lambda y, field=field: field(0.0, y)
                jitted[path] = jax.jit(v if what == "field"
                                       else jax.grad(lambda y, v=v: jnp.sum(v(y) * r)))
            fns = {path: (lambda f=f: f(x)) for path, f in jitted.items()}
            syncs = {}
            if keops is not None:
                fns["keops"] = keops[what]
                syncs["keops"] = lambda o: o
            timings = H.time_interleaved(fns, repeats=repeats if slow_ok else 1, warmup=0,
                                         syncs=syncs)
            reference = np.asarray(timings["fast"][1])
            names = {"fast": ("Interaction (radial fast path)", "flowjax_lab"),
                     "generic": ("Interaction (generic per-pair autodiff)", "flowjax_lab"),
                     "keops": ("KeOps LazyTensor (torch)", "pykeops")}
            for path, (timing, result) in timings.items():
                memory = (H.compiled_stats(jitted[path], x)["memory_bytes"]
                          if path in jitted else None)
                diff = float(np.max(np.abs(np.asarray(result) - reference))
                             / np.max(np.abs(reference)))
                out.append(H.row(group=group, name=names[path][0], impl=names[path][1],
                                 timing=timing, sizes=sizes, dtype="float32",
                                 baseline=path == "fast", throughput=(n * (n - 1), "pairs/s"),
                                 memory_bytes=memory,
                                 extra={"max_rel_diff_vs_fast": diff}))
            slow = f"n > {SLOW_MAX_N} on CPU: minutes per call (time grows as n^2)"
            if not slow_ok:
                out.append(H.skipped(group=group, name=names["generic"][0], impl="flowjax_lab",
                                     sizes=sizes, dtype="float32", why=slow))
            if keops is None:
                out.append(H.skipped(group=group, name=names["keops"][0], impl="pykeops",
                                     sizes=sizes, dtype="float32", why=keops_missing or slow))
    return out


def rows(quick: bool, repeats: int | None = None, max_n: int | None = None) -> list[dict]:
    repeats = repeats or (2 if quick else 3)
    return sweep_rows(quick, repeats) + scale_rows(quick, repeats, max_n)


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    max_n = int(sys.argv[sys.argv.index("--max-n") + 1]) if "--max-n" in sys.argv else None
    whats = (sys.argv[sys.argv.index("--what") + 1],) if "--what" in sys.argv else ("field",
                                                                                 "gradient")
    result = (scale_rows(quick, 2 if quick else 3, max_n, "--keops-at-scale" in sys.argv, whats)
              if "--scale" in sys.argv else rows(quick, max_n=max_n))
    H.add_ratios(result, None)
    print(json.dumps({"machine": H.machine(True), "rows": result}, indent=1, default=str))
