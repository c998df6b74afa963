"""The ``flowjax-lab`` command: list, run and reproduce experiments."""

import argparse
import os
import sys
from pathlib import Path


class UserError(Exception):
    """A mistake on the command line: printed without a traceback."""


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {pair!r}.")
        overrides[key.strip()] = value.strip()
    return overrides


def _configure(args) -> None:
    """Device, dtype and compilation cache: set before JAX does any work."""
    if getattr(args, "device", None):
        os.environ["JAX_PLATFORMS"] = args.device
    import jax

    if getattr(args, "dtype", None) == "float64":
        jax.config.update("jax_enable_x64", True)
    cache = Path(os.environ.get("FLOWJAX_LAB_CACHE", Path.home() / ".cache" / "flowjax_lab"))
    jax.config.update("jax_compilation_cache_dir", str(cache / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def cmd_list(args) -> int:
    from . import experiments

    for name in experiments.names():
        exp = experiments.get(name)
        print(f"{name:<28} [{exp.theme}] {exp.description}")
    return 0


def cmd_run(args) -> int:
    from . import experiments

    try:
        experiments.get(args.name)
        result = experiments.run(args.name, quick=args.quick, seed=args.seed,
                                 **_parse_sets(args.set))
    except (ValueError, TypeError) as err:
        raise UserError(str(err)) from err
    folder = experiments.save_run(result, Path(args.out) / args.name)
    print(result.table())
    print(f"written to {folder}")
    if result.traceback:
        print(result.traceback, file=sys.stderr)
    return 0 if result.passed else 1


def cmd_reproduce(args) -> int:
    from . import report

    return 0 if report.reproduce(Path(args.out), quick=args.quick, seed=args.seed) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowjax-lab",
        description="A JAX laboratory of particle clouds moved by vector fields, checked against "
        "theory. Run the field's key results, one experiment, or the whole report.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="runs", help="output folder (default: runs)")
    common.add_argument("--device", choices=["cpu", "gpu", "tpu"], help="JAX platform to use")
    common.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                        help="default floating dtype (default: float32)")
    common.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="list the registered experiments").set_defaults(func=cmd_list)

    run = sub.add_parser("run", parents=[common], help="run one experiment and save its folder",
                         description="Run one experiment; writes config.json, metrics.json, "
                         "figures and arrays into OUT/NAME.")
    run.add_argument("name", help="experiment name (see `flowjax-lab list`)")
    run.add_argument("--quick", action="store_true", help="use the small CI-sized config")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field (repeatable)")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("reproduce", parents=[common], help="run every experiment and write "
                         "the report", description="Run every registered experiment and write "
                         "OUT/report.html and OUT/report.md; exit code 0 when all checks pass.")
    rep.add_argument("--quick", action="store_true", help="small sizes (minutes on 2 CPU cores)")
    rep.set_defaults(func=cmd_reproduce)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _configure(args)
        return args.func(args)
    except UserError as err:
        print(f"flowjax-lab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowjax-lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
