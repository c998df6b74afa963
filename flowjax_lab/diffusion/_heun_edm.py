"""EDM's deterministic second-order sampler (Karras, Aittala, Aila and Laine 2022, Algorithm 1).

In the scaled variables ``x~ = x / alpha`` and ``s = sigma / alpha`` the probability-flow ODE of
any process is ``dx~/ds = E[eps | x]``; Heun's method steps it on EDM's grid (``s^(1/rho)``
uniform). A discrete sampler by definition, written as a ``lax.scan`` over its time grid.
"""

import equinox as eqx
import jax

from .. import _checks
from ._grid import time_grid
from ._predictions import Coefficients, convert_with
from ._samples import Samples, discrete_samples, sampler_inputs


def heun_edm(model, process, x, *, prediction: str, steps: int, rho=7.0, t_max=1.0,
             t_min=1e-3) -> Samples:
    """Sample by EDM's Heun method from noise `x` `(n, d)` at `t_max` down to `t_min`.

    Each step is an Euler (DDIM) predictor to the next time and a trapezoidal corrector with
    the noise predicted there; the final step is corrected too (the grid ends at `t_min` > 0,
    not at zero noise).

    **Arguments:**
    - `model`: ``(t, x) -> (n, d)``, a prediction of kind `prediction`; `process` its process.
    - `steps`: number of Heun steps (two model evaluations each).
    - `rho`: the exponent of EDM's grid (7 in the paper); `t_max` must have alpha(t_max) > 0.

    **Returns:** [`Samples`][] with ``nfe = 2 steps``.
    """
    process, x, prediction = sampler_inputs(model, process, x, prediction)
    steps = _checks.positive_int(steps, "steps")
    ts = time_grid(process, steps, spacing="edm", rho=rho, t_max=t_max, t_min=t_min,
                   dtype=x.dtype)
    return discrete_samples(_heun(model, process, prediction, x, ts), 2 * steps)


@eqx.filter_jit
def _heun(model, process, prediction, x, ts):
    def step(x, inputs):
        t, t_next = inputs
        c = Coefficients.at(process, t, x)
        value = model(t, x)
        d1 = convert_with(c, prediction, "eps", value, x)
        x0 = convert_with(c, prediction, "x0", value, x)
        c_next = Coefficients.at(process, t_next, x)
        euler = c_next.a * x0 + c_next.s * d1
        d2 = convert_with(c_next, prediction, "eps", model(t_next, euler), euler)
        # x~' = x~ + (s' - s) (d1 + d2) / 2, times alpha(t'): the Euler step plus a correction.
        return euler + (c_next.s - c_next.a * c.s / c.a) * (d2 - d1) / 2, None

    return jax.lax.scan(step, x, (ts[:-1], ts[1:]))[0]
