"""The experiment registry: a frozen config class and a pure ``run(config, key) -> Result``."""

import dataclasses
import difflib
import time
import traceback
from collections.abc import Callable

import jax

from .. import _checks
from ._result import Result

THEMES = (
    "optimal transport and flow matching",
    "gradient flows and mean-field training",
    "transformer dynamics",
    "continuous-time networks",
)


@dataclasses.dataclass(frozen=True)
class Experiment:
    name: str
    theme: str
    config: type
    run: Callable
    description: str

    def make_config(self, *, quick: bool = False, **overrides):
        """The default (or quick) config with `overrides` applied and type-checked."""
        base = self.config.quick() if quick else self.config()
        return dataclasses.replace(base, **coerce_overrides(self.config, overrides))


_REGISTRY: dict[str, Experiment] = {}


def register(name: str, *, theme: str, config: type, description: str):
    """Decorator registering ``run(config, key) -> Result`` under `name`."""
    _checks.choice(theme, THEMES, "theme")
    if not dataclasses.is_dataclass(config) or not hasattr(config, "quick"):
        raise TypeError("`config` must be a frozen dataclass with a `quick()` classmethod.")

    def wrap(run: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"experiment {name!r} is registered twice.")
        _REGISTRY[name] = Experiment(name, theme, config, run, description)
        return run

    return wrap


def names() -> list[str]:
    """Registered experiment names."""
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    """The registered experiment `name` (unknown names list the valid ones)."""
    _load_all()
    return _REGISTRY[_checks.choice(name, _REGISTRY, "experiment")]


def coerce_overrides(config_cls: type, overrides: dict) -> dict:
    """Check override names against the config's fields and convert strings to their types."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    out = {}
    for key, value in overrides.items():
        if key not in fields:
            near = difflib.get_close_matches(key, fields, n=3)
            hint = f" Nearest: {', '.join(near)}." if near else ""
            raise ValueError(
                f"Unknown config key {key!r} for {config_cls.__name__}; valid keys: "
                f"{sorted(fields)}.{hint}"
            )
        default = getattr(config_cls(), key)
        out[key] = _coerce(key, value, default)
    return out


def _coerce(key, value, default):
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        if kind is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"Config key {key!r} expects true/false, got {value!r}.")
            return value.lower() in ("true", "1")
        if kind is tuple:
            items = [v for v in value.strip("()[] ").split(",") if v.strip()]
            inner = type(default[0]) if default else float
            return tuple(_coerce(key, v.strip(), inner()) for v in items)
        try:
            return kind(value)
        except ValueError as err:
            raise ValueError(
                f"Config key {key!r} expects {kind.__name__}, got {value!r}."
            ) from err
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if default is not None and not isinstance(value, kind):
        raise TypeError(f"Config key {key!r} expects {kind.__name__}, got {value!r}.")
    return value


def run(name: str, *, key=None, quick: bool = False, seed: int = 0, **overrides) -> Result:
    """Run the registered experiment `name` and return its [`Result`][].

    `key` defaults to ``jax.random.key(seed)``; `quick` uses the CI-sized config; `overrides`
    replace config fields. A failure inside the run is caught and reported in ``Result.error``.
    """
    experiment = get(name)
    config = experiment.make_config(quick=quick, **overrides)
    key = jax.random.key(seed) if key is None else _checks.key(key)
    start = time.perf_counter()
    try:
        result = experiment.run(config, key)
    except Exception as err:  # a failed experiment is reported, not raised
        result = Result(name, dataclasses.asdict(config), error=f"{type(err).__name__}: {err}",
                        traceback=traceback.format_exc())
    result.seconds = time.perf_counter() - start
    return result


def _load_all() -> None:
    """Import the experiment modules so that they register themselves."""
    from . import _catalogue  # noqa: F401
