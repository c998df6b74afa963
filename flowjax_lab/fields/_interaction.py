"""Interacting particles: the Wasserstein gradient flow of a potential plus a pair interaction.

Pair sums are evaluated block by block (``_blocks``: rows with ``lax.map``, columns with
``lax.scan``, each block pair recomputed in reverse mode), so no `(n, n)` array is ever held:
the value and its gradient need memory linear in `n` for a fixed block size. A kernel whose type
defines ``of_squared_distance`` (``flows.RadialKernel``) takes the fast path: its pair terms are
elementwise functions of a block of squared distances (``_blocks.radial_pair_sum``,
``radial_moment_sum``); any other kernel is differentiated by autodiff once per pair.
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _blocks, _checks
from .._types import Particles, ParticlesArray, ParticlesLike, Scalar, Weights, WeightsLike

RADIAL_CHUNK = 512
"""Default block edge of the radial fast path: `(512, 512)` blocks of squared distances (the
fastest of 256, 512, 1024, 2048 for the velocity at n = 20 000, d = 3 on CPU)."""


def default_chunk_size(n: int, d: int) -> int:
    """A block edge `c` such that a `(c, c, d)` block holds about 2^22 numbers (at most `n`)."""
    c = 2 ** int(math.log2(math.sqrt(2**22 / max(d, 1))))
    return max(1, min(n, max(32, c)))


def _uniform(x, weights):
    if weights is None:
        return jnp.full(x.shape[:1], 1 / x.shape[0], x.dtype)
    return weights.astype(x.dtype)


def interaction_energy(x: ParticlesLike, kernel=None, potential=None,
                       weights: WeightsLike | None = None, *,
                       chunk_size=None) -> Scalar:
    """``F(x) = sum_i w_i potential(x_i) + 1/2 sum_{i != j} w_i w_j kernel(x_i - x_j)``.

    With uniform weights ``w_i = 1/n`` this is ``mean_i potential(x_i) + 1/(2 n^2) sum_{i != j}
    kernel(x_i - x_j)``. Evaluated in blocks (memory linear in `n`).

    **Arguments:**
    - `x`: particles `(n, d)`; `weights`: `(n,)` probabilities, uniform if `None`.
    - `kernel`: even function of one difference `(d,) -> ()`, or `None`.
    - `potential`: function of one particle `(d,) -> ()`, or `None`.
    - `chunk_size`: block edge of the pair sums; `None` picks one from `d`.

    **Returns:** a scalar.
    """
    x = _checks.particles(x, "x")
    weights = None if weights is None else _checks.weights(weights, x.shape[0], dtype=x.dtype)
    field = Interaction(kernel, potential, weights=weights, chunk_size=chunk_size)
    field.check(x)
    return field.energy(x)


class Interaction(eqx.Module):
    """Wasserstein gradient flow of an interaction energy on a weighted cloud,
    ``F = sum_i w_i V(x_i) + 1/2 sum_{i != j} w_i w_j W(x_i - x_j)``.

    Particle `i` moves with ``-grad V(x_i) - sum_{j != i} w_j grad W(x_i - x_j)``, which is
    ``-(1/w_i) dF/dx_i``; with uniform weights, ``-grad V(x_i) - 1/n sum_{j != i}
    grad W(x_i - x_j)``. Gradients are taken by autodiff of `kernel` and `potential`; a kernel
    of the squared distance (a ``flows.RadialKernel``, which defines ``of_squared_distance``) is
    summed on blocks of squared distances, with ``grad W(z) = 2 W'(|z|^2) z``. The self
    pair is excluded, so singular kernels (``-log|z|``, Riesz) work; particles that collide make
    the velocity NaN, which ``simulate`` reports as ``Status.NONFINITE`` (an adaptive solve
    usually stalls just before and reports ``Status.MAX_STEPS_REACHED``).

    **Arguments:**
    - `kernel`: even pair interaction `W`, a callable on one difference `(d,) -> ()`, or `None`.
    - `potential`: external potential `V`, a callable on one particle `(d,) -> ()`, or `None`.
    - `weights`: particle weights `(n,)` (non-negative, summing to one); uniform if `None`.
    - `chunk_size`: block edge of the pair sums (static); `None` picks `RADIAL_CHUNK` for a
      radial kernel, otherwise one from `d` so that a `(c, c, d)` block holds about 4M numbers.
    """

    kernel: Callable | None
    potential: Callable | None
    weights: Weights | None
    chunk_size: int | None = eqx.field(static=True)

    def __init__(self, kernel=None, potential=None, *, weights: WeightsLike | None = None,
                 chunk_size=None):
        for f, name in ((kernel, "kernel"), (potential, "potential")):
            if f is not None and not callable(f):
                raise TypeError(f"`{name}` must be callable on one point (d,) -> (), got {f!r}.")
        if weights is not None:
            weights = _checks.as_float_array(weights, "weights")
            if weights.ndim != 1:
                raise ValueError(f"`weights` must have shape (n,), got {tuple(weights.shape)}.")
            weights = _checks.weights(weights, weights.shape[0])
        self.kernel = kernel
        self.potential = potential
        self.weights = weights
        self.chunk_size = (None if chunk_size is None
                           else _checks.positive_int(chunk_size, "chunk_size"))

    def check(self, x) -> None:
        """Trace-time checks of the cloud `x` against the weights and the user's functions."""
        n, d = x.shape
        if self.weights is not None and self.weights.shape != (n,):
            raise ValueError(
                f"`weights` has shape {tuple(self.weights.shape)} but the cloud has n = {n}."
            )
        for f, name in ((self.kernel, "kernel"), (self.potential, "potential")):
            if f is None:
                continue
            try:
                out = jax.eval_shape(f, x[0])
            except Exception as err:
                raise TypeError(f"`{name}` must be callable on one point of shape ({d},): "
                                f"{err}") from err
            if getattr(out, "shape", None) != ():
                got = getattr(out, "shape", type(out).__name__)
                raise ValueError(f"`{name}` must return a scalar for one point ({d},), got {got}.")

    def _pair_sum(self, fn, x, w):
        """``sum_{j != i} w_j fn(x_i - x_j)`` for each particle, `(n, *fn_shape)`."""
        chunk = min(self.chunk_size or default_chunk_size(*x.shape), x.shape[0])
        return _blocks.pair_sum(fn, x, x, w, chunk, kind="distinct")

    def _radial_sum(self, profile, x, w, *, moment=False):
        """``sum_{j != i} w_j profile(|x_i - x_j|^2)`` `(n,)`, or with ``moment`` the same
        weighted by ``x_i - x_j``, `(n, d)`."""
        chunk = min(self.chunk_size or RADIAL_CHUNK, x.shape[0])
        pair_sum = _blocks.radial_moment_sum if moment else _blocks.radial_pair_sum
        return pair_sum(profile, x, x, w, chunk, kind="distinct")

    @property
    def _profile(self):
        """``W`` as an elementwise function of ``|z|^2`` for a radial kernel, else `None`."""
        if callable(getattr(type(self.kernel), "of_squared_distance", None)):
            return self.kernel.of_squared_distance
        return None

    def __call__(self, t, x: ParticlesArray, args=None) -> Particles:
        """Velocity of every particle, shape `(n, d)`."""
        self.check(x)
        return _velocity(self, x)

    def divergence(self, t, x: ParticlesArray, args=None) -> Weights:
        """Divergence of the velocity field at each particle (the cloud held fixed), `(n,)`:
        ``-Laplacian V(x_i) - sum_{j != i} w_j Laplacian W(x_i - x_j)``."""
        self.check(x)
        return _divergence(self, x)

    def energy(self, x: ParticlesArray) -> Scalar:
        """The energy ``F(x)`` that this flow decreases, a scalar."""
        self.check(x)
        return _energy(self, x)


