"""The heat flow of a Gaussian."""

import jax.numpy as jnp

from .. import _checks
from .._types import Matrix, MatrixLike, ScalarLike


def heat_covariance(cov0: MatrixLike, t: ScalarLike, diffusivity: ScalarLike = 1.0) -> Matrix:
    """Covariance at time `t` of ``d rho/dt = diffusivity * Laplacian(rho)`` from N(m, cov0).

    The heat flow is the Wasserstein gradient flow of ``diffusivity * int rho log rho``; its
    particles follow ``dX = sqrt(2 diffusivity) dW``, so ``cov_t = cov0 + 2 diffusivity t I``.
    Shape `(d, d)`.
    """
    cov0 = _checks.covariance(cov0, "cov0", semidefinite=True)
    t = _checks.positive(t, "t", allow_zero=True)
    diffusivity = _checks.positive(diffusivity, "diffusivity", allow_zero=True)
    eye = jnp.eye(cov0.shape[0], dtype=cov0.dtype)
    return cov0 + 2 * jnp.asarray(diffusivity, cov0.dtype) * jnp.asarray(t, cov0.dtype) * eye
