"""Matrix functions of symmetric positive (semi-)definite matrices, by eigendecomposition."""

import jax.numpy as jnp

from .._types import Matrix


def sqrtm_psd(a: Matrix) -> Matrix:
    """The symmetric square root of a PSD matrix, shape `(d, d)`."""
    w, v = jnp.linalg.eigh((a + a.T) / 2)
    return (v * jnp.sqrt(jnp.clip(w, 0))[None, :]) @ v.T


def inv_sqrtm_pd(a: Matrix) -> Matrix:
    """The inverse symmetric square root of a PD matrix, shape `(d, d)`."""
    w, v = jnp.linalg.eigh((a + a.T) / 2)
    return (v / jnp.sqrt(w)[None, :]) @ v.T


def symmetrize(a: Matrix) -> Matrix:
    return (a + a.T) / 2
