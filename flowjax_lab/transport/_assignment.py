"""Exact optimal assignment between equal-size uniform clouds (scipy), usable under jit."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from .. import _checks
from .._types import ArrayLike, Pairwise, Particles, ParticlesLike, ParticlesM, Permutation


def _assign_host(cost: ArrayLike) -> np.ndarray:
    rows, cols = linear_sum_assignment(np.asarray(cost, dtype=np.float64))
    perm = np.empty_like(cols)
    perm[rows] = cols
    return perm.astype(np.int32)


def squared_distances(x: Particles, y: ParticlesM) -> Pairwise:
    """|x_i - y_j|^2, shape `(n, m)`."""
    return (
        jnp.sum(x**2, axis=1)[:, None] + jnp.sum(y**2, axis=1)[None, :] - 2 * x @ y.T
    ).clip(0)


def optimal_permutation(x: ParticlesLike, y: ParticlesLike) -> Permutation:
    """The permutation `p` `(n,)` minimising ``sum_i |x_i - y_{p_i}|^2`` (Hungarian, on host).

    Works under ``jit`` and ``vmap`` through ``jax.pure_callback``; not differentiable (the
    assignment is piecewise constant), so gradients treat it as fixed. `x`, `y` `(n, d)`.
    """
    x = _checks.particles(x, "x")
    y = _checks.particles(y, "y")
    _checks.same_dimension(x, y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"`x` and `y` must hold the same number of points, got {x.shape[0]} "
                         f"and {y.shape[0]}.")
    y = y.astype(x.dtype)
    cost = jax.lax.stop_gradient(squared_distances(x, y))
    out = jax.ShapeDtypeStruct(cost.shape[:-2] + cost.shape[-2:-1], jnp.int32)
    return jax.pure_callback(_assign_host, out, cost, vmap_method="sequential")
