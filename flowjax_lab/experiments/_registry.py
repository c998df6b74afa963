"""The experiment registry: a frozen config class and a pure ``run(config, key) -> Result``.

An experiment module registers itself with [`register`][]. Two optional extras:

- a training experiment takes a keyword ``checkpoint`` (a folder or ``None``) and passes it to
  ``fl.learn.fit(..., checkpoint=checkpoint, resume=checkpoint is not None)`` (one sub-folder per
  ``fit`` call when it trains several models); ``experiments.run(..., checkpoint=folder)`` then
  continues an interrupted run to the same numbers, and Ctrl-C stops it cleanly;
- ``register(..., batch=fn)`` with ``fn(config, keys) -> list[Result]`` runs several seeds at
  once (typically with ``jax.vmap`` over `keys`); without it several seeds run in a loop.
"""

import dataclasses
import difflib
import importlib
import inspect
import math
import pkgutil
import signal
import threading
import time
import traceback
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

import jax

from .. import _checks
from ._result import Result, combine_seeds

THEMES = (
    "optimal transport and flow matching",
    "gradient flows and mean-field training",
    "transformer dynamics",
    "continuous-time networks",
)

# Names taken by `run` itself: a config field cannot use them.
RESERVED = ("key", "quick", "preset", "seed", "seeds", "checkpoint")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A registered experiment: `name`, `theme`, `config` class, `run`, `description`, and the
    optional `batch` (several seeds at once)."""

    name: str
    theme: str
    config: type
    run: Callable
    description: str
    batch: Callable | None = None

    @property
    def resumable(self) -> bool:
        """True when `run` takes a ``checkpoint`` folder (a training experiment)."""
        return "checkpoint" in inspect.signature(self.run).parameters

    def coerce(self, overrides: dict) -> dict:
        """`overrides` checked against the config's fields (unknown names are refused with the
        nearest valid ones) and converted to the fields' types (strings are parsed)."""
        return coerce_overrides(self.config, overrides, label=self.name)

    def presets(self) -> list[str]:
        """Names of the config's presets: its classmethods other than `quick` (e.g. ``paper``)."""
        return sorted(name for name, value in vars(self.config).items()
                      if isinstance(value, classmethod) and name != "quick")

    def make_config(self, *, quick: bool = False, preset: str | None = None, **overrides):
        """The default (or quick, or `preset`) config with `overrides` applied and
        type-checked."""
        if preset is None:
            base = self.config.quick() if quick else self.config()
        elif quick:
            raise ValueError(f"Give either `quick` or `preset` ({preset!r}), not both.")
        else:
            base = getattr(self.config, _checks.choice(preset, self.presets(), "preset"))()
        return dataclasses.replace(base, **self.coerce(overrides))

    def fields(self) -> list[tuple[str, str, object]]:
        """``(name, type name, default)`` of every config field."""
        default = self.config()
        return [(f.name, _type_name(f, getattr(default, f.name)), getattr(default, f.name))
                for f in dataclasses.fields(self.config)]


_REGISTRY: dict[str, Experiment] = {}
_BROKEN: dict[str, str] = {}  # module -> traceback of its failed import
_LOADED = False


def register(name: str, *, theme: str, config: type, description: str,
             batch: Callable | None = None):
    """Decorator registering ``run(config, key) -> Result`` under `name`.

    **Arguments:**
    - `name`: the experiment's name on the command line (kebab-case).
    - `theme`: one of `THEMES` (the report's sections).
    - `config`: a frozen dataclass whose fields all have defaults, among them `dtype`
      ("float32" or "float64": the run executes under ``jax.enable_x64`` accordingly), with a
      `quick()` classmethod returning the CI-sized config.
    - `description`: one sentence for `flowjax-lab list` and the report.
    - `batch`: optional ``(config, keys) -> list[Result]`` running several seeds at once.
    """
    _checks.choice(theme, THEMES, "theme")
    if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen
            and hasattr(config, "quick")):
        raise TypeError("`config` must be a frozen dataclass with a `quick()` classmethod.")
    taken = sorted({f.name for f in dataclasses.fields(config)} & set(RESERVED))
    if taken:
        raise ValueError(f"config fields {taken} of {name!r} clash with the options of "
                         f"`experiments.run` {list(RESERVED)}; rename them.")
    if "dtype" not in {f.name for f in dataclasses.fields(config)}:
        raise TypeError(f"the config of {name!r} must have a field `dtype: str = \"float32\"` "
                        "(the floating dtype of the run).")

    def wrap(run: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"experiment {name!r} is registered twice.")
        _REGISTRY[name] = Experiment(name, theme, config, run, description, batch)
        return run

    return wrap


