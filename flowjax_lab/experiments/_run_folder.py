"""The life of a run folder ``OUT/<name>``: start or resume, run, render figures, save.

``run`` and ``reproduce`` (CLI and Python) both go through [`run_into`][], so a folder behaves
the same whichever way it was made: ``config.json`` is written first, ``metrics.json`` last (it
marks a finished run), a training experiment checkpoints into ``checkpoint/``, and a figure that
fails to render is reported in the result instead of losing the run.
"""

import concurrent.futures
import dataclasses
import functools
import json
import multiprocessing
import shutil
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from . import _registry
from ._io import CHECKPOINT, load_run, png_bytes, run_config, save_run, write_json
from ._result import Result


def _differences(saved: dict, expected: dict) -> list[str]:
    """``"field: saved a, now b"`` for every setting where a saved folder differs."""
    top = [f"{k}: saved {saved.get(k)!r}, now {v!r}" for k, v in expected.items()
           if k != "config" and saved.get(k) != v]
    old = saved.get("config", {})
    return top + [f"{k}: saved {old.get(k)!r}, now {v!r}"
                  for k, v in expected["config"].items() if old.get(k) != v]


def run_into(out, name: str, *, quick: bool = False, preset: str | None = None, seed: int = 0,
             seeds: int = 1, overrides: dict | None = None, resume: bool = False) -> Result:
    """Run experiment `name` into the folder ``out/name`` and return its [`Result`][].

    Without `resume` any earlier checkpoint is discarded. With `resume`, a finished folder with
    the same settings is read back, an interrupted one continues from its checkpoint, and one
    saved with other settings raises ``ValueError`` naming the differences. Ctrl-C leaves
    ``config.json`` and the checkpoint (no ``metrics.json``) and raises ``KeyboardInterrupt``.
    """
    experiment = _registry.get(name)
    overrides = overrides or {}
    config = experiment.make_config(quick=quick, preset=preset, **overrides)
    if seeds < 1:
        raise ValueError(f"`seeds` must be at least 1, got {seeds}.")
    folder = Path(out) / experiment.name
    expected = json.loads(json.dumps(run_config(
        experiment.name, dataclasses.asdict(config), list(range(seed, seed + seeds)))))
    if resume and (folder / "config.json").exists():
        saved = json.loads((folder / "config.json").read_text())
        if saved != expected:
            raise ValueError(f"cannot resume {folder}: it was run with other settings ("
                             + "; ".join(_differences(saved, expected))
                             + "). Use the same options, or drop --resume.")
        if (folder / "metrics.json").exists():
            return load_run(folder)
    if not resume:
        shutil.rmtree(folder / CHECKPOINT, ignore_errors=True)
    (folder / "metrics.json").unlink(missing_ok=True)
    write_json(folder / "config.json", expected)
    result = _registry.run(experiment.name, quick=quick, preset=preset, seed=seed,
                           seeds=seeds if seeds > 1 else None,
                           checkpoint=folder / CHECKPOINT, **overrides)
    try:
        result.figures = {k: png_bytes(f) for k, f in result.figures.items()}
    except Exception as err:  # a figure bug is reported with the run, not raised
        result.error = f"figure failed: {type(err).__name__}: {err}"
        result.traceback, result.figures = traceback.format_exc(), {}
    save_run(result, folder)
    return result


def _failed(name: str, message: str, trace: str | None = None) -> Result:
    return Result(name, {}, error=message, traceback=trace)


def run_all(out, names: Sequence[str] | None = None, *, quick: bool = False, seed: int = 0,
            resume: bool = False, dtype: str | None = None, progress: bool = True,
            jobs: int = 1) -> Iterator[Result]:
    """Run every registered experiment (or `names`) into ``out``, yielding each result.

    A failing experiment is yielded with its error and the others go on; a module that failed to
    import is yielded first as a failed result (when `names` is None). Ctrl-C propagates.
    `dtype` replaces every config's own; `progress` shows a bar and a line per experiment.
    `jobs` > 1 runs that many experiments at once, each in its own process (started fresh, with
    this process's JAX settings), and yields them as they finish; results do not depend on it.
    """
    chosen = _registry.names() if names is None else [_registry.get(n).name for n in names]
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be an integer >= 1, got {jobs!r}.")
    if names is None:
        for module, trace in _registry.broken().items():
            yield _failed(f"{module} (module)", "ImportError: the module failed to import.", trace)
    task = functools.partial(_run_reported, out, quick=quick, seed=seed, resume=resume,
                             dtype=dtype)
    bar = tqdm(total=len(chosen), desc="reproduce", unit="exp", dynamic_ncols=True,
               disable=not progress)
    try:
        for result in _in_processes(task, chosen, jobs) if jobs > 1 else map(task, chosen):
            bar.update()
            if progress:
                tqdm.write(line(result))
            yield result
    finally:
        bar.close()


def _run_reported(out, name: str, *, quick: bool, seed: int, resume: bool,
                  dtype: str | None) -> Result:
    """``run_into`` with a broken config or an unresumable folder reported as a failed result."""
    try:
        return run_into(out, name, quick=quick, seed=seed, resume=resume,
                        overrides={"dtype": dtype} if dtype else None)
    except OSError:
        raise
    except Exception as err:
        return _failed(name, f"{type(err).__name__}: {err}", traceback.format_exc())


_SHARED_SETTINGS = ("jax_platforms", "jax_enable_x64", "jax_compilation_cache_dir",
                    "jax_persistent_cache_min_compile_time_secs")


def _apply_settings(settings: dict) -> None:
    import jax

    for name, value in settings.items():
        jax.config.update(name, value)


def _in_processes(task, chosen: list[str], jobs: int) -> Iterator[Result]:
    """``task(name)`` for each name in `jobs` fresh processes, in order of completion."""
    import jax

    settings = {k: getattr(jax.config, k) for k in _SHARED_SETTINGS
                if getattr(jax.config, k) is not None}
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
            initializer=_apply_settings, initargs=(settings,)) as pool:
        pending = [pool.submit(task, name) for name in chosen]
        try:
            for future in concurrent.futures.as_completed(pending):
                yield future.result()
        finally:
            for future in pending:
                future.cancel()


def line(result: Result) -> str:
    """One console line: status, name, seconds, checks passed, error and failed checks."""
    status = "error" if result.error else "pass" if result.passed else "fail"
    checks = f"{sum(c.passed for c in result.checks)}/{len(result.checks)} checks"
    failed = ", ".join(result.failed_checks)
    return (f"{status:>7}  {result.name:<32} {result.seconds:6.1f} s  {checks}"
            + (f"  {result.error}" if result.error else "")
            + (f"  failed: {failed}" if failed else ""))
