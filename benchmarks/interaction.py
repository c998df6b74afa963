"""Interaction-field evaluation: chunked (memory linear in n) vs a dense (n, n) implementation.

Problem: one velocity evaluation of ``fields.Interaction(GaussianKernel(1), QuadraticPotential(1))``
on x ~ N(0, I_d), float32, against a dense version that materialises the (n, n, d) differences
and kernel gradients, measured in the same run (repeats interleaved). Memory is XLA's estimate of
the compiled program (arguments + outputs + temporaries). The dense version is skipped where its
arrays would exceed DENSE_LIMIT_GB. The chunked rows of each d carry the log-log slope of run
time against n (2 expected: all pairs are evaluated).

    python -m benchmarks --only interaction            # through the suite
    python benchmarks/interaction.py [--quick]          # alone, prints JSON
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
    # n = 1e5 is 1e10 pair evaluations per call: minutes per call on a laptop CPU.
    return {2: (1000, 3000, 10000, 30000), 64: (1000, 3000, 10000)}


def rows(quick: bool, repeats: int | None = None) -> list[dict]:
    repeats = repeats or (2 if quick else 3)
    kernel, potential = flows.GaussianKernel(scale=1.0), flows.QuadraticPotential(1.0)
    field = Interaction(kernel, potential)
    chunked_fn = jax.jit(lambda y: field(0.0, y))
    dense_fn = jax.jit(lambda y: dense_velocity(kernel, potential, y))
    out = []
    for d, ns in sizes_for(quick).items():
        chunked_rows = []
        for n in ns:
            x = jax.random.normal(jax.random.key(n + d), (n, d), jnp.float32)
            sizes = {"n": n, "d": d}
            group = f"interaction n={n} d={d}"
            fns = {"chunked": lambda x=x: chunked_fn(x)}
            dense_gb = 3 * n * n * d * 4 / 2**30
            if dense_gb <= DENSE_LIMIT_GB:
                fns["dense"] = lambda x=x: dense_fn(x)
            timings = H.time_interleaved(fns, repeats=repeats)
            mem = H.compiled_stats(chunked_fn, x)["memory_bytes"]
            chunked = H.row(group=group, name="Interaction (chunked)", impl="flowjax_lab",
                            timing=timings["chunked"][0], sizes=sizes, dtype="float32",
                            baseline=True, throughput=(n * (n - 1), "pairs/s"),
                            memory_bytes=mem)
            out.append(chunked)
            chunked_rows.append(chunked)
            if "dense" in fns:
                diff = float(jnp.max(jnp.abs(timings["dense"][1] - timings["chunked"][1])))
                out.append(H.row(group=group, name="dense (n, n, d)", impl="jax dense",
                                 timing=timings["dense"][0], sizes=sizes, dtype="float32",
                                 throughput=(n * (n - 1), "pairs/s"),
                                 memory_bytes=H.compiled_stats(dense_fn, x)["memory_bytes"],
                                 extra={"max_abs_diff_vs_chunked": diff}))
            else:
                out.append(H.skipped(group=group, name="dense (n, n, d)", impl="jax dense",
                                     sizes=sizes, dtype="float32",
                                     why=f"needs about {dense_gb:.1f} GiB"))
        if len(chunked_rows) >= 2:
            slope = float(np.polyfit(np.log([r["sizes"]["n"] for r in chunked_rows]),
                                     np.log([r["run_s"] for r in chunked_rows]), 1)[0])
            for r in chunked_rows:
                r["loglog_slope_time_vs_n"] = slope
    return out


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    result = rows(quick)
    H.add_ratios(result, None)
    print(json.dumps({"machine": H.machine(True), "rows": result}, indent=1, default=str))