def names(theme: str | None = None) -> list[str]:
    """Registered experiment names (of one `theme` if given), sorted."""
    _load_all()
    if theme is not None:
        _checks.choice(theme, THEMES, "theme")
    return sorted(n for n, e in _REGISTRY.items() if theme is None or e.theme == theme)


def get(name: str) -> Experiment:
    """The registered experiment `name` (unknown names list the valid ones)."""
    _load_all()
    return _REGISTRY[_checks.choice(name, _REGISTRY, "experiment")]


def broken() -> dict[str, str]:
    """Experiment modules that failed to import: module name -> traceback."""
    _load_all()
    return dict(_BROKEN)


def coerce_overrides(config_cls: type, overrides: dict, *, label: str | None = None) -> dict:
    """Check override names against the config's fields and convert strings to their types."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    default = config_cls()
    out = {}
    for key, value in overrides.items():
        if key not in fields:
            near = difflib.get_close_matches(key, fields, n=3)
            hint = f" Did you mean {' or '.join(map(repr, near))}?" if near else ""
            raise ValueError(
                f"Unknown config key {key!r} for {label or config_cls.__qualname__}; "
                f"valid keys: {', '.join(sorted(fields))}.{hint}"
            )
        out[key] = _finite(key, _coerce(key, value, getattr(default, key), fields[key]))
    return out


def _finite(key, value):
    """`value`, refused when it is (or holds) a NaN or infinite number."""
    items = value if isinstance(value, tuple | list) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in items):
        raise ValueError(f"Config key {key!r} must be finite, got {value!r}.")
    return value


def _type_name(field, default) -> str:
    hint = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", None)
    return hint or type(default).__name__


def _optional(field) -> bool:
    """True when the field's annotation admits None."""
    kind = field.type
    if isinstance(kind, str):
        return "None" in kind
    return typing.get_origin(kind) in (typing.Union, types.UnionType) and (
        type(None) in typing.get_args(kind))


def _coerce(key, value, default, field=None):
    """`value` converted to the type of `default` (strings are parsed), or a clear error."""
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        if default is None or (field is not None and _optional(field)):
            return None
        raise TypeError(f"Config key {key!r} expects {type(default).__name__}, got None.")
    if default is None:  # an optional field: accept numbers and strings as given
        return _parse_scalar(value) if isinstance(value, str) else value
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"Config key {key!r} expects true/false, got {value!r}.")
            return text.lower() in ("true", "1", "yes")
        if kind in (tuple, list):
            items = [v.strip() for v in text.strip("()[] ").split(",") if v.strip()]
            inner = default[0] if default else 0.0
            return kind(_coerce(key, v, inner) for v in items)
        try:
            return _parse_int(text) if kind is int else kind(text)
        except ValueError as err:
            raise ValueError(
                f"Config key {key!r} expects {kind.__name__}, got {value!r}."
            ) from err
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is tuple and isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"Config key {key!r} expects {kind.__name__}, got {value!r}.")
    if kind is int and isinstance(value, float):
        raise TypeError(f"Config key {key!r} expects int, got {value!r}.")
    return value


def _parse_int(text: str) -> int:
    """An integer, also written as ``1e4`` (but not ``1.5``)."""
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise
        return int(number)


