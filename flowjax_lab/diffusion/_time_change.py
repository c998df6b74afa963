"""The exact time change between a diffusion model and flow matching.

With ``x_t = alpha x0 + sigma eps``, the rescaled point ``y = x_t / (alpha + sigma)`` equals
``(1 - tau) eps + tau x0`` with ``tau = alpha / (alpha + sigma)``: it lies on ``learn``'s
flow-matching path from N(0, I) (noise at tau = 0, data at tau = 1) at the time tau whose logit
is the log-SNR, ``log(tau / (1 - tau)) = lambda(t)`` (``sigma / (alpha + sigma) = 1 - tau`` is
the same point in the diffusion convention of [`FlowMatchingPath`][]). Conditioning on y is
conditioning on x_t, so the flow-matching velocity is ``E[x0 - eps | x_t] = x0_hat - eps_hat``.
"""

import equinox as eqx
import jax.numpy as jnp

from .._types import Particles
from ._predictions import Coefficients, check_prediction, check_process, convert_with


class FlowMatchingVelocity(eqx.Module):
    """A diffusion model read as ``learn``'s flow-matching velocity ``v(tau, y, args)`` from
    N(0, I) at tau = 0 to the data at tau = 1 (see [`to_flow_matching`][]).

    At tau the model is evaluated at the time t of log-SNR ``logit(tau)`` and at
    ``x = (alpha(t) + sigma(t)) y``; times tau outside the process's range of log-SNR map to t
    outside [0, 1], where the schedule's formula is extended. Call with tau in (0, 1).
    """

    model: object
    process: object
    prediction: str = eqx.field(static=True)

    def __check_init__(self):
        if not callable(self.model):
            raise TypeError(f"`model` must be callable as model(t, x), got "
                            f"{type(self.model).__name__}.")
        check_process(self.process)
        check_prediction(self.prediction)

    def __call__(self, tau, y, args=None) -> Particles:
        tau = jnp.asarray(tau, y.dtype)
        t = self.process.time_of_log_snr(jnp.log(tau) - jnp.log1p(-tau))
        c = Coefficients.at(self.process, t, y)
        x = (c.a + c.s) * y
        value = self.model(t, x)
        return (convert_with(c, self.prediction, "x0", value, x)
                - convert_with(c, self.prediction, "eps", value, x))


def to_flow_matching(model, process, prediction: str) -> FlowMatchingVelocity:
    """Turn a diffusion model ``model(t, x)`` of kind `prediction` for `process` into the
    flow-matching velocity field of ``learn`` (noise at tau = 0, data at tau = 1), usable with
    ``learn.generate`` and ``simulate``.

    The two are the same model: integrating this field from N(0, I) samples the data law the
    diffusion model has learned, as the probability-flow ODE does.
    """
    return FlowMatchingVelocity(model, process, prediction)
