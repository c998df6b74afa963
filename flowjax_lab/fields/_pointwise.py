"""Lift a per-particle velocity rule to a field on the whole cloud."""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._types import Particles, ParticlesArray, Weights


class Pointwise(eqx.Module):
    """The field ``x -> [rule(t, x_i, args)]_i`` of a rule on one particle `(d,) -> (d,)`.

    Its ``divergence`` is the exact trace of each particle's Jacobian, shape `(n,)`.
    """

    rule: Callable

    def __call__(self, t, x: ParticlesArray, args=None) -> Particles:
        _cloud(x)
        out = jax.vmap(self.rule, in_axes=(None, 0, None))(t, x, args)
        if out.shape != x.shape:
            raise ValueError(f"`rule` must return an array shaped like one particle "
                             f"{x.shape[1:]}, got {out.shape[1:]}.")
        return out

    def divergence(self, t, x: ParticlesArray, args=None) -> Weights:
        _cloud(x)
        jac = jax.vmap(jax.jacfwd(self.rule, argnums=1), in_axes=(None, 0, None))(t, x, args)
        return jnp.trace(jac, axis1=1, axis2=2)


def _cloud(x) -> None:
    if jnp.ndim(x) != 2:
        raise ValueError(f"`x` must be a particle cloud of shape (n, d), got shape "
                         f"{jnp.shape(x)}.")


def pointwise(rule: Callable) -> Pointwise:
    """Lift ``rule(t, x_i, args) -> dx_i`` (one particle, shape `(d,)`) to the cloud `(n, d)`."""
    if not callable(rule):
        raise TypeError(f"`rule` must be callable as rule(t, x_i, args), got {type(rule)}.")
    return Pointwise(rule)
