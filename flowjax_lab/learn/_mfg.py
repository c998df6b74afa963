"""Neural mean-field games: the Lagrangian solver of Ruthotto, Osher, Li, Nurbekyan and Wu Fung
(PNAS 2020).

A crowd with initial density rho_0 moves with velocity ``v = -grad Phi / a_1`` given by a value
network ``Phi(x, t)`` (a [`OTFlowPotential`][]), minimising

    J = a_1 L + a_2 F + a_3 G + a_4 HJB + a_5 HJB_1,

where, along the characteristics integrated with the cloud as one ``(n, d + 4)`` state
``[x, l, L, F, R]``:

    l' = -tr(grad^2 Phi) / a_1         log rho(x(t), t) = log rho_0(x_0) - l(t)
    L' = 1/2 |v|^2                     transport (kinetic) cost
    F' = Q(x)                          running cost (a preference / obstacle term)
    R' = |-d_t Phi - a_2 Q + a_1 L'|   residual of -d_t Phi + |grad Phi|^2 / (2 a_1) = a_2 Q

``G = E[log rho(z, 1) - log rho_1(z)]`` is the KL divergence of the terminal density to rho_1 and
``HJB_1 = E|Phi(z, 1) - a_3 (log rho(z, 1) - log rho_1(z) + 1)|`` the terminal condition.
Expectations are sample means over x_0 ~ rho_0.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._simulate import simulate
from .._trajectory import Trajectory
from .._types import Array, Key, Particles
from ..fields._neural import OTFlowPotential
from ..measures import isotropic_log_prob


class MeanFieldGame(eqx.Module):
    """A potential mean-field game on R^d with Gaussian-mixture rho_0 and Gaussian rho_1.

    **Arguments:**
    - `centres0`: `(K, d)` centres of the equal-weight mixture rho_0 = mean_k N(c_k, s0 I).
    - `variance0`, `variance1`: the isotropic variances s0, s1 (> 0).
    - `mean1`: `(d,)` mean of rho_1 = N(mean1, s1 I), the target of the terminal KL cost.
    - `obstacle_height`, `obstacle_variances`: the running cost
      ``Q(x) = height * N(x_{1:2}; 0, diag(variances))`` on the first two coordinates
      (height 0: no running cost).
    - `weights`: ``(a_1, ..., a_5)``, non-negative, ``a_1 > 0``.
    - `steps`: fixed RK4 steps along the characteristics; `batch`: samples per loss evaluation.
    """

    centres0: Array
    variance0: Array
    mean1: Array
    variance1: Array
    obstacle_height: Array
    obstacle_variances: Array
    weights: tuple = eqx.field(static=True)
    steps: int = eqx.field(static=True)
    batch: int = eqx.field(static=True)

    def __init__(self, centres0, variance0, mean1, variance1, *, obstacle_height=0.0,
                 obstacle_variances=(1.0, 0.5), weights=(1.0, 1.0, 5.0, 1.0, 1.0), steps=2,
                 batch=512):
        centres0 = _checks.particles(centres0, "centres0")
        dtype = centres0.dtype
        d = centres0.shape[1]
        mean1 = _checks.as_float_array(mean1, "mean1").astype(dtype)
        if mean1.shape != (d,):
            raise ValueError(f"`mean1` must have shape ({d},), got {tuple(mean1.shape)}.")
        _checks.positive(variance0, "variance0")
        _checks.positive(variance1, "variance1")
        _checks.positive(obstacle_height, "obstacle_height", allow_zero=True)
        if d < 2 and obstacle_height != 0:
            raise ValueError("an obstacle needs dimension d >= 2.")
        weights = tuple(float(w) for w in weights)
        if len(weights) != 5:
            raise ValueError(f"`weights` must hold 5 numbers (a_1..a_5), got {len(weights)}.")
        for i, w in enumerate(weights):
            _checks.positive(w, f"weights[{i}]", allow_zero=i > 0)
        self.centres0, self.mean1 = centres0, mean1
        self.variance0 = jnp.asarray(variance0, dtype)
        self.variance1 = jnp.asarray(variance1, dtype)
        self.obstacle_height = jnp.asarray(obstacle_height, dtype)
        self.obstacle_variances = _checks.as_float_array(obstacle_variances,
                                                         "obstacle_variances").astype(dtype)
        self.weights = weights
        self.steps = _checks.positive_int(steps, "steps")
        self.batch = _checks.positive_int(batch, "batch")

    @property
    def dim(self) -> int:
        return self.centres0.shape[1]

    def sample_initial(self, key: Key, n: int) -> Particles:
        """`n` draws from rho_0, shape `(n, d)`."""
        k_comp, k_noise = jax.random.split(_checks.key(key))
        comp = jax.random.randint(k_comp, (n,), 0, self.centres0.shape[0])
        noise = jax.random.normal(k_noise, (n, self.dim), self.centres0.dtype)
        return self.centres0[comp] + jnp.sqrt(self.variance0) * noise

    def log_initial(self, x) -> Array:
        """log rho_0 at each row of `x` `(n, d)`."""
        per = jax.vmap(lambda c: isotropic_log_prob(x, c, self.variance0))(self.centres0)
        return jax.scipy.special.logsumexp(per, axis=0) - jnp.log(self.centres0.shape[0])

    def log_terminal(self, x) -> Array:
        """log rho_1 at each row of `x` `(n, d)`."""
        return isotropic_log_prob(x, self.mean1, self.variance1)

    def running_cost(self, x) -> Array:
        """The obstacle / preference ``Q(x)``, shape `(n,)`."""
        var = self.obstacle_variances
        sq = jnp.sum(x[:, :2] ** 2 / var[None], axis=1)
        return self.obstacle_height * jnp.exp(-0.5 * sq) / (2 * jnp.pi * jnp.sqrt(jnp.prod(var)))

    def characteristics(self, potential: OTFlowPotential, x0, *, steps: int | None = None,
                        saveat=None) -> Trajectory:
        """The augmented cloud ``[x, l, L, F, R]`` along the characteristics, `(T, n, d + 4)`."""
        x0 = _checks.particles(x0, "x0", dim=self.dim)
        if potential.dim != self.dim:
            raise ValueError(f"`potential` has dimension {potential.dim}, the game {self.dim}.")
        y0 = jnp.concatenate([x0, jnp.zeros((x0.shape[0], 4), x0.dtype)], axis=1)
        return simulate(_Characteristics(potential, self), y0, solver="rk4",
                        steps=self.steps if steps is None else steps, saveat=saveat)

    def terms(self, potential: OTFlowPotential, x0, *, steps: int | None = None) -> dict:
        """Sample means ``L, F, G, HJB, HJB_1`` (see the module docstring) from ``x0 ~ rho_0``."""
        d, a = self.dim, self.weights
        y1 = self.characteristics(potential, x0, steps=steps).x1
        z = y1[:, :d]
        log_ratio = self.log_initial(x0) - y1[:, d] - self.log_terminal(z)
        phi1 = potential.value(jnp.ones((), z.dtype), z)
        return {"L": jnp.mean(y1[:, d + 1]), "F": jnp.mean(y1[:, d + 2]),
                "G": jnp.mean(log_ratio), "HJB": jnp.mean(y1[:, d + 3]),
                "HJB_1": jnp.mean(jnp.abs(phi1 - a[2] * (log_ratio + 1)))}

    def objective(self, terms: dict) -> Array:
        """``J = a_1 L + a_2 F + a_3 G + a_4 HJB + a_5 HJB_1``."""
        names = ("L", "F", "G", "HJB", "HJB_1")
        return sum(w * terms[k] for w, k in zip(self.weights, names, strict=True))

    def __call__(self, potential: OTFlowPotential, key: Key) -> Array:
        """``loss(potential, key)`` for [`fit`][]: J on `batch` fresh samples of rho_0."""
        return self.objective(self.terms(potential, self.sample_initial(key, self.batch)))


class _Characteristics(eqx.Module):
    potential: OTFlowPotential
    game: MeanFieldGame

    def __call__(self, t, y, args=None):
        d, a = self.game.dim, self.game.weights
        x = y[:, :d]
        grad, dt, lap = self.potential.gradient_and_laplacian(t, x)
        v = -grad / a[0]
        kinetic = 0.5 * jnp.sum(v**2, axis=1)
        q = self.game.running_cost(x)
        hjb = jnp.abs(-dt - a[1] * q + a[0] * kinetic)
        return jnp.concatenate(
            [v, -lap[:, None] / a[0], kinetic[:, None], q[:, None], hjb[:, None]], axis=1
        )


def transport_game(dim: int = 2, *, dtype=None, **options) -> MeanFieldGame:
    """Dynamic OT from a mixture of 8 Gaussians (centres ``4 (cos, sin)`` in the first two
    coordinates, variance 0.3) to N(0, 0.3 I_d): PNAS 2020, weights (2, 1, 5, 3, 3), 2 steps."""
    dim = _checks.positive_int(dim, "dim", minimum=2)
    dtype = _checks.float_dtype(dtype)
    angle = 2 * jnp.pi * jnp.arange(8, dtype=dtype) / 8
    centres = jnp.zeros((8, dim), dtype).at[:, 0].set(4 * jnp.cos(angle))
    centres = centres.at[:, 1].set(4 * jnp.sin(angle))
    options = {"weights": (2.0, 1.0, 5.0, 3.0, 3.0), "steps": 2, **options}
    return MeanFieldGame(centres, 0.3, jnp.zeros(dim, dtype), 0.3, **options)


def crowd_game(dim: int = 2, *, dtype=None, **options) -> MeanFieldGame:
    """Crowd motion from N((0, 3), 0.3 I) to N((0, -3), 0.3 I) around the obstacle
    ``Q = 50 N(x_{1:2}; 0, diag(1, 0.5))``: PNAS 2020, weights (1, 1, 5, 20, 1), 4 steps."""
    dim = _checks.positive_int(dim, "dim", minimum=2)
    dtype = _checks.float_dtype(dtype)
    start = jnp.zeros((1, dim), dtype).at[0, 1].set(3.0)
    end = jnp.zeros(dim, dtype).at[1].set(-3.0)
    options = {"weights": (1.0, 1.0, 5.0, 20.0, 1.0), "steps": 4, "obstacle_height": 50.0,
               **options}
    return MeanFieldGame(start, 0.3, end, 0.3, **options)
