"""Probability measures on R^d: weighted particle clouds and Gaussians."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from . import _checks
from ._types import (
    Key,
    Matrix,
    MatrixLike,
    Particles,
    ParticlesArray,
    ParticlesLike,
    ScalarLike,
    Vector,
    VectorLike,
    Weights,
    WeightsLike,
)


def isotropic_log_prob(x: ParticlesArray, mean: VectorLike | ScalarLike = 0.0,
                       variance: ScalarLike = 1.0) -> Weights:
    """Log-density of N(mean, variance I) at each row of `x` `(n, d)`, shape `(n,)`; `mean` `(d,)`
    or a scalar. An unchecked kernel for losses and samplers (``Gaussian.log_prob`` is the
    checked, full-covariance one)."""
    d = x.shape[1]
    squares = jnp.sum((x - jnp.atleast_1d(mean)[None, :]) ** 2, axis=1)
    return -0.5 * squares / variance - 0.5 * d * (math.log(2 * math.pi) + jnp.log(variance))


class Empirical(eqx.Module):
    """A weighted particle cloud ``sum_i weights[i] delta_{points[i]}``.

    **Arguments:**
    - `points`: particles, shape `(n, d)`.
    - `weights`: probabilities, shape `(n,)`, non-negative and summing to one; uniform if `None`.
    """

    points: Particles
    weights: Weights

    def __init__(self, points: ParticlesLike, weights: WeightsLike | None = None):
        points = _checks.particles(points, "points")
        if weights is None:
            weights = jnp.full(points.shape[:1], 1 / points.shape[0], points.dtype)
        self.points = points
        self.weights = _checks.weights(weights, points.shape[0], "weights", dtype=points.dtype)

    @property
    def n(self) -> int:
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    def mean(self) -> Vector:
        """Weighted mean, shape `(d,)`."""
        return self.weights @ self.points

    def cov(self) -> Matrix:
        """Weighted covariance (population, not unbiased), shape `(d, d)`."""
        centred = self.points - self.mean()[None, :]
        return (centred * self.weights[:, None]).T @ centred

    def sample(self, key: Key, n: int) -> Particles:
        """`n` points drawn with replacement according to the weights, shape `(n, d)`."""
        key = _checks.key(key)
        n = _checks.positive_int(n, "n")
        idx = jax.random.choice(key, self.n, (n,), p=self.weights)
        return self.points[idx]


class Gaussian(eqx.Module):
    """The Gaussian measure N(mean, cov) on R^d.

    **Arguments:**
    - `mean`: shape `(d,)`.
    - `cov`: symmetric positive-definite, shape `(d, d)`.
    """

    mean: Vector
    cov: Matrix

    def __init__(self, mean: VectorLike, cov: MatrixLike):
        mean = _checks.as_float_array(mean, "mean")
        if mean.ndim != 1:
            raise ValueError(f"`mean` must have shape (d,), got {tuple(mean.shape)}.")
        self.mean = _checks.check_finite(mean, "mean")
        self.cov = _checks.covariance(cov, "cov", dim=mean.shape[0]).astype(mean.dtype)

    @classmethod
    def standard(cls, d: int, dtype=None) -> "Gaussian":
        """N(0, I_d)."""
        d = _checks.positive_int(d, "d")
        dtype = _checks.float_dtype(dtype)
        return cls(jnp.zeros(d, dtype), jnp.eye(d, dtype=dtype))

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def sample(self, key: Key, n: int) -> Particles:
        """`n` independent draws, shape `(n, d)`."""
        key = _checks.key(key)
        n = _checks.positive_int(n, "n")
        chol = jnp.linalg.cholesky(self.cov)
        z = jax.random.normal(key, (n, self.dim), self.mean.dtype)
        return self.mean[None, :] + z @ chol.T

    def log_prob(self, x: ParticlesLike) -> Weights:
        """Log-density at each row of `x` (shape `(n, d)`), shape `(n,)`."""
        x = _checks.particles(x, "x", dim=self.dim).astype(self.mean.dtype)
        chol = jnp.linalg.cholesky(self.cov)
        z = jax.scipy.linalg.solve_triangular(chol, (x - self.mean[None, :]).T, lower=True)
        half_logdet = jnp.sum(jnp.log(jnp.diag(chol)))
        return -0.5 * jnp.sum(z**2, axis=0) - half_logdet - 0.5 * self.dim * jnp.log(2 * jnp.pi)
