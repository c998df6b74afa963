"""Measures of clouds and trajectories: moments, W2 to a target, path energy, straightness."""

import jax.numpy as jnp

from . import _checks
from ._types import Array, Matrix, Particles, Scalar


def covariance(x) -> Matrix:
    """Population covariance of a cloud `(n, d)`, shape `(d, d)`."""
    x = _checks.particles(x, "x")
    centred = x - jnp.mean(x, axis=0, keepdims=True)
    return centred.T @ centred / x.shape[0]


def relative_error(value, reference) -> Scalar:
    """Frobenius ``|value - reference| / |reference|``."""
    value, reference = jnp.asarray(value), jnp.asarray(reference)
    return jnp.linalg.norm(value - reference) / jnp.linalg.norm(reference)


def path_energy(xs, ts) -> Scalar:
    """Mean kinetic energy ``E int |dx/dt|^2 dt`` of saved paths `xs` `(T, n, d)` at `ts` `(T,)`,
    by finite differences (a lower bound that is exact for straight, uniformly traversed paths)."""
    xs = jnp.asarray(xs)
    dt = jnp.diff(jnp.asarray(ts, xs.dtype))
    velocity = jnp.diff(xs, axis=0) / dt[:, None, None]
    return jnp.sum(jnp.mean(jnp.sum(velocity**2, axis=-1), axis=1) * dt)


def straightness(xs, ts) -> Scalar:
    """``E |x(t1) - x(t0)|^2 / ((t1 - t0) E int |dx/dt|^2 dt)`` in (0, 1]; 1 for straight paths
    at constant speed. `xs` `(T, n, d)`, `ts` `(T,)`."""
    xs = jnp.asarray(xs)
    span = jnp.asarray(ts[-1] - ts[0], xs.dtype)
    displacement = jnp.mean(jnp.sum((xs[-1] - xs[0]) ** 2, axis=-1))
    return displacement / (span * path_energy(xs, ts))


def mean_displacement(x0: Particles, x1: Particles) -> Array:
    """``E |x1 - x0|^2`` over paired rows."""
    return jnp.mean(jnp.sum((jnp.asarray(x1) - jnp.asarray(x0)) ** 2, axis=-1))
