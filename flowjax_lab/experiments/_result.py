"""What an experiment returns: metrics, checks, arrays and figures.

A check is built by one of four functions, each stating what it compares against (`against`)
and of which `kind` it is:

- [`close`][]: a value within a tolerance of a reference (an independent closed form or exact
  solver: kind ``"theory"`` by default);
- [`at_most`][] / [`at_least`][]: a value on the right side of a bound (kind ``"sanity"`` by
  default; the bound's justification goes in `against`);
- [`better`][]: one value ahead of another by a margin (kind ``"comparison"``), e.g. a trained
  model against the untrained one;
- [`fit_ok`][]: a training run ended with status ``Status.SUCCESS`` and finite losses.

A NaN or inf anywhere (value, reference, error) fails the check, whatever its kind; a
[`Result`][] with no check does not pass.
"""

import dataclasses
import math
from typing import Any

import numpy as np

from .._status import Status

KINDS = ("theory", "comparison", "sanity")
RELATIONS = ("close", "at_most", "at_least", "holds")


@dataclasses.dataclass(frozen=True)
class Check:
    """One check of an experiment.

    **Fields:** `name`; `value` and `reference` (numbers; array values are summarised by their
    norm); `tolerance`; `relation` (one of `RELATIONS`):

    - ``"close"``: passes when ``error <= tolerance``, `error` being ``|value - reference|``
      (relative to ``|reference|`` when built with ``relative=True``);
    - ``"at_most"``: passes when ``value <= reference - tolerance`` (`tolerance` is a margin);
    - ``"at_least"``: passes when ``value >= reference + tolerance``;
    - ``"holds"``: a yes/no fact (``value`` 1 or 0), passes when ``value == 1``;

    `kind` (one of `KINDS`); `against` (what the reference is, in words); `error` (``close`` only).
    """

    name: str
    value: float
    reference: float
    tolerance: float = 0.0
    relation: str = "close"
    kind: str = "theory"
    against: str = ""
    error: float | None = None

    def __post_init__(self):
        if self.relation not in RELATIONS:
            raise ValueError(f"`relation` must be one of {RELATIONS}, got {self.relation!r}.")
        if self.kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}, got {self.kind!r}.")

    @property
    def slack(self) -> float:
        """How far inside its condition the check is (negative or NaN: it fails)."""
        numbers = [self.value, self.reference, self.tolerance]
        if self.relation == "close":
            numbers.append(self.error)
        if not all(x is not None and math.isfinite(x) for x in numbers):
            return math.nan
        if self.relation == "close":
            return self.tolerance - self.error
        if self.relation == "at_most":
            return self.reference - self.tolerance - self.value
        if self.relation == "at_least":
            return self.value - self.reference - self.tolerance
        return 0.0 if self.value == 1.0 else -1.0

    @property
    def passed(self) -> bool:
        return bool(self.slack >= 0.0)

    @property
    def condition(self) -> str:
        """The condition in words, with the numbers: ``0.031 <= 0.2 - 0.05``."""
        v, r, t = self.value, self.reference, self.tolerance
        if self.relation == "close":
            return f"|{v:.4g} - {r:.4g}| -> {_number(self.error)} <= {t:.3g}"
        if self.relation == "holds":
            return "yes" if v == 1.0 else "no"
        sign, op = ("-", "<=") if self.relation == "at_most" else ("+", ">=")
        margin = f" {sign} {t:.3g}" if t else ""
        return f"{v:.4g} {op} {r:.4g}{margin}"

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "passed": self.passed}


def _number(x) -> str:
    return "nan" if x is None else f"{x:.3g}"


def _scalar(x, what: str) -> float:
    array = np.asarray(x, np.float64)
    if array.ndim:
        raise ValueError(f"`{what}` must be a number, got an array of shape {array.shape}.")
    return float(array)


