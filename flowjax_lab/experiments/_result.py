"""What an experiment returns: metrics, theory checks, arrays and figures."""

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class Check:
    """A comparison with theory: passes when ``error <= tolerance``."""

    name: str
    value: float
    reference: float
    error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.error) and self.error <= self.tolerance)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}


def check(name: str, value, reference, tolerance: float, *, relative: bool = True) -> Check:
    """Build a ``Check`` from a value and its reference (relative Frobenius error by default)."""
    value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
    error = float(np.linalg.norm(value - reference))
    if relative:
        error /= max(float(np.linalg.norm(reference)), 1e-300)
    summary = lambda a: float(a) if a.ndim == 0 else float(np.linalg.norm(a))
    return Check(name, summary(value), summary(reference), error, float(tolerance))


@dataclasses.dataclass
class Result:
    """The outcome of ``run(config, key)``.

    **Fields:** `name`; `config` (a dict); `metrics` (name -> number); `checks` (list of
    [`Check`][]); `arrays` (name -> NumPy array, saved as .npz); `figures` (name -> matplotlib
    figure, saved as PNG); `error` and `traceback` (when the run failed); `seconds` (run time);
    `seeds` (the seeds behind the numbers, filled by ``experiments.run``).
    """

    name: str
    config: dict
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    checks: list[Check] = dataclasses.field(default_factory=list)
    arrays: dict[str, Any] = dataclasses.field(default_factory=dict)
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    seconds: float = 0.0
    seeds: list[int] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when the run finished and every check passed."""
        return self.error is None and all(c.passed for c in self.checks)

    def table(self) -> str:
        """A short plain-text table of metrics and checks."""
        lines = [f"{self.name}: {'PASS' if self.passed else 'FAIL'} ({self.seconds:.1f} s)"]
        if self.error:
            lines.append(f"  error: {self.error}")
        for key, value in self.metrics.items():
            lines.append(f"  {key:<36} {value:.6g}")
        for c in self.checks:
            mark = "ok " if c.passed else "BAD"
            lines.append(
                f"  [{mark}] {c.name:<32} value {c.value:.4g}  reference {c.reference:.4g}  "
                f"error {c.error:.3g} <= {c.tolerance:.3g}"
            )
        return "\n".join(lines)


def combine_seeds(results: list[Result], seeds: list[int]) -> Result:
    """One [`Result`][] from the runs of several seeds.

    Metrics become their mean over seeds, with ``<name>_std`` beside; a check keeps its mean value
    and reference but its worst error, so it passes only when it passes for every seed; arrays of
    equal shapes are stacked on a leading seed axis; figures are those of the first seed.
    """
    if not results or len(results) != len(seeds):
        raise ValueError(f"`results` and `seeds` must be non-empty and of equal length, got "
                         f"{len(results)} and {len(seeds)}.")
    first = results[0]
    out = Result(first.name, first.config, figures=first.figures, seeds=list(seeds),
                 seconds=sum(r.seconds for r in results))
    failed = [(s, r) for s, r in zip(seeds, results, strict=True) if r.error]
    if failed:
        out.error = "; ".join(f"seed {s}: {r.error}" for s, r in failed)
        out.traceback = "\n".join(r.traceback or "" for _, r in failed) or None
        return out
    for key in first.metrics:
        values = np.array([float(r.metrics[key]) for r in results if key in r.metrics])
        out.metrics[key] = float(np.mean(values))
        out.metrics[f"{key}_std"] = float(np.std(values))
    for i, c in enumerate(first.checks):
        group = [r.checks[i] for r in results if i < len(r.checks) and r.checks[i].name == c.name]
        error = max(group, key=lambda g: np.nan_to_num(g.error, nan=np.inf)).error
        out.checks.append(Check(
            f"{c.name} (worst of {len(group)} seeds)",
            float(np.mean([g.value for g in group])),
            float(np.mean([g.reference for g in group])),
            error, c.tolerance,
        ))
    for key, value in first.arrays.items():
        stack = [np.asarray(r.arrays.get(key)) for r in results]
        shapes = {a.shape for a in stack}
        out.arrays[key] = np.stack(stack) if len(shapes) == 1 else np.asarray(value)
    return out
