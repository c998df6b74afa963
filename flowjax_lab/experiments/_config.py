"""Value checks for experiment configs, called from a config's ``__post_init__``.

``experiments.run(name, field=value)`` and ``flowjax-lab run --set`` build the config before the
run starts, so a bad value raises here, naming the field, instead of failing inside the run.
"""

import math
from collections.abc import Iterable

DTYPES = ("float32", "float64")


def validate(config, *, positive: Iterable[str] = (), nonnegative: Iterable[str] = (),
             counts: Iterable[str] = (), choices: dict | None = None) -> None:
    """Raise ``ValueError`` naming the first field of `config` that breaks its rule.

    - `positive`: numbers (or every number of a tuple) that must be finite and > 0;
    - `nonnegative`: numbers (or tuples of numbers) that must be finite and >= 0;
    - `counts`: integers (or tuples of integers) that must be >= 1;
    - `choices`: field name -> the allowed values (for a tuple field: of each item).

    Every config has a `dtype` field ("float32" or "float64"): the floating dtype of the whole
    run (the registry runs it under ``jax.enable_x64`` accordingly).
    """
    label = type(config).__module__.rsplit(".", 1)[-1].replace("_", "-")
    choices = {"dtype": DTYPES, **(choices or {})}
    rules = [(name, _positive, "a finite number > 0") for name in positive]
    rules += [(name, _nonnegative, "a finite number >= 0") for name in nonnegative]
    rules += [(name, _count, "an integer >= 1") for name in counts]
    for name, allowed in choices.items():
        rules.append((name, lambda v, allowed=allowed: v in allowed, f"one of {list(allowed)}"))
    for name, rule, expected in rules:
        value = getattr(config, name)
        items = value if isinstance(value, tuple | list) else (value,)
        if not items or not all(rule(v) for v in items):
            raise ValueError(f"config field {name!r} of {label} must be {expected}"
                             f"{' (each item)' if isinstance(value, tuple | list) else ''}, "
                             f"got {value!r}.")


def _finite(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _positive(v) -> bool:
    return _finite(v) and v > 0


def _nonnegative(v) -> bool:
    return _finite(v) and v >= 0


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1
