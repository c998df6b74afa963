"""The exact (conditional-expectation) flow-matching field to an empirical target.

With X0 ~ N(0, I), X1 ~ sum_j w_j delta_{y_j} independent and X_t = (1 - t) X0 + t X1, the
posterior of the data index given X_t = x is ``p_j(x) ∝ w_j exp(-|z_j|^2 / 2)`` with
``z_j = (x - t y_j) / (1 - t)`` the source point that pairs with ``y_j``, and the flow-matching
velocity is ``v_t(x) = E[X1 - X0 | X_t = x] = sum_j p_j (y_j - z_j)``.

Every quantity is a posterior mean over the data, computed with a streaming (online)
log-sum-exp over blocks of (particle, data point) pairs (``_blocks.fold_pairs``): dense while the
pairs fit a memory budget, blocks that fit it above, so memory is bounded whatever the numbers of
particles and data points; the log-domain weights never underflow, so the field stays finite as
t -> 1, where the posterior collapses onto the nearest data point.
"""

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .. import _blocks, _checks
from .._types import Array, Particles, ParticlesArray, ParticlesLike, Weights, WeightsLike


class _Sums(eqx.Module):
    """Posterior sums over the data for each particle, relative to the running maximum `top` of
    the logits ``L_j`` (the sums of a ``_blocks.Softmax``)."""

    y: Array  # (n, d) sum_j exp(L_j - top) y_j
    z: Array  # (n, d) sum_j exp(L_j - top) z_j
    y2: Array  # (n,) sum_j exp(L_j - top) |y_j|^2
    z2: Array  # (n,) sum_j exp(L_j - top) |z_j|^2


