"""Timing helpers shared by the benchmark modules.

Every benchmark row reports compile time and run time apart: the first call (trace + compile +
one run) is timed alone, then one warm-up call, then ``repeats`` timed calls, each ended by
``jax.block_until_ready`` (or the peer's own synchronisation). Run time is the median of the
repeats, spread their inter-quartile range; compile time is the first call minus that median.
Rows of one ``group`` solve the same problem; ratios are taken against the group's ``baseline``
row, so that figures measured on a loaded machine can be compared within one run.
"""

import dataclasses
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def block(out):
    """Wait for every array in ``out`` (JAX arrays; torch/NumPy results are already there)."""
    return jax.block_until_ready(out)


@dataclasses.dataclass
class Timing:
    """Seconds: `first` call (compile + run), `median` and `iqr` of the timed repeats."""

    first: float
    median: float
    iqr: float
    repeats: int

    @property
    def compile(self) -> float:
        return max(self.first - self.median, 0.0)


def time_call(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1,
              sync: Callable[[Any], Any] = block) -> tuple[Timing, Any]:
    """Time ``fn()``: first call, ``warmup`` untimed calls, then ``repeats`` timed ones."""
    start = time.perf_counter()
    out = sync(fn())
    first = time.perf_counter() - start
    for _ in range(warmup):
        sync(fn())
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = sync(fn())
        samples.append(time.perf_counter() - start)
    return _timing(first, samples), out


def time_interleaved(fns: dict[str, Callable[[], Any]], *, repeats: int = 5, warmup: int = 1,
                     syncs: dict[str, Callable[[Any], Any]] | None = None
                     ) -> dict[str, tuple[Timing, Any]]:
    """Time several callables on the same problem, their repeats taken in turn (round robin),
    so that a change of machine load during the run hits them all alike."""
    syncs = syncs or {}
    firsts, outs, samples = {}, {}, {name: [] for name in fns}
    for name, fn in fns.items():
        sync = syncs.get(name, block)
        start = time.perf_counter()
        outs[name] = sync(fn())
        firsts[name] = time.perf_counter() - start
        for _ in range(warmup):
            sync(fn())
    for _ in range(repeats):
        for name, fn in fns.items():
            sync = syncs.get(name, block)
            start = time.perf_counter()
            outs[name] = sync(fn())
            samples[name].append(time.perf_counter() - start)
    return {name: (_timing(firsts[name], samples[name]), outs[name]) for name in fns}


def _timing(first: float, samples: list[float]) -> Timing:
    if len(samples) >= 4:
        q = statistics.quantiles(samples, n=4)
        iqr = q[2] - q[0]
    else:
        iqr = max(samples) - min(samples)
    return Timing(first, statistics.median(samples), iqr, len(samples))


def compiled_stats(jitted, *args, **kwargs) -> dict[str, float | None]:
    """XLA's FLOP count and memory footprint (bytes) of ``jitted`` at these arguments."""
    stats: dict[str, float | None] = {"flops": None, "memory_bytes": None}
    try:
        compiled = jitted.lower(*args, **kwargs).compile()
    except Exception:  # noqa: BLE001 - not every callable lowers (Python-side checks)
        return stats
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else None
    if cost and cost.get("flops", -1) > 0:
        stats["flops"] = float(cost["flops"])
    mem = compiled.memory_analysis()
    if mem is not None:
        stats["memory_bytes"] = float(
            mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes
        )
    return stats


def device_peak_bytes() -> float | None:
    """Peak bytes in use on the default device (GPU/TPU); ``None`` where JAX does not track it."""
    stats = jax.devices()[0].memory_stats()
    return None if not stats else float(stats.get("peak_bytes_in_use", 0)) or None


def process_peak_rss_bytes() -> float:
    """Peak resident set size of this process so far (bytes; monotone over the run)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak if platform.system() == "Darwin" else peak * 1024)


def matmul_flops_per_second(n: int, dtype=jnp.float32, repeats: int = 5) -> float:
    """Dense ``(n, n) @ (n, n)`` FLOP rate of the default device, measured now."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (n, n), dtype)
    b = jax.random.normal(key_b, (n, n), dtype)
    matmul = jax.jit(jnp.matmul)
    timing, _ = time_call(lambda: matmul(a, b), repeats=repeats)
    return 2.0 * n**3 / timing.median


