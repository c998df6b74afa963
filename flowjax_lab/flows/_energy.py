"""The energy of an interacting cloud along a trajectory, and its dissipation rate."""

import jax
import jax.numpy as jnp

from .. import _checks
from .._types import Array, Float, ParticlesLike, PathLike, Scalar
from ..fields._interaction import Interaction

Energies = Float[Array, " T"]


def _interaction(field) -> Interaction:
    if not isinstance(field, Interaction):
        raise TypeError(f"`field` must be a fields.Interaction, got {type(field).__name__}.")
    return field


def energy_along(field, xs: PathLike) -> Energies:
    """The energy ``field.energy`` of each saved cloud of `xs` `(T, n, d)`, shape `(T,)`.

    Along the exact flow it never increases: ``dF/dt = -sum_i w_i |v_i|^2``.
    """
    field = _interaction(field)
    xs = _checks.as_float_array(xs, "xs")
    if xs.ndim != 3:
        raise ValueError(f"`xs` must be saved clouds of shape (T, n, d), got {tuple(xs.shape)}.")
    field.check(xs[0])
    return jax.lax.map(field.energy, xs)


def dissipation(field, x: ParticlesLike) -> Scalar:
    """The dissipation ``-dF/dt = sum_i w_i |v_i|^2`` of the cloud `x` `(n, d)`, a scalar."""
    field = _interaction(field)
    x = _checks.particles(x, "x")
    v = field(None, x)
    w = jnp.full(x.shape[:1], 1 / x.shape[0], x.dtype) if field.weights is None else (
        field.weights.astype(x.dtype))
    return w @ jnp.sum(v**2, axis=1)
