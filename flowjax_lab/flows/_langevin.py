"""Langevin dynamics (the particle form of a Fokker-Planck equation), through ``simulate_sde``."""

import jax.numpy as jnp

from .. import _checks
from .._simulate_sde import simulate_sde
from .._trajectory import Trajectory
from .._types import Key, ParticlesLike, ScalarLike, TimesLike, WeightsLike
from ..fields._interaction import Interaction


def langevin(x0: ParticlesLike, key: Key, *, potential=None, kernel=None,
             temperature: ScalarLike = 1.0, t0: ScalarLike = 0.0, t1: ScalarLike = 1.0,
             steps: int, saveat: int | TimesLike | None = None,
             weights: WeightsLike | None = None, chunk_size=None,
             solver="euler") -> Trajectory:
    """Simulate ``dX_i = v_i(X) dt + sqrt(2 temperature) dW_i`` with `v` the
    [`fields.Interaction`][] velocity of `potential` and `kernel`.

    Its law follows the McKean-Vlasov / Fokker-Planck equation
    ``d rho/dt = div(rho grad(V + W * rho)) + temperature * Laplacian(rho)``, the Wasserstein
    gradient flow of ``F(rho) + temperature * int rho log rho``. With no potential and no kernel
    this is the heat flow (``theory.heat_covariance`` with diffusivity = temperature); with
    ``flows.QuadraticPotential(A)`` it is an Ornstein-Uhlenbeck process whose equilibrium is
    N(center, temperature A^{-1}).

    **Arguments:**
    - `x0`: initial particles `(n, d)`; `key`: the Brownian motion's key.
    - `potential`, `kernel`, `weights`, `chunk_size`: as in [`fields.Interaction`][].
    - `temperature`: >= 0.
    - `steps`, `saveat`, `solver`: as in [`simulate_sde`][].

    **Returns:** a [`Trajectory`][].
    """
    x0 = _checks.particles(x0, "x0")
    temperature = _checks.positive(temperature, "temperature", allow_zero=True)
    drift = Interaction(kernel, potential, weights=weights, chunk_size=chunk_size)
    drift.check(x0)
    noise = jnp.sqrt(2 * jnp.asarray(temperature, x0.dtype))
    return simulate_sde(drift, noise, x0, key, t0=t0, t1=t1, steps=steps, saveat=saveat,
                        solver=solver)
