"""The maximum mean discrepancy between Gaussians for a Gaussian kernel, in closed form."""

import jax.numpy as jnp

from .. import _checks
from .._types import MatrixLike, Scalar, ScalarLike, VectorLike


def _mean_kernel(delta, cov, bandwidth):
    """``E exp(-|Z|^2 / (2 h^2))`` for ``Z ~ N(delta, cov)``."""
    eye = jnp.eye(cov.shape[0], dtype=cov.dtype)
    h2 = bandwidth**2
    determinant = jnp.linalg.det(eye + cov / h2)
    quadratic = delta @ jnp.linalg.solve(cov + h2 * eye, delta)
    return jnp.exp(-quadratic / 2) / jnp.sqrt(determinant)


def gaussian_mmd_squared(mean0: VectorLike, cov0: MatrixLike, mean1: VectorLike, cov1: MatrixLike,
                         bandwidth: ScalarLike = 1.0) -> Scalar:
    """Squared MMD between N(mean0, cov0) and N(mean1, cov1) for the kernel
    ``exp(-|x - y|^2 / (2 bandwidth^2))``: ``E k(X, X') + E k(Y, Y') - 2 E k(X, Y)``.

    Each term is a Gaussian integral, since ``X - Y ~ N(mean0 - mean1, cov0 + cov1)``.
    Means `(d,)`, covariances `(d, d)` (semi-definite allowed).
    """
    cov0 = _checks.covariance(cov0, "cov0", semidefinite=True)
    d = cov0.shape[0]
    cov1 = _checks.covariance(cov1, "cov1", dim=d, semidefinite=True).astype(cov0.dtype)
    mean0, mean1 = (_checks.as_float_array(m, name).astype(cov0.dtype)
                    for m, name in ((mean0, "mean0"), (mean1, "mean1")))
    for m, name in ((mean0, "mean0"), (mean1, "mean1")):
        if m.shape != (d,):
            raise ValueError(f"`{name}` must have shape ({d},), got {tuple(m.shape)}.")
    bandwidth = _checks.positive(bandwidth, "bandwidth")
    h = jnp.asarray(bandwidth, cov0.dtype)
    zero = jnp.zeros(d, cov0.dtype)
    return (_mean_kernel(zero, 2 * cov0, h) + _mean_kernel(zero, 2 * cov1, h)
            - 2 * _mean_kernel(mean0 - mean1, cov0 + cov1, h))
