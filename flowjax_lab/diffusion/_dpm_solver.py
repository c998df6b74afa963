"""DPM-Solver-2 (Lu, Zhou, Bao, Chen, Li and Zhu 2022, Algorithm 1 with r = 1/2).

The probability-flow ODE solved exactly in its linear part, with the noise prediction
integrated in the log-SNR ``lambda`` by a midpoint rule: second order, two evaluations a step.
A discrete sampler by definition, written as a ``lax.scan`` over its time grid.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from ._grid import check_times, time_grid
from ._predictions import Coefficients, convert_with
from ._samples import Samples, discrete_samples, sampler_inputs


def dpm_solver_2(model, process, x, *, prediction: str, steps: int, spacing: str = "log_snr",
                 t_max=1.0, t_min=1e-3) -> Samples:
    """Sample by DPM-Solver-2 from noise `x` `(n, d)` at `t_max` down to `t_min`.

    A step from t to t' with ``h = lambda(t') - lambda(t)`` evaluates the noise at t, moves to
    the time s of log-SNR ``lambda(t) + h / 2``, evaluates there and updates
    ``x' = alpha(t') / alpha(t) x - sigma(t') (e^h - 1) eps(u, s)``.

    **Arguments:**
    - `model`: ``(t, x) -> (n, d)``, a prediction of kind `prediction`; `process` its process.
    - `steps`: number of steps (two model evaluations each); `spacing`: of the time grid,
      uniform in log-SNR by default (see [`time_grid`][]).
    - `t_max`, `t_min`: the log-SNR must be finite at both (alpha(t_max) > 0, sigma(t_min) > 0).

    **Returns:** [`Samples`][] with ``nfe = 2 steps``.
    """
    process, x, prediction = sampler_inputs(model, process, x, prediction)
    steps = _checks.positive_int(steps, "steps")
    t_max, t_min = check_times(process, t_max, t_min, log_snr=True)
    ts = time_grid(process, steps, spacing=spacing, t_max=t_max, t_min=t_min, dtype=x.dtype)
    return discrete_samples(_dpm(model, process, prediction, x, ts), 2 * steps)


@eqx.filter_jit
def _dpm(model, process, prediction, x, ts):
    def step(x, inputs):
        t, t_next = inputs
        h = process.log_snr(t_next) - process.log_snr(t)
        t_mid = process.time_of_log_snr(process.log_snr(t) + h / 2)
        c, c_mid = Coefficients.at(process, t, x), Coefficients.at(process, t_mid, x)
        eps = convert_with(c, prediction, "eps", model(t, x), x)
        u = c_mid.a / c.a * x - c_mid.s * jnp.expm1(h / 2) * eps
        eps_mid = convert_with(c_mid, prediction, "eps", model(t_mid, u), u)
        a_next, s_next = process.alpha(t_next), process.sigma(t_next)
        return a_next / c.a * x - s_next * jnp.expm1(h) * eps_mid, None

    return jax.lax.scan(step, x, (ts[:-1], ts[1:]))[0]
