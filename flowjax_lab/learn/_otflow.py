"""OT-Flow (Onken, Wu Fung, Li, Ruthotto, AAAI 2021): a CNF whose velocity is ``-grad Phi``.

Data ``x`` at t = 0 flow to the standard Gaussian at t = 1 along ``dx/dt = -grad_x Phi(x, t)``.
Three quantities ride along as extra state channels of one ``(n, d + 3)`` cloud:

    l' = -tr(grad_x^2 Phi)                 (log-determinant: log p_0(x) = log N(z) + l(1))
    L' = 1/2 |grad_x Phi|^2                (transport cost)
    R' = |-d Phi/dt + 1/2 |grad_x Phi|^2|  (residual of the Hamilton-Jacobi-Bellman equation)

and the loss is ``J = a_L E[L] + a_C E[-log N(z) - l] + a_R E[R]``. The trace is the exact
structured one of [`OTFlowPotential.gradient_and_laplacian`][]. Sampling integrates ``-grad Phi``
backward from Gaussian draws.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._simulate import simulate
from .._trajectory import Trajectory
from .._types import Array, Key, Particles, ParticlesLike, Weights
from ..fields._neural import OTFlowPotential
from ..measures import isotropic_log_prob
from ._flow_matching import Reversed


class _Augmented(eqx.Module):
    """The OT-Flow dynamics on the augmented cloud ``[x, l, L, R]`` of shape `(n, d + 3)`."""

    potential: OTFlowPotential

    def __call__(self, t, y, args=None):
        d = self.potential.dim
        grad, dt, lap = self.potential.gradient_and_laplacian(t, y[:, :d])
        kinetic = 0.5 * jnp.sum(grad**2, axis=1)
        hjb = jnp.abs(-dt + kinetic)
        return jnp.concatenate([-grad, -lap[:, None], kinetic[:, None], hjb[:, None]], axis=1)


class OTFlow(eqx.Module):
    """OT-Flow: data at t = 0, N(0, I_d) at t = 1, velocity ``-grad_x Phi``.

    **Arguments:**
    - `dim`: dimension d; `width`, `layers`, `rank`: the [`OTFlowPotential`][] network.
    - `steps`: fixed RK4 steps of the training solve (OT-Flow's nt).
    - `key`: PRNG key; `dtype`: parameter dtype.
    """

    potential: OTFlowPotential
    dim: int = eqx.field(static=True)
    steps: int = eqx.field(static=True)

    def __init__(self, dim: int, *, width: int = 32, layers: int = 2, rank: int = 10,
                 steps: int = 4, key: Key, dtype=None):
        self.dim = _checks.positive_int(dim, "dim")
        self.steps = _checks.positive_int(steps, "steps")
        self.potential = OTFlowPotential(dim, width=width, layers=layers, rank=rank, key=key,
                                   dtype=dtype)

    @property
    def dtype(self):
        return self.potential.w.dtype

    def integrate(self, x, *, steps: int | None = None, saveat=None) -> Trajectory:
        """The augmented flow from data ``x (n, d)``: ``xs (T, n, d + 3)`` = ``[x, l, L, R]``."""
        x = _checks.particles(x, "x", dim=self.dim).astype(self.dtype)
        y0 = jnp.concatenate([x, jnp.zeros((x.shape[0], 3), x.dtype)], axis=1)
        return simulate(_Augmented(self.potential), y0, solver="rk4",
                        steps=self.steps if steps is None else steps, saveat=saveat)

    def terms(self, x, *, steps: int | None = None) -> dict:
        """Per-sample means: ``nll`` (nats), ``transport`` (E L) and ``hjb`` (E R) on ``x``."""
        y1 = self.integrate(x, steps=steps).x1
        d = self.dim
        nll = -(isotropic_log_prob(y1[:, :d]) + y1[:, d])
        return {"nll": jnp.mean(nll), "transport": jnp.mean(y1[:, d + 1]),
                "hjb": jnp.mean(y1[:, d + 2])}

    def log_prob(self, x: ParticlesLike, *, steps: int | None = None) -> Weights:
        """Model log-density at ``x (n, d)``, shape `(n,)`."""
        y1 = self.integrate(x, steps=steps).x1
        return isotropic_log_prob(y1[:, : self.dim]) + y1[:, self.dim]

    def sample(self, key: Key, n: int, **options) -> tuple[Particles, Trajectory]:
        """`n` model samples (integrating ``-grad Phi`` backward from Gaussian draws), with the
        trajectory from t = 1 back to t = 0 (its `stats` count field evaluations).

        `options` reach ``simulate`` (default: ``solver="rk4", steps=self.steps``).
        """
        z = jax.random.normal(_checks.key(key), (_checks.positive_int(n, "n"), self.dim),
                              self.dtype)
        options = {"solver": "rk4", "steps": self.steps, **options}
        traj = simulate(Reversed(self.potential), z, **options)
        return traj.x1, traj


class OTFlowLoss(eqx.Module):
    """``loss(model, key)`` for [`fit`][]: OT-Flow's ``J`` on a fresh batch from a sampler.

    **Arguments:**
    - `sampler`: ``key -> (batch, d)`` data batch (e.g. a closure over ``fl.datasets.sample``).
    - `transport`, `likelihood`, `hjb`: the weights ``a_L, a_C, a_R`` (non-negative; OT-Flow's
      two-moons run uses 1, 10, 5).
    """

    sampler: object = eqx.field(static=True)
    # The weights are (NumPy) arrays, not static fields: losses that differ only in their
    # weights share one compiled training step in ``fit``.
    transport: np.ndarray
    likelihood: np.ndarray
    hjb: np.ndarray

    def __init__(self, sampler, *, transport: float = 1.0, likelihood: float = 10.0,
                 hjb: float = 5.0):
        if not callable(sampler):
            got = (f"an array of shape {tuple(sampler.shape)}" if hasattr(sampler, "shape")
                   else type(sampler).__name__)
            raise TypeError(f"`sampler` must be callable as sampler(key), got {got}.")
        self.sampler = sampler
        self.transport = np.asarray(_checks.positive(transport, "transport", allow_zero=True),
                                    float)
        self.likelihood = np.asarray(_checks.positive(likelihood, "likelihood", allow_zero=True),
                                     float)
        self.hjb = np.asarray(_checks.positive(hjb, "hjb", allow_zero=True), float)

    def __call__(self, model: OTFlow, key) -> Array:
        terms = model.terms(self.sampler(key))
        weight = lambda w: jnp.asarray(w, terms["nll"].dtype)
        return (weight(self.transport) * terms["transport"] + weight(self.likelihood) * terms["nll"]
                + weight(self.hjb) * terms["hjb"])

