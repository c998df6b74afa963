"""Interaction kernels ``W(z)`` and confining potentials ``V(x)``, each a function of one point.

Every kernel is even (``W(-z) = W(z)``) and maps a difference `(d,)` to a scalar; every
potential maps a particle `(d,)` to a scalar. They are equinox modules, so their parameters are
pytree leaves that ``jax.grad`` reaches. The kernels here are functions of the squared distance
(`RadialKernel`): ``Interaction`` evaluates their pair sums on whole blocks of squared distances.
"""

import abc

import equinox as eqx
import jax.numpy as jnp

from .. import _checks
from .._types import MatrixLike, Scalar, ScalarLike, Vector, VectorLike


class RadialKernel(eqx.Module):
    """A kernel of the squared distance, ``W(z) = of_squared_distance(|z|^2)``.

    Subclasses define `of_squared_distance(r2)`, applied elementwise to an array of squared
    distances (any shape). ``fields.Interaction`` recognises the type and evaluates the energy,
    velocity (from ``W'(r2)``) and divergence (from ``W'``, ``W''``) on blocks of squared
    distances instead of differentiating `__call__` once per pair.
    """

    @abc.abstractmethod
    def of_squared_distance(self, r2):
        """``W`` as a function of ``r2 = |z|^2``, elementwise."""

    def __call__(self, z: Vector) -> Scalar:
        return self.of_squared_distance(jnp.sum(z**2))


class GaussianKernel(RadialKernel):
    """``W(z) = strength * exp(-|z|^2 / (2 scale^2))``: repulsive for strength > 0."""

    scale: ScalarLike = 1.0
    strength: ScalarLike = 1.0

    def __check_init__(self):
        _checks.positive(self.scale, "scale")

    def of_squared_distance(self, r2):
        return self.strength * jnp.exp(-r2 / (2 * self.scale**2))


class LogKernel(RadialKernel):
    """``W(z) = -strength * log|z|`` (2-D Coulomb): repulsive for strength > 0, singular at 0."""

    strength: ScalarLike = 1.0

    def of_squared_distance(self, r2):
        return -self.strength * 0.5 * jnp.log(r2)


class RieszKernel(RadialKernel):
    """``W(z) = strength * |z|^(-s) / s`` with s > 0 (s = d - 2 is Coulomb in d >= 3); repulsive
    for strength > 0, singular at 0 (two particles that collide get a NaN velocity)."""

    s: ScalarLike = 1.0
    strength: ScalarLike = 1.0

    def __check_init__(self):
        _checks.positive(self.s, "s")

    def of_squared_distance(self, r2):
        return self.strength * r2 ** (-self.s / 2) / self.s


class PowerLawKernel(RadialKernel):
    """Attraction-repulsion ``W(z) = |z|^a / a - |z|^b / b`` with a > b (``|z|^0 / 0`` read as
    ``log|z|``): attractive at long range, repulsive at short range. b <= 0 is singular at 0.
    Aggregation equations (Carrillo et al.) use e.g. a = 2, b = 0.5 or b = 0."""

    a: ScalarLike = 2.0
    b: ScalarLike = 0.5

    def __check_init__(self):
        _checks.positive(self.a, "a")
        if not _checks.is_traced(self.a) and not _checks.is_traced(self.b) and self.b >= self.a:
            raise ValueError(f"`b` must be < `a` (repulsion shorter-ranged), got a={self.a}, "
                             f"b={self.b}.")

    @staticmethod
    def _power(r2, p):
        if p == 0:
            return 0.5 * jnp.log(r2)
        return r2 ** (p / 2) / p

    def of_squared_distance(self, r2):
        return self._power(r2, self.a) - self._power(r2, self.b)


class QuadraticPotential(eqx.Module):
    """Confinement ``V(x) = 1/2 (x - center)^T A (x - center)``, `A` a scalar or `(d, d)` matrix
    (symmetric). Its Langevin dynamics at temperature T is an Ornstein-Uhlenbeck process with
    equilibrium N(center, T A^{-1})."""

    matrix: ScalarLike | MatrixLike = 1.0
    center: ScalarLike | VectorLike = 0.0

    def __call__(self, x: Vector) -> Scalar:
        y = x - jnp.asarray(self.center, x.dtype)
        a = jnp.asarray(self.matrix, x.dtype)
        if a.ndim == 0:
            return 0.5 * a * jnp.sum(y**2)
        return 0.5 * y @ a @ y
