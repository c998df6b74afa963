"""Optimal transport between Gaussians (Bures-Wasserstein), through ott-jax."""

import jax.numpy as jnp
from ott.tools.gaussian_mixture.gaussian import Gaussian as OttGaussian

from .. import _checks
from .._types import Matrix, MatrixLike, Scalar, VectorLike
from ._ott import promoted


def _gaussian(mean, cov, names):
    mean = _checks.check_finite(_checks.as_float_array(mean, names[0]), names[0])
    if mean.ndim != 1:
        raise ValueError(f"`{names[0]}` must have shape (d,), got {tuple(mean.shape)}.")
    cov = _checks.covariance(cov, names[1], dim=mean.shape[0]).astype(mean.dtype)
    return mean, cov


def gaussian_w2_squared(mean0: VectorLike, cov0: MatrixLike, mean1: VectorLike,
                        cov1: MatrixLike) -> Scalar:
    """Squared W2 (Bures-Wasserstein) between N(mean0, cov0) and N(mean1, cov1).

    Shapes: means `(d,)`, covariances `(d, d)` symmetric positive definite.
    """
    mean0, cov0 = _gaussian(mean0, cov0, ("mean0", "cov0"))
    mean1, cov1 = _gaussian(mean1, cov1, ("mean1", "cov1"))
    _checks.same_dimension(cov0, cov1, ("cov0", "cov1"))
    return promoted(_squared_w2)(mean0, cov0, mean1.astype(mean0.dtype), cov1.astype(mean0.dtype))


def _squared_w2(mean0, cov0, mean1, cov1) -> Scalar:
    g0 = OttGaussian.from_mean_and_cov(mean0, cov0)
    return jnp.maximum(g0.w2_dist(OttGaussian.from_mean_and_cov(mean1, cov1)), 0)


def gaussian_monge_map(cov0: MatrixLike, cov1: MatrixLike) -> Matrix:
    """The optimal (Monge) linear map T from N(0, cov0) to N(0, cov1): symmetric positive
    definite with ``T cov0 T = cov1``, shape `(d, d)`. Apply it as ``x @ T`` (T is symmetric)."""
    cov0 = _checks.covariance(cov0, "cov0")
    cov1 = _checks.covariance(cov1, "cov1", dim=cov0.shape[0]).astype(cov0.dtype)
    return promoted(_monge_map)(cov0, cov1)


def _monge_map(cov0, cov1) -> Matrix:
    zero = jnp.zeros(cov0.shape[0], cov0.dtype)
    g0 = OttGaussian.from_mean_and_cov(zero, cov0)
    g1 = OttGaussian.from_mean_and_cov(zero, cov1)
    # The map applied to the basis vectors gives its rows (T is symmetric).
    mapped = g0.transport(g1, jnp.eye(cov0.shape[0], dtype=cov0.dtype))
    return (mapped + mapped.T) / 2
