"""The time convention of the moment ODEs (see the docstring of ``flowjax_lab.theory``)."""

import jax.numpy as jnp
import numpy as np

from .. import _checks


def initial_time(t0, dtype):
    """The time `t0` of the initial law: a finite real scalar, as an array of `dtype`."""
    if isinstance(t0, bool) or not isinstance(t0, int | float | np.number | np.ndarray
                                              | jnp.ndarray):
        raise TypeError(f"`t0` must be a real scalar (the time of the initial law), got {t0!r}.")
    _checks.scalar(t0, "t0")
    if isinstance(t0, int | float | np.number) and not np.isfinite(t0):
        raise ValueError(f"`t0` must be a finite scalar, got {t0!r}.")
    t0 = jnp.asarray(t0, dtype)
    return _checks.fail_if(t0, lambda t: ~jnp.isfinite(t), "`t0` must be a finite scalar.")


def output_times(ts, t0, dtype):
    """`(ts, t0)` checked: `ts` a non-empty increasing 1-D array of times, none before the time
    `t0` of the initial law (`ts` need not contain `t0`)."""
    t0 = initial_time(t0, dtype)
    ts = _checks.times(ts, dtype=dtype)
    ts, t0 = _checks.fail_if((ts, t0), lambda a: jnp.any(a[0] < a[1]),
                             "`ts` must be >= `t0`, the time of the initial law (by default 0).")
    return ts, t0
