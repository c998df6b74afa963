"""Time grids of the samplers, from `t_max` (noise) down to `t_min` (data)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._types import Times
from ._predictions import check_process

SPACINGS = ("uniform", "log_snr", "edm")


def check_times(process, t_max, t_min, *, log_snr: bool = False) -> tuple[float, float]:
    """``0 <= t_min < t_max <= 1`` as Python numbers; with `log_snr`, the log-SNR must be finite
    at both ends (alpha(t_max) > 0 and sigma(t_min) > 0)."""
    for value, name in ((t_max, "t_max"), (t_min, "t_min")):
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
            raise TypeError(f"`{name}` must be a Python number, got {value!r}.")
    t_max, t_min = float(t_max), float(t_min)
    if not 0 <= t_min < t_max <= 1:
        raise ValueError(f"`t_min` and `t_max` must satisfy 0 <= t_min < t_max <= 1, got "
                         f"t_min={t_min}, t_max={t_max}.")
    if log_snr:
        with jax.ensure_compile_time_eval():  # Python numbers: known even inside `jit`
            ends = np.asarray(process.log_snr(np.asarray([t_max, t_min])))
        if not np.isfinite(ends[0]):
            raise ValueError(f"`t_max` = {t_max}: the log-SNR is infinite there (alpha(t_max) "
                             f"= 0); choose t_max < 1.")
        if not np.isfinite(ends[1]):
            raise ValueError(f"`t_min` = {t_min}: the log-SNR is infinite there (sigma(t_min) "
                             f"= 0); choose t_min > 0.")
    return t_max, t_min


def time_grid(process, steps: int, *, spacing: str = "uniform", t_max=1.0, t_min=1e-3,
              rho=7.0, dtype=None) -> Times:
    """The `steps + 1` times of a sampler, decreasing from `t_max` to `t_min`.

    **Arguments:**
    - `process`: the forward process (needed by the log-SNR and EDM spacings).
    - `spacing`: "uniform" in t; "log_snr", uniform in ``lambda = log(alpha / sigma)`` (DPM-Solver);
      "edm", Karras et al.'s ``sigma_i^(1/rho)`` uniform, with ``sigma = sigma(t) / alpha(t)``
      the noise level of the scaled variable ``x / alpha``.
    - `rho`: the EDM exponent (7 in the paper).
    - `dtype`: of the times (the default float if `None`).

    **Returns:** times `(steps + 1,)`, first `t_max`, last `t_min`.
    """
    process = check_process(process)
    steps = _checks.positive_int(steps, "steps")
    spacing = _checks.choice(spacing, SPACINGS, "spacing")
    t_max, t_min = check_times(process, t_max, t_min, log_snr=spacing != "uniform")
    _checks.positive(rho, "rho")
    dtype = _checks.float_dtype(dtype)
    return _grid(process, steps, spacing, jnp.asarray([t_max, t_min], dtype), float(rho))


@eqx.filter_jit
def _grid(process, steps, spacing, ends, rho):
    u = jnp.linspace(0, 1, steps + 1, dtype=ends.dtype)
    if spacing == "uniform":
        ts = ends[0] + u * (ends[1] - ends[0])
    else:
        lam_max, lam_min = process.log_snr(ends)  # at t_max (low) and at t_min (high)
        if spacing == "log_snr":
            lam = lam_max + u * (lam_min - lam_max)
        else:  # sigma^(1/rho) = exp(-lambda / rho), interpolated linearly
            root = jnp.exp(-lam_max / rho) + u * (jnp.exp(-lam_min / rho) - jnp.exp(-lam_max / rho))
            lam = -rho * jnp.log(root)
        ts = process.time_of_log_snr(lam)
    return ts.at[0].set(ends[0]).at[-1].set(ends[1])
