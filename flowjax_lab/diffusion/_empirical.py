"""The exact score of an empirical measure under the forward process (the diffusion counterpart of
``fields.ExactFlowMatching``)."""

import equinox as eqx
import jax.numpy as jnp

from .. import _checks
from .._types import Array, Particles
from ..fields import ExactFlowMatching
from ._predictions import Coefficients, check_process


class EmpiricalScore(eqx.Module):
    """The score of ``p_t = sum_j w_j N(alpha(t) y_j, (sigma(t)^2 + alpha(t)^2 h^2) I)``: the data
    `y_j`, smoothed by N(0, h^2 I) with the bandwidth h (a kernel density estimate; none by
    default), pushed by the forward `process`. With h = 0 it is the minimiser of denoising score
    matching on these points.

    By the time change of [`to_flow_matching`][], ``p_t`` at x is the flow-matching marginal at
    ``tau = alpha / (alpha + s)`` and ``y = x / (alpha + s)`` (``s^2 = sigma^2 + alpha^2 h^2``),
    rescaled; the posterior over the data points is computed by ``fields.ExactFlowMatching``
    (chunks of data points, streaming log-sum-exp). Sampled from fresh noise, the reverse SDE and
    probability-flow ODE of the exact (h = 0) score land on the data points themselves
    (memorization); with h > 0 they land at distance ~h around them.

    **Arguments:** `process`; `data` `(m, d)`; `weights` `(m,)` (uniform if `None`);
    `bandwidth` h >= 0; `chunk_size` (data points processed at once; `None` chooses by memory,
    as in ``fields.ExactFlowMatching``).

    Call as ``score(t, x)`` with `x` `(n, d)` and `t` a scalar or `(n,)`: a "score" prediction.
    """

    process: object
    flow: ExactFlowMatching
    bandwidth: Array

    def __init__(self, process, data, weights=None, *, bandwidth=0.0,
                 chunk_size: int | None = None):
        self.process = check_process(process)
        self.flow = ExactFlowMatching(data, weights, chunk_size=chunk_size)
        bandwidth = _checks.positive(_checks.scalar(bandwidth, "bandwidth"), "bandwidth",
                                     allow_zero=True)
        self.bandwidth = jnp.asarray(bandwidth, self.flow.data.dtype)

    def _fm(self, t, x):
        c = Coefficients.at(self.process, t, x)
        h = self.bandwidth.astype(x.dtype)
        scale = c.a + jnp.sqrt(c.s**2 + (c.a * h) ** 2)  # (n, 1) or a scalar
        tau = jnp.broadcast_to(c.a / scale, (x.shape[0], 1))[:, 0]
        return tau, x / scale, scale

    def __call__(self, t, x) -> Particles:
        """``grad log p_t(x)``, shape `(n, d)`."""
        tau, y, scale = self._fm(t, x)
        return self.flow.score(tau, y) / scale

    def denoiser(self, t, x) -> Particles:
        """``E[y_J | x_t = x]``, the posterior mean of the data points (an "x0" prediction when
        h = 0)."""
        tau, y, _ = self._fm(t, x)
        return self.flow.denoiser(tau, y)

    def log_prob(self, t, x) -> Array:
        """``log p_t(x)`` at each particle, `(n,)`."""
        tau, y, scale = self._fm(t, x)
        return self.flow.log_prob(tau, y) - x.shape[1] * jnp.log(jnp.broadcast_to(
            scale, (x.shape[0], 1))[:, 0])