def machine(quick: bool) -> dict[str, Any]:
    """Device, versions, load and the dense matmul rate (float32), all measured in this run."""
    import numpy as np

    dev = jax.devices()[0]
    info: dict[str, Any] = {
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "x64": bool(jax.config.jax_enable_x64),
    }
    n = 512 if quick else 2048
    info["matmul_n"] = n
    info["matmul_flops_per_s_float32"] = matmul_flops_per_second(n, jnp.float32)
    return info


def row(*, group: str, name: str, impl: str, timing: Timing | None, sizes: dict[str, Any],
        dtype: str, baseline: bool = False, throughput: tuple[float, str] | None = None,
        flops: float | None = None, memory_bytes: float | None = None,
        extra: dict[str, Any] | None = None, skipped: str | None = None) -> dict[str, Any]:
    """One benchmark row as a JSON-ready dict (``throughput`` = (work per run, unit))."""
    out: dict[str, Any] = {
        "group": group, "name": name, "impl": impl, "baseline": baseline, "sizes": sizes,
        "dtype": dtype, "device": jax.devices()[0].platform, "skipped": skipped,
        "compile_s": None, "run_s": None, "run_iqr_s": None, "repeats": None,
        "throughput": None, "throughput_unit": None, "flops": flops,
        "flops_per_s": None, "memory_bytes": memory_bytes,
    }
    if timing is not None:
        out.update(compile_s=timing.compile, run_s=timing.median, run_iqr_s=timing.iqr,
                   repeats=timing.repeats)
        if throughput is not None:
            out["throughput"] = throughput[0] / timing.median
            out["throughput_unit"] = throughput[1]
        if flops is not None:
            out["flops_per_s"] = flops / timing.median
    out.update(extra or {})
    return out


def skipped(*, group: str, name: str, impl: str, sizes: dict[str, Any], dtype: str,
            why: str) -> dict[str, Any]:
    """A row for a peer that is not installed or failed, with the reason."""
    return row(group=group, name=name, impl=impl, timing=None, sizes=sizes, dtype=dtype,
               skipped=why)


def add_ratios(rows: list[dict[str, Any]], matmul_rate: float | None) -> list[dict[str, Any]]:
    """``time_vs_baseline`` = run time / the group baseline's run time (> 1: slower than ours);
    ``matmul_fraction`` = achieved FLOP/s / the dense matmul rate of this run."""
    baselines = {r["group"]: r for r in rows if r["baseline"] and r["run_s"]}
    for r in rows:
        base = baselines.get(r["group"])
        ok = base is not None and r["run_s"]
        r["time_vs_baseline"] = r["run_s"] / base["run_s"] if ok else None
        fps = r.get("flops_per_s")
        r["matmul_fraction"] = fps / matmul_rate if fps and matmul_rate else None
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    """A readable fixed-width table of the rows."""
    head = (f"{'group':<24} {'impl':<34} {'compile s':>9} {'run s':>10} {'iqr s':>9} "
            f"{'x base':>7} {'throughput':>20} {'mm frac':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["skipped"]:
            lines.append(f"{r['group']:<24} {r['impl']:<34} skipped: {r['skipped']}")
            continue
        tput = "-"
        if r["throughput"] is not None:
            tput = f"{r['throughput']:.3g} {r['throughput_unit']}"
        lines.append(
            f"{r['group']:<24} {r['impl']:<34} {_fmt(r['compile_s'], '9.3f')} "
            f"{_fmt(r['run_s'], '10.4g')} {_fmt(r['run_iqr_s'], '9.2g')} "
            f"{_fmt(r['time_vs_baseline'], '7.2f')} {tput:>20} "
            f"{_fmt(r['matmul_fraction'], '7.3f')}"
        )
    return "\n".join(lines)