def _parse_scalar(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def run(name: str, *, key=None, quick: bool = False, preset: str | None = None, seed: int = 0,
        seeds: int | Sequence[int] | None = None, checkpoint=None, **overrides) -> Result:
    """Run the registered experiment `name` and return its [`Result`][].

    **Arguments:**
    - `key`: a ``jax.random`` key; defaults to ``jax.random.key(seed)``.
    - `quick`: use the CI-sized config.
    - `preset`: use the config's preset of that name instead (``Experiment.presets()``, e.g.
      ``"paper"``: the classmethod ``Config.paper()``).
    - `seeds`: a count (seeds ``seed, seed + 1, ...``) or a list of seeds: the result combines
      them (see ``combine_seeds``), with the experiment's `batch` (vmap) when it has one.
    - `checkpoint`: a folder for a training experiment's checkpoints; a second call with the same
      folder resumes where an interrupted run stopped (ignored by experiments that do not train).
    - `overrides`: config fields to replace, checked against the config's field names and types.

    A failure inside the run is caught and reported in ``Result.error``; Ctrl-C stops the run
    (after the current training chunk, with a checkpoint) and raises ``KeyboardInterrupt``.
    """
    experiment = get(name)
    config = experiment.make_config(quick=quick, preset=preset, **overrides)
    seed = _checks.positive_int(seed, "seed", minimum=0)
    if seeds is None:
        key = jax.random.key(seed) if key is None else _checks.key(key)
        result = _guarded(experiment, config, [key], [seed], checkpoint, batched=False)[0]
        result.seeds = [seed]
        return result
    if key is not None:
        raise ValueError("Give either `key` or `seeds`, not both.")
    if isinstance(seeds, int):
        seeds = list(range(seed, seed + _checks.positive_int(seeds, "seeds")))
    seeds = [_checks.positive_int(s, "seeds", minimum=0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"`seeds` must be distinct and non-empty, got {seeds}.")
    keys = [jax.random.key(s) for s in seeds]
    batched = experiment.batch is not None and checkpoint is None
    results = _guarded(experiment, config, keys, seeds, checkpoint, batched=batched)
    return combine_seeds(results, seeds)


def _guarded(experiment, config, keys, seeds, checkpoint, *, batched) -> list[Result]:
    """Run one or several seeds, catching failures and noticing Ctrl-C even when ``fit`` handled
    it (``fit`` stops after its chunk and returns; the run must not report a half-trained model).
    """
    interrupted = []

    def on_sigint(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main else None
    results = []
    try:
        if batched:
            start = time.perf_counter()
            results = _catching(experiment, config, lambda: list(
                experiment.batch(config, jax.numpy.stack(keys))), len(keys))
            for r in results:
                r.seconds = (time.perf_counter() - start) / len(results)
        else:
            for key, seed in zip(keys, seeds, strict=True):
                kwargs = {}
                if experiment.resumable and checkpoint is not None:
                    folder = Path(checkpoint)
                    kwargs["checkpoint"] = folder if len(seeds) == 1 else folder / f"seed{seed}"
                start = time.perf_counter()
                result = _catching(experiment, config,
                                   lambda: [experiment.run(config, key, **kwargs)], 1)[0]
                result.seconds = time.perf_counter() - start
                results.append(result)
                if interrupted:
                    break
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt
    return results


def _catching(experiment, config, thunk, count) -> list[Result]:
    """Call `thunk` in the config's dtype; an exception becomes a failed result per seed."""
    try:
        with jax.enable_x64(config.dtype == "float64"):
            results = thunk()
        if len(results) != count or not all(isinstance(r, Result) for r in results):
            raise TypeError(f"experiment {experiment.name!r} must return a Result per key.")
        for r in results:
            r.name = experiment.name  # the registered name names the run folder and report entry
        return results
    except Exception as err:  # a failed experiment is reported, not raised
        message, trace = f"{type(err).__name__}: {err}", traceback.format_exc()
        return [Result(experiment.name, dataclasses.asdict(config), error=message,
                       traceback=trace) for _ in range(count)]


def _load_all() -> None:
    """Import every public module of this package once, so that each experiment registers
    itself; a module that fails to import is recorded in ``broken()`` instead of stopping the
    others."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    package = __name__.rsplit(".", 1)[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if module.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{package}.{module.name}")
        except Exception:
            _BROKEN[module.name] = traceback.format_exc()
