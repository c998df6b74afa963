"""Optimal transport between Gaussians in closed form (the Bures-Wasserstein geometry)."""

import jax.numpy as jnp

from .. import _checks
from .._types import Matrix, MatrixLike, Scalar, ScalarLike, VectorLike
from ._linalg import inv_sqrtm_pd, sqrtm_psd, symmetrize


def bures_monge_map(cov0: MatrixLike, cov1: MatrixLike) -> Matrix:
    """The symmetric matrix T with ``T cov0 T = cov1``: the W2-optimal map, shape `(d, d)`.

    ``T = cov0^{-1/2} (cov0^{1/2} cov1 cov0^{1/2})^{1/2} cov0^{-1/2}``.
    """
    cov0 = _checks.covariance(cov0, "cov0")
    cov1 = _checks.covariance(cov1, "cov1", dim=cov0.shape[0], semidefinite=True)
    cov1 = cov1.astype(cov0.dtype)
    root0 = sqrtm_psd(cov0)
    inv_root0 = inv_sqrtm_pd(cov0)
    return symmetrize(inv_root0 @ sqrtm_psd(root0 @ cov1 @ root0) @ inv_root0)


def bures_geodesic(cov0: MatrixLike, cov1: MatrixLike, t: ScalarLike) -> Matrix:
    """Covariance at time `t` of McCann's interpolation between N(0, cov0) and N(0, cov1).

    ``cov_t = ((1-t) I + t T) cov0 ((1-t) I + t T)`` with T the Monge map; shape `(d, d)`.
    """
    transport = bures_monge_map(cov0, cov1)
    t = _checks.unit_interval(jnp.asarray(_checks.scalar(t, "t"), transport.dtype))
    step = (1 - t) * jnp.eye(transport.shape[0], dtype=transport.dtype) + t * transport
    return symmetrize(step @ jnp.asarray(cov0, transport.dtype) @ step)


def bures_w2_squared(mean0: VectorLike, cov0: MatrixLike, mean1: VectorLike,
                     cov1: MatrixLike) -> Scalar:
    """Squared W2 between N(mean0, cov0) and N(mean1, cov1):
    ``|m0 - m1|^2 + tr cov0 + tr cov1 - 2 tr (cov0^{1/2} cov1 cov0^{1/2})^{1/2}``."""
    cov0 = _checks.covariance(cov0, "cov0", semidefinite=True)
    d = cov0.shape[0]
    cov1 = _checks.covariance(cov1, "cov1", dim=d, semidefinite=True).astype(cov0.dtype)
    mean0 = _checks.vector(mean0, "mean0", dim=d).astype(cov0.dtype)
    mean1 = _checks.vector(mean1, "mean1", dim=d).astype(cov0.dtype)
    root0 = sqrtm_psd(cov0)
    cross = jnp.trace(sqrtm_psd(root0 @ cov1 @ root0))
    gap = mean0 - mean1
    return jnp.maximum(gap @ gap + jnp.trace(cov0) + jnp.trace(cov1) - 2 * cross, 0)
