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
    figure, saved as PNG); `error` and `traceback` (when the run failed); `seconds` (run time).
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
