"""Continuous normalizing flows (FFJORD, Grathwohl et al. 2019) trained by maximum likelihood.

A learned field moves the standard Gaussian at t = 0 to the model at t = 1. Sampling integrates
forward; the density integrates backward with the instantaneous change of variables
``log p_1(x) = log N(x(0)) - int_0^1 div v(t, x(t)) dt``, the divergence exact (d JVPs) or
estimated by Hutchinson's ``eps^T (dv/dx) eps`` with one Rademacher probe per particle and solve.
"""


import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._simulate import LOG_DENSITIES, simulate
from .._types import Array, Key, Particles, ParticlesLike, Weights
from ..fields._neural import MLPField
from ..measures import isotropic_log_prob
from ._flow_matching import Reversed


class CNF(eqx.Module):
    """A continuous normalizing flow from N(0, I_d) at t = 0 to the model at t = 1.

    **Arguments:**
    - `dim`: dimension d; `width`, `depth`: the field's MLP (see [`MLPField`][]).
    - `solver`, `steps`: how ``simulate`` integrates (fixed RK4 steps by default).
    - `key`: PRNG key; `dtype`: parameter dtype.
    """

    field: MLPField
    dim: int = eqx.field(static=True)
    solver: str = eqx.field(static=True)
    steps: int | None = eqx.field(static=True)

    def __init__(self, dim: int, *, width: int = 64, depth: int = 2, solver: str = "rk4",
                 steps: int | None = 8, key: Key, dtype=None):
        self.dim = _checks.positive_int(dim, "dim")
        self.solver = solver
        self.steps = None if steps is None else _checks.positive_int(steps, "steps")
        self.field = MLPField(dim, width=width, depth=depth, key=key, dtype=dtype)

    @property
    def dtype(self):
        return self.field.mlp.layers[0].weight.dtype

    def _options(self, options):
        return {"solver": self.solver, "steps": self.steps, **options}

    def sample(self, key: Key, n: int, **options) -> Particles:
        """`n` samples of the model (integrating forward), shape `(n, d)`."""
        z = jax.random.normal(_checks.key(key), (_checks.positive_int(n, "n"), self.dim),
                              self.dtype)
        return simulate(self.field, z, **self._options(options)).x1

    def log_prob(self, x: ParticlesLike, *, trace: str = "exact", key: Key | None = None,
                 **options) -> Weights:
        """Model log-density at ``x (n, d)`` (integrating backward), shape `(n,)`.

        `trace`: "exact" or "hutchinson" (needs `key`); `options` reach ``simulate``.
        """
        x = _checks.particles(x, "x", dim=self.dim).astype(self.dtype)
        trace = _checks.choice(trace, LOG_DENSITIES, "trace")
        traj = simulate(Reversed(self.field), x, log_density=trace, key=key,
                        **self._options(options))
        return isotropic_log_prob(traj.x1) - traj.logp[-1]

    def inverse(self, x, **options) -> Particles:
        """The base points that the flow maps to ``x (n, d)``, shape `(n, d)`."""
        x = _checks.particles(x, "x", dim=self.dim).astype(self.dtype)
        return simulate(Reversed(self.field), x, **self._options(options)).x1

    def forward(self, z, **options) -> Particles:
        """The flow map at t = 1 applied to base points ``z (n, d)``."""
        z = _checks.particles(z, "z", dim=self.dim).astype(self.dtype)
        return simulate(self.field, z, **self._options(options)).x1


class LikelihoodLoss(eqx.Module):
    """``loss(model, key)`` for [`fit`][]: mean negative log-likelihood of a random mini-batch.

    **Arguments:** `data` `(N, d)`; `batch` (capped at N); `trace` "exact" or "hutchinson".
    """

    data: Array
    batch: int = eqx.field(static=True)
    trace: str = eqx.field(static=True)

    def __init__(self, data, *, batch: int = 256, trace: str = "exact"):
        self.data = _checks.particles(data, "data")
        self.batch = min(_checks.positive_int(batch, "batch"), self.data.shape[0])
        self.trace = _checks.choice(trace, LOG_DENSITIES, "trace")

    def __call__(self, model: CNF, key) -> Array:
        k_batch, k_probe = jax.random.split(key)
        idx = jax.random.choice(k_batch, self.data.shape[0], (self.batch,), replace=False)
        return -jnp.mean(model.log_prob(self.data[idx], trace=self.trace, key=k_probe))