def _laplacian(f):
    return lambda y: jnp.trace(jax.hessian(f)(y))


def _derivative(f):
    """The derivative of an elementwise function `f` of an array, elementwise."""
    return lambda r2: jax.jvp(f, (r2,), (jnp.ones_like(r2),))[1]


# Jitted once per (field, shape): repeated eager calls reuse the compiled pair sums.
@eqx.filter_jit
def _velocity(field, x):
    w = _uniform(x, field.weights)
    v = jnp.zeros_like(x)
    if field.potential is not None:
        v = v - jax.vmap(jax.grad(field.potential))(x).astype(x.dtype)
    if field._profile is not None:  # grad W(z) = 2 W'(|z|^2) z
        v = v - 2 * field._radial_sum(_derivative(field._profile), x, w, moment=True)
    elif field.kernel is not None:
        v = v - field._pair_sum(jax.grad(field.kernel), x, w)
    return v


@eqx.filter_jit
def _divergence(field, x):
    w = _uniform(x, field.weights)
    div = jnp.zeros(x.shape[:1], x.dtype)
    if field.potential is not None:
        div = div - jax.vmap(_laplacian(field.potential))(x).astype(x.dtype)
    if field._profile is not None:  # Laplacian of W(|z|^2) = 2 d W' + 4 |z|^2 W''
        d1 = _derivative(field._profile)
        d2 = _derivative(d1)
        d = x.shape[1]
        div = div - field._radial_sum(lambda r2: 2 * d * d1(r2) + 4 * r2 * d2(r2), x, w)
    elif field.kernel is not None:
        div = div - field._pair_sum(_laplacian(field.kernel), x, w)
    return div


@eqx.filter_jit
def _energy(field, x):
    w = _uniform(x, field.weights)
    total = jnp.zeros((), x.dtype)
    if field.potential is not None:
        total = total + w @ jax.vmap(field.potential)(x).astype(x.dtype)
    if field._profile is not None:
        total = total + 0.5 * (w @ field._radial_sum(field._profile, x, w))
    elif field.kernel is not None:
        total = total + 0.5 * (w @ field._pair_sum(field.kernel, x, w))
    return total
