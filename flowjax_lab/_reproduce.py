"""``reproduce``: every experiment into its run folder, then the report of what was saved."""

import time
from pathlib import Path

from . import experiments, report
from .experiments._result import Result
from .experiments._run_folder import run_all


def reproduce(out, *, quick: bool = False, seed: int = 0, names: list[str] | None = None,
              resume: bool = False, dtype: str | None = None, progress: bool = True,
              jobs: int = 1) -> bool:
    """Run every registered experiment (or `names`) into ``out/<name>``, write
    ``out/report.html`` and ``out/report.md``, and return True when every run finished and every
    check passed.

    A failing experiment is reported and the others go on. With `resume`, finished runs with the
    same settings are read back and training runs continue from their checkpoints. `dtype`
    ("float32" or "float64") replaces every config's own. `jobs` > 1 runs that many experiments
    at once in separate processes (same results, less wall time on a multi-core CPU). Ctrl-C writes
    the report of what finished (the rest marked not run) and raises ``KeyboardInterrupt``.
    """
    out, start, results = Path(out), time.perf_counter(), []
    chosen = experiments.names() if names is None else [experiments.get(n).name for n in names]
    try:
        results.extend(run_all(out, names, quick=quick, seed=seed, resume=resume, dtype=dtype,
                               progress=progress, jobs=jobs))
    except KeyboardInterrupt:
        done = {r.name for r in results}
        results += [Result(n, {}, error=report.NOT_RUN) for n in chosen if n not in done]
        report.write(results, out, seconds=time.perf_counter() - start, quick=quick, seed=seed)
        raise
    summary = report.write(results, out, seconds=time.perf_counter() - start, quick=quick,
                           seed=seed)
    print(f"{report.counts_line(summary.counts())}, total run time {summary.seconds:.1f} s "
          f"(experiments {summary.counts()['seconds']:.1f} s)")
    print(f"report: {out / 'report.html'} and {out / 'report.md'}")
    return summary.passed
