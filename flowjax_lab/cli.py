"""The ``flowjax-lab`` command: list, run and reproduce experiments."""

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

EPILOG = """examples:
  flowjax-lab list --verbose
  flowjax-lab run gaussian-transport --quick --set n=2000 --seeds 3
  flowjax-lab reproduce --quick --out runs
  srun --ntasks-per-node=1 flowjax-lab run aggregation --distributed"""


class UserError(Exception):
    """A mistake on the command line: printed without a traceback."""


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}.")
        overrides[key.strip()] = value.strip()
    return overrides


def _configure(args) -> None:
    """Device and compilation cache: set before JAX does any work."""
    import jax

    if getattr(args, "device", None):
        jax.config.update("jax_platforms", args.device)
    if getattr(args, "distributed", False):  # before JAX starts its backend
        from .parallel import initialize

        try:
            initialize()
        except (ValueError, TypeError, RuntimeError) as err:
            raise UserError(f"--distributed: {err}") from err
    if getattr(args, "device", None):
        try:
            platform = jax.devices()[0].platform
        except RuntimeError as err:
            raise UserError(f"--device {args.device}: no such device is available here "
                            f"({str(err).splitlines()[0]})") from err
        if platform != args.device:
            raise UserError(f"--device {args.device}: JAX is already running on {platform}.")
    cache = os.environ.get("FLOWJAX_LAB_CACHE", str(Path.home() / ".cache" / "flowjax_lab"))
    if cache:  # FLOWJAX_LAB_CACHE="" turns the persistent compilation cache off
        jax.config.update("jax_compilation_cache_dir", str(Path(cache) / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def _user_errors(call, *args, **kwargs):
    """Run `call`, turning argument mistakes (ValueError, TypeError) into a `UserError`."""
    try:
        return call(*args, **kwargs)
    except (ValueError, TypeError) as err:
        raise UserError(str(err)) from err


def cmd_list(args) -> int:
    from . import experiments

    for theme in experiments.THEMES:
        chosen = experiments.names(theme)
        print(f"{theme[0].upper() + theme[1:]} ({len(chosen)})")
        for name in chosen:
            exp = experiments.get(name)
            tag = "  [trains; --resume]" if exp.resumable else ""
            print(f"  {name:<30} {exp.description}{tag}")
            if args.verbose:
                quick = exp.config.quick()
                for field, kind, default in exp.fields():
                    small = getattr(quick, field)
                    note = f"   (quick: {small!r})" if small != default else ""
                    print(f"      {field} : {kind} = {default!r}{note}")
                if exp.presets():
                    print(f"      presets (--preset): {', '.join(exp.presets())}")
        print()
    for module, trace in experiments.broken().items():
        print(f"  BROKEN module {module}: {trace.strip().splitlines()[-1]}")
    return 0


def cmd_run(args) -> int:
    import jax

    from . import experiments
    from .experiments._io import CHECKPOINT

    experiment = _user_errors(experiments.get, args.name)
    overrides = _user_errors(experiment.coerce, _parse_sets(args.set))
    if args.dtype:
        if overrides.get("dtype", args.dtype) != args.dtype:
            raise UserError(f"--dtype {args.dtype} and --set dtype={overrides['dtype']} differ.")
        overrides["dtype"] = args.dtype
    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {args.seeds}.")
    if args.resume and args.distributed:
        raise UserError("--resume with --distributed is not supported: only process 0 keeps "
                        "the checkpoint; run without --resume.")
    folder = Path(args.out) / experiment.name
    if args.resume and not experiment.resumable:
        raise UserError(f"{experiment.name!r} does not train, so it has no checkpoint to "
                        "resume; run it without --resume.")
    if args.resume and not (folder / "config.json").exists():
        print(f"flowjax-lab: no run to resume in {folder}; starting a new one.", file=sys.stderr)
    # With --distributed every process runs the experiment; only process 0 keeps the folder.
    main_process = not args.distributed or jax.process_index() == 0
    try:
        with contextlib.ExitStack() as stack:
            out = args.out if main_process else stack.enter_context(tempfile.TemporaryDirectory())
            result = _user_errors(experiments.run_into, out, experiment.name, quick=args.quick,
                                  preset=args.preset, seed=args.seed, seeds=args.seeds,
                                  overrides=overrides, resume=args.resume)
    except KeyboardInterrupt:
        if experiment.resumable:
            print(f"flowjax-lab: interrupted; the checkpoint is in {folder / CHECKPOINT}. "
                  "Continue with the same command and --resume.", file=sys.stderr)
        raise
    except OSError as err:
        raise UserError(f"cannot write the run folder {folder}: {err}") from err
    if not main_process:
        return 0 if result.passed else 1
    print(result.table())
    if result.traceback:
        print(result.traceback, file=sys.stderr)
    print(f"written to {folder}")
    return 0 if result.passed else 1


def cmd_reproduce(args) -> int:
    from . import experiments
    from ._reproduce import reproduce

    names = None
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}.")
    if args.only:
        names = [_user_errors(experiments.get, n.strip()).name
                 for n in args.only.split(",") if n.strip()]
    try:
        passed = reproduce(Path(args.out), quick=args.quick, seed=args.seed, names=names,
                           resume=args.resume, dtype=args.dtype, progress=not args.quiet,
                           jobs=args.jobs)
    except OSError as err:
        raise UserError(f"cannot write the report in {args.out}: {err}") from err
    return 0 if passed else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowjax-lab",
        description="A JAX laboratory of particle clouds moved by vector fields, checked against "
        "theory. List the experiments, run one, or reproduce them all in one report.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", default="runs", metavar="DIR",
                        help="output folder (default: runs)")
    common.add_argument("--device", choices=["cpu", "gpu", "tpu"],
                        help="JAX platform to run on (default: the best available)")
    common.add_argument("--dtype", choices=["float32", "float64"],
                        help="floating dtype of the runs: sets each experiment's `dtype` "
                        "field (default: the config's, float32)")
    common.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    common.add_argument("--quiet", action="store_true",
                        help="no progress bars (shown on a terminal only, in any case)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lst = sub.add_parser("list", help="list the registered experiments by theme",
                         description="List the registered experiments, grouped by theme.")
    lst.add_argument("-v", "--verbose", action="store_true",
                     help="also show each config field with its type, default and quick value")
    lst.set_defaults(func=cmd_list)

    run = sub.add_parser(
        "run", parents=[common], help="run one experiment and save its run folder",
        description="Run one experiment (at the papers' size unless --quick) and write "
        "config.json, metrics.json, figures (PNG) and arrays.npz into OUT/NAME. Exit code 0 when "
        "every check passes. Training experiments checkpoint into OUT/NAME/checkpoint: "
        "Ctrl-C stops after the current chunk, and --resume continues to the same numbers.")
    run.add_argument("name", help="experiment name (see `flowjax-lab list`)")
    run.add_argument("--quick", action="store_true", help="use the small CI-sized config")
    run.add_argument("--preset", metavar="NAME",
                     help="use the config's preset NAME instead (e.g. paper; see list -v)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, type-checked (repeatable; see list -v)")
    run.add_argument("--seeds", type=int, default=1, metavar="N",
                     help="run seeds SEED..SEED+N-1 and report mean/std and worst check "
                     "(default: 1)")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted training run from OUT/NAME/checkpoint")
    run.add_argument("--distributed", action="store_true",
                     help="one of several processes (jax.distributed): the coordinator, count "
                     "and index come from FLOWJAX_LAB_COORDINATOR, FLOWJAX_LAB_NUM_PROCESSES, "
                     "FLOWJAX_LAB_PROCESS_ID or the scheduler (SLURM, Open MPI, TPU pod); only "
                     "process 0 writes OUT/NAME")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser(
        "reproduce", parents=[common], help="run every experiment and write the report",
        description="Run every registered experiment, save each run folder in OUT, and write "
        "OUT/report.html (self-contained, figures embedded) and OUT/report.md. A failed "
        "experiment is reported and the others go on; exit code 0 when all checks pass.")
    rep.add_argument("--quick", action="store_true",
                     help="small sizes (within 15 minutes on 2 CPU cores)")
    rep.add_argument("--only", metavar="NAME[,NAME]", help="run only these experiments")
    rep.add_argument("--resume", action="store_true",
                     help="keep finished runs with the same config and resume training runs")
    rep.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="experiments run at once, each in its own process (default: 1; one per "
                     "CPU core is a good choice on a CPU, 1 on a GPU, whose memory each process "
                     "would claim)")
    rep.set_defaults(func=cmd_reproduce)

    def cmd_bench(args) -> int:  # benchmarks/ ships with the source checkout, not the wheel
        root = Path(__file__).resolve().parents[1]
        if (root / "benchmarks" / "__main__.py").exists() and str(root) not in sys.path:
            sys.path.insert(0, str(root))
        try:
            from benchmarks.__main__ import main as bench_main
        except ImportError as err:
            raise UserError("`bench` needs the benchmarks/ folder of a source checkout of "
                            f"flowjax_lab (git clone, then pip install -e .): {err}") from err
        return bench_main(["--out", args.out] + ["--quick"] * args.quick
                          + (["--only", *args.only] if args.only else []))

    bench = sub.add_parser(
        "bench", help="run the benchmark suite (peers side by side where installed)",
        description="Run benchmarks/ (same as python -m benchmarks): compile and run times "
        "apart, peers (pip install .[peers]) as ratios in the same run; a table and a JSON file.")
    bench.add_argument("--quick", action="store_true", help="CI-sized problems")
    bench.add_argument("--out", default="bench.json", metavar="FILE",
                       help="JSON output (default: bench.json)")
    bench.add_argument("--only", nargs="+", metavar="MODULE", help="only these modules")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _configure(args)
        from .learn import quiet

        with quiet(getattr(args, "quiet", False)):  # the training bars inside experiments
            return args.func(args)
    except UserError as err:
        print(f"flowjax-lab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowjax-lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
