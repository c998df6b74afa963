"""Run every benchmark module, print a table and write JSON.

    python -m benchmarks [--quick] [--out bench.json] [--only transport simulate] [--repeats 5]
                         [--max-n 16384]

Peers (POT, torch, torchdiffeq, torchcfm) are measured where installed (`pip install .[peers]`),
otherwise their rows say "skipped". The machine's dense matmul rate and its load average are
recorded in the same run: compare ratios within a run, not seconds across runs.
"""

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def modules() -> list[str]:
    """Benchmark module names, discovered in this folder."""
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)])
                  if not m.name.startswith("_"))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="CI-sized problems (seconds)")
    p.add_argument("--out", default="bench.json", help="JSON output file (default bench.json)")
    p.add_argument("--only", nargs="+", metavar="MODULE",
                   help=f"run only these modules (of {', '.join(modules())})")
    p.add_argument("--repeats", type=int, help="timed repeats per row (default: per module)")
    p.add_argument("--max-n", type=int, metavar="N",
                   help="drop the sizes above N in modules with a size sweep (those whose "
                        "rows() takes max_n: attention, transport); the smallest always runs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = modules()
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        print(f"benchmarks: unknown module(s) {unknown}; expected some of {names}",
              file=sys.stderr)
        return 2
    import jax

    from . import _harness as H

    started = time.time()
    info = H.machine(args.quick)
    info["compilation_cache_dir"] = jax.config.jax_compilation_cache_dir
    print(f"device {info['device_kind']} ({info['platform']} x{info['device_count']}), "
          f"load average {info['load_average_1_5_15']}, "
          f"matmul {info['matmul_flops_per_s_float32'] / 1e9:.1f} GFLOP/s (float32, "
          f"n={info['matmul_n']})", flush=True)
    rows, failures = [], {}
    for name in args.only or names:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
            kwargs = {"repeats": args.repeats}
            if args.max_n is not None and "max_n" in inspect.signature(module.rows).parameters:
                kwargs["max_n"] = args.max_n
            module_rows = module.rows(args.quick, **kwargs)
        except Exception:  # noqa: BLE001 - one broken module must not hide the others
            failures[name] = traceback.format_exc()
            print(f"benchmarks: module {name} failed:\n{failures[name]}", file=sys.stderr)
            continue
        for r in module_rows:
            r["module"] = name
        rows.extend(module_rows)
    H.add_ratios(rows, info["matmul_flops_per_s_float32"])
    info["load_average_end"] = list(os.getloadavg())
    info["seconds"] = time.time() - started
    print(H.table(rows))
    report = {"command": " ".join(["python -m benchmarks", *(argv or sys.argv[1:])]),
              "quick": args.quick, "machine": info, "rows": rows, "failures": failures}
    Path(args.out).write_text(json.dumps(report, indent=1, default=str))
    print(f"written to {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
