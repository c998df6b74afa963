"""The exact flow-matching field between two centred Gaussians."""

import equinox as eqx
import jax.numpy as jnp

from .. import _checks
from .._types import Matrix, MatrixLike, Particles, ParticlesLike, ScalarLike, Weights
from ..theory._flow_matching import gaussian_velocity


class GaussianFlowMatching(eqx.Module):
    """The linear field ``v_t(x) = A_t x`` of independent-coupling flow matching from
    N(0, cov0) to N(0, cov1) (see ``theory.flow_matching_gaussian``), for t in [0, 1]. `t` is not
    checked on each evaluation: outside [0, 1] the field is the formula's analytic extension
    (finite, since ``cov_t`` stays positive definite).

    **Arguments:** `cov0`, `cov1`: symmetric positive definite, shape `(d, d)`.
    """

    cov0: Matrix
    cov1: Matrix

    def __init__(self, cov0: MatrixLike, cov1: MatrixLike):
        self.cov0 = _checks.covariance(cov0, "cov0")
        self.cov1 = _checks.covariance(cov1, "cov1", dim=self.cov0.shape[0]).astype(
            self.cov0.dtype
        )

    def matrix(self, t: ScalarLike) -> Matrix:
        """A_t, shape `(d, d)`."""
        return gaussian_velocity(self.cov0, self.cov1, jnp.asarray(t, self.cov0.dtype))[1]

    def __call__(self, t: ScalarLike, x: ParticlesLike, args=None) -> Particles:
        x = _checks.particles(x, "x", dim=self.cov0.shape[0], finite=False)
        return (x @ self.matrix(t).T.astype(x.dtype)).astype(x.dtype)

    def divergence(self, t: ScalarLike, x: ParticlesLike, args=None) -> Weights:
        x = _checks.particles(x, "x", dim=self.cov0.shape[0], finite=False)
        return jnp.broadcast_to(jnp.trace(self.matrix(t)).astype(x.dtype), x.shape[:1])
