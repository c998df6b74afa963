"""DDIM (Song, Meng and Ermon 2021): the non-Markovian sampler, deterministic at eta = 0.

A discrete sampler by definition, written as a ``lax.scan`` over its time grid.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from ._grid import time_grid
from ._predictions import Coefficients, convert_with
from ._samples import Samples, discrete_samples, sampler_inputs


def ddim(model, process, x, key=None, *, prediction: str, steps: int, eta=0.0,
         spacing: str = "uniform", t_max=1.0, t_min=1e-3) -> Samples:
    """Sample by DDIM from noise `x` `(n, d)` at `t_max` down to `t_min`.

    Each step from t to t' < t predicts ``x0`` and ``eps`` at t and moves to
    ``x' = alpha(t') x0 + sqrt(sigma(t')^2 - rho^2) eps + rho z`` with
    ``rho = eta sigma(t') / sigma(t) sqrt(sigma(t)^2 - (alpha(t) / alpha(t'))^2 sigma(t')^2)``,
    the standard deviation of the forward posterior ``q(x_t' | x_t, x0)`` scaled by `eta`.
    ``eta = 0`` is deterministic (an Euler step of the probability-flow ODE in the variables
    ``(sigma / alpha, x / alpha)``); ``eta = 1`` is ancestral sampling (DDPM).

    **Arguments:**
    - `model`: ``(t, x) -> (n, d)``, a prediction of kind `prediction`; `process` its process.
    - `key`: needed when `eta > 0`.
    - `steps`: number of steps, one model evaluation each; `spacing`: of the time grid, see
      [`time_grid`][].
    - `eta`: in [0, 1].

    **Returns:** [`Samples`][] with ``nfe = steps``.
    """
    process, x, prediction = sampler_inputs(model, process, x, prediction)
    steps = _checks.positive_int(steps, "steps")
    _checks.positive(eta, "eta", allow_zero=True)
    if eta > 1:
        raise ValueError(f"`eta` must lie in [0, 1], got {eta!r}.")
    ts = time_grid(process, steps, spacing=spacing, t_max=t_max, t_min=t_min, dtype=x.dtype)
    keys = jax.random.split(_checks.key(key), steps) if eta > 0 else None
    return discrete_samples(_ddim(model, process, prediction, x, ts, keys, float(eta)), steps)


@eqx.filter_jit
def _ddim(model, process, prediction, x, ts, keys, eta):
    def step(x, inputs):
        t, t_next = inputs[:2]
        c = Coefficients.at(process, t, x)
        value = model(t, x)
        x0 = convert_with(c, prediction, "x0", value, x)
        eps = convert_with(c, prediction, "eps", value, x)
        a_next, s_next = process.alpha(t_next), process.sigma(t_next)
        if keys is None:
            return a_next * x0 + s_next * eps, None
        bridge = jnp.maximum(c.s**2 - (c.a / a_next) ** 2 * s_next**2, 0)
        rho = eta * s_next / c.s * jnp.sqrt(bridge)
        z = jax.random.normal(inputs[2], x.shape, x.dtype)
        return a_next * x0 + jnp.sqrt(jnp.maximum(s_next**2 - rho**2, 0)) * eps + rho * z, None

    inputs = (ts[:-1], ts[1:]) if keys is None else (ts[:-1], ts[1:], keys)
    return jax.lax.scan(step, x, inputs)[0]