class ExactFlowMatching(eqx.Module):
    """The closed-form flow-matching field from N(0, I) at t = 0 to an empirical target at t = 1.

    **Arguments:**
    - `data`: target points `y_j`, shape `(m, d)`.
    - `weights`: target weights `(m,)` (uniform if `None`).
    - `chunk_size`: data points processed at once against all `n` particles (memory
      `(n, chunk_size, d)` per call), or `None` to choose per call: all pairs at once while their
      ``(d + 3) n m`` numbers fit in `memory_budget`, square blocks of particles and data points
      that fit it above (`_blocks.choose_block`).
    - `memory_budget`: bytes of pair arrays a call may hold when `chunk_size` is `None`; `None`
      means `_blocks.PAIR_BUDGET_BYTES` (2^27, 128 MiB) as it is when the field is built.

    Times are clipped to ``[0, 1 - sqrt(eps)]`` (eps of the dtype): at t = 1 the field is the
    limit of a field whose Jacobian is ``-I / (1 - t)``, and the clip keeps it finite while moving
    the end points by ``sqrt(eps)`` at most. Integrating this field from fresh noise lands on the
    data points themselves (memorization).

    Call as ``field(t, x, args)`` with `x` `(n, d)` and `t` a scalar or per-particle `(n,)`.
    """

    data: Particles
    log_weights: Array
    chunk_size: int | None = eqx.field(static=True)
    memory_budget: int = eqx.field(static=True)

    def __init__(self, data: ParticlesLike, weights: WeightsLike | None = None, *,
                 chunk_size: int | None = None, memory_budget: int | None = None):
        data = _checks.particles(data, "data")
        m = data.shape[0]
        if weights is None:
            log_w = jnp.full((m,), -np.log(m), data.dtype)
        else:
            w = _checks.weights(weights, m, "weights", dtype=data.dtype)
            log_w = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1)), -jnp.inf)
        self.chunk_size = (None if chunk_size is None
                           else _checks.positive_int(chunk_size, "chunk_size"))
        self.memory_budget = (_blocks.PAIR_BUDGET_BYTES if memory_budget is None
                              else _checks.positive_int(memory_budget, "memory_budget"))
        self.data, self.log_weights = data, log_w

    def _times(self, t, x):
        dtype = x.dtype
        t_max = 1 - float(np.sqrt(np.finfo(dtype).eps))
        t = jnp.clip(jnp.asarray(t, dtype), 0, t_max)
        return jnp.broadcast_to(t, x.shape[:1])

    def _moments(self, t, x) -> _blocks.Softmax:
        x = _checks.particles(x, "x", dim=self.data.shape[1], finite=False)
        return _posterior_sums(self.data, self.log_weights, self._times(t, x), x, self._block(x))

    def _block(self, x) -> tuple[int, int]:
        """(particles, data points) per block: all particles against `chunk_size` data points,
        or the choice of `_blocks.choose_block` (both dimensions whole when dense)."""
        (n, d), m = x.shape, self.data.shape[0]
        if self.chunk_size is not None:
            return n, min(self.chunk_size, m)
        edge = _blocks.choose_block(n, m, d + 3, x.dtype, self.memory_budget)
        return (n, m) if edge is None else (min(edge, n), min(edge, m))

    def __call__(self, t, x: ParticlesLike, args=None) -> Particles:
        """The velocity ``E[X1 - X0 | X_t = x]``, shape `(n, d)`."""
        acc = self._moments(t, x)
        return (acc.sums.y - acc.sums.z) / acc.mass[:, None]

    def denoiser(self, t, x: ParticlesLike) -> Particles:
        """The posterior mean ``E[X1 | X_t = x]`` (x1-prediction), shape `(n, d)`."""
        acc = self._moments(t, x)
        return acc.sums.y / acc.mass[:, None]

    def score(self, t, x: ParticlesLike) -> Particles:
        """``grad log alpha_t(x) = -E[X0 | X_t = x] / (1 - t)`` (Tweedie), shape `(n, d)`."""
        acc = self._moments(t, x)
        s = 1 - self._times(t, x)
        return -acc.sums.z / (acc.mass * s)[:, None]

    def log_prob(self, t, x: ParticlesArray) -> Weights:
        """Log-density of ``alpha_t = sum_j w_j N(t y_j, (1 - t)^2 I)`` at each particle, `(n,)`."""
        acc = self._moments(t, x)
        s = 1 - self._times(t, x)
        d = x.shape[1]
        return acc.top + jnp.log(acc.mass) - d * jnp.log(s) - d / 2 * jnp.log(2 * jnp.pi)

    def divergence(self, t, x: ParticlesLike, args=None) -> Weights:
        """The exact divergence of the velocity at each particle, shape `(n,)`.

        ``div v = (tr grad E[X1|x] - d) / (1 - t)`` with ``grad E[X1|x] = t Cov(X1|x) / (1-t)^2``;
        the posterior covariance is taken from the data side for t < 1/2 and from the source side
        (``Cov(X0|x) = t^2 Cov(X1|x) / (1-t)^2``) for t >= 1/2, where each is free of cancellation.
        """
        acc = self._moments(t, x)
        t = self._times(t, x)
        s = 1 - t
        my, mz = acc.sums.y / acc.mass[:, None], acc.sums.z / acc.mass[:, None]
        var_y = jnp.maximum(acc.sums.y2 / acc.mass - jnp.sum(my**2, axis=1), 0)
        var_z = jnp.maximum(acc.sums.z2 / acc.mass - jnp.sum(mz**2, axis=1), 0)
        early = t < 0.5
        grad_trace = jnp.where(early, t * var_y / s**2, var_z / jnp.where(early, 1, t))
        return (grad_trace - x.shape[1]) / s


@eqx.filter_jit
def _posterior_sums(data, log_weights, t, x, block: tuple[int, int]) -> _blocks.Softmax:
    """Streaming log-sum-exp over blocks of (particles, data points) (jitted once per shape and
    block); padded pairs are masked to the logit ``-inf``, padded particles have t = 0."""
    dtype = x.dtype
    d = x.shape[1]

    def step(acc, particles, chunk, mask):
        (xb, tb), (y, log_w) = particles, chunk
        sb = 1 - tb
        z = (xb[:, None, :] - tb[:, None, None] * y[None]) / sb[:, None, None]  # (r, c, d)
        z2 = jnp.sum(z**2, axis=-1)
        logits = jnp.where(mask, log_w[None, :] - z2 / 2, -jnp.inf)  # (r, c)
        return _blocks.softmax_update(acc, logits, lambda p: _Sums(
            p @ y, jnp.einsum("nc,ncd->nd", p, z), p @ jnp.sum(y**2, axis=1),
            jnp.sum(p * z2, axis=1)))

    def init(particles):
        r = particles[0].shape[0]
        zeros_r, zeros_rd = jnp.zeros((r,), dtype), jnp.zeros((r, d), dtype)
        return _blocks.softmax_init((r,), _Sums(zeros_rd, zeros_rd, zeros_r, zeros_r), dtype)

    chunks = (data.astype(dtype), log_weights.astype(dtype))
    return _blocks.fold_pairs(step, init, (x, t), chunks, block)