def close(name: str, value, reference, tolerance: float, *, relative: bool = True,
          kind: str = "theory", against: str = "") -> Check:
    """`value` within `tolerance` of `reference`: the Frobenius norm of the difference, relative
    to the reference's norm by default. Arrays are compared whole and shown by their norm."""
    value, reference = np.asarray(value, np.float64), np.asarray(reference, np.float64)
    error = float(np.linalg.norm(value - reference))
    if relative:
        error /= max(float(np.linalg.norm(reference)), 1e-300)
    summary = lambda a: float(a) if a.ndim == 0 else float(np.linalg.norm(a))
    return Check(name, summary(value), summary(reference), float(tolerance), "close", kind,
                 against, error)


def at_most(name: str, value, bound, *, margin: float = 0.0, kind: str = "sanity",
            against: str = "") -> Check:
    """``value <= bound - margin``."""
    return Check(name, _scalar(value, "value"), _scalar(bound, "bound"), float(margin),
                 "at_most", kind, against)


def at_least(name: str, value, bound, *, margin: float = 0.0, kind: str = "sanity",
             against: str = "") -> Check:
    """``value >= bound + margin``."""
    return Check(name, _scalar(value, "value"), _scalar(bound, "bound"), float(margin),
                 "at_least", kind, against)


def better(name: str, value, baseline, *, margin: float = 0.0, lower: bool = True,
           kind: str = "comparison", against: str = "") -> Check:
    """`value` ahead of `baseline` by `margin`: ``value <= baseline - margin`` when lower is
    better (`lower=True`), ``value >= baseline + margin`` otherwise."""
    build = at_most if lower else at_least
    return build(name, value, baseline, margin=margin, kind=kind, against=against)


def holds(name: str, fact: bool, *, kind: str = "sanity", against: str = "") -> Check:
    """A yes/no fact that has no number to compare (say what it is in `against`)."""
    return Check(name, 1.0 if bool(fact) else 0.0, 1.0, 0.0, "holds", kind, against)


def fit_ok(name: str, fitted) -> Check:
    """`fitted` (a ``learn.FitResult``) ended with status ``Status.SUCCESS`` and only finite
    losses."""
    losses = np.asarray(fitted.losses, np.float64)
    finite = bool(losses.size and np.all(np.isfinite(losses)))
    last = f"{losses[-1]:.4g}" if losses.size else "none"
    return holds(name, fitted.status == Status.SUCCESS and finite,
                 against=f"fit status: {Status.message(fitted.status)}, after {fitted.step} "
                         f"steps, last loss {last}")


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
        """True when the run finished, has checks, and every check passed."""
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[str]:
        """Names of the checks that failed."""
        return [c.name for c in self.checks if not c.passed]

    def table(self) -> str:
        """A short plain-text table of metrics and checks."""
        lines = [f"{self.name}: {'PASS' if self.passed else 'FAIL'} ({self.seconds:.1f} s)"]
        if self.error:
            lines.append(f"  error: {self.error}")
        if not self.checks:
            lines.append("  no checks: a result without checks does not pass")
        for key, value in self.metrics.items():
            lines.append(f"  {key:<36} {value:.6g}")
        for c in self.checks:
            mark = "ok " if c.passed else "BAD"
            lines.append(f"  [{mark}] {c.kind:<10} {c.name:<40} {c.condition}")
        return "\n".join(lines)


def combine_seeds(results: list[Result], seeds: list[int]) -> Result:
    """One [`Result`][] from the runs of several seeds.

    Metrics become their mean over seeds, with ``<name>_std`` beside; each check is that of the
    seed where it had the least slack (a NaN is worst), so it passes only when it passes for every
    seed; arrays of equal shapes are stacked on a leading seed axis; figures are those of the
    first seed.
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
        worst = min(group, key=lambda g: np.nan_to_num(g.slack, nan=-np.inf))
        out.checks.append(dataclasses.replace(worst,
                                              name=f"{c.name} (worst of {len(group)} seeds)"))
    for key, value in first.arrays.items():
        stack = [np.asarray(r.arrays.get(key)) for r in results]
        shapes = {a.shape for a in stack}
        out.arrays[key] = np.stack(stack) if len(shapes) == 1 else np.asarray(value)
    return out

