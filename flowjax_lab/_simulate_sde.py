"""``simulate_sde``: Ito SDEs with diagonal noise on particle clouds, on diffrax."""

from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

from . import _checks
from ._simulate import check_field, save_times
from ._solvers import SDE_SOLVERS
from ._status import finite_status, from_diffrax, raise_if_failed
from ._trajectory import Trajectory
from ._types import Key, ParticlesLike, ScalarLike, TimesLike


def _diffusion_field(diffusion):
    """Turn a scalar, an array or a callable into ``g(t, x, args) -> diagonal operator``."""
    if callable(diffusion):
        return lambda t, x, a: lx.DiagonalLinearOperator(
            jnp.broadcast_to(jnp.asarray(diffusion(t, x, a), x.dtype), x.shape)
        )
    return lambda t, x, a: lx.DiagonalLinearOperator(
        jnp.broadcast_to(jnp.asarray(diffusion, x.dtype), x.shape)
    )


@eqx.filter_jit
def _solve(drift, diffusion, x0, key, t0, t1, ts, steps, solver, args):
    dt = (t1 - t0) / steps
    # The Brownian increments in the cloud's dtype (a bare shape would give the default float,
    # float64 under x64, and upcast a float32 cloud).
    brownian = dfx.VirtualBrownianTree(t0, t1, tol=dt / 8, key=key,
                                       shape=jax.ShapeDtypeStruct(x0.shape, x0.dtype))
    terms = dfx.MultiTerm(dfx.ODETerm(drift), dfx.ControlTerm(_diffusion_field(diffusion),
                                                              brownian))
    sol = dfx.diffeqsolve(terms, solver, t0, t1, dt, x0, args=args, saveat=dfx.SaveAt(ts=ts),
                          max_steps=steps, throw=False)
    stats = {"num_steps": sol.stats["num_steps"], "num_accepted_steps":
             sol.stats["num_accepted_steps"], "num_rejected_steps":
             sol.stats["num_rejected_steps"], "num_field_evals": sol.stats["num_steps"]}
    return Trajectory(sol.ts, sol.ys, None, stats, finite_status(from_diffrax(sol.result), sol.ys))


def _diffusion_shape(diffusion, t0, x0, args) -> tuple:
    try:
        out = jax.eval_shape(diffusion, t0, x0, args)
    except TypeError as err:
        raise TypeError(f"`diffusion` must be a scalar, an array or callable as "
                        f"diffusion(t, x, args): {err}") from err
    return tuple(getattr(out, "shape", ()))


def simulate_sde(drift, diffusion: Callable | ScalarLike | ParticlesLike, x0: ParticlesLike,
                 key: Key, *, t0: ScalarLike = 0.0, t1: ScalarLike = 1.0, steps: int,
                 saveat: int | TimesLike | None = None, solver="euler", args=None,
                 throw=False) -> Trajectory:
    """Simulate ``dx = drift(t, x, args) dt + diffusion(t, x, args) dW`` (Ito, diagonal noise).

    **Arguments:**
    - `drift`: callable ``(t, x, args) -> (n, d)``.
    - `diffusion`: a scalar, an array shaped like `x0`, or a callable returning either: the
      diagonal noise amplitude of each coordinate.
    - `x0`: initial particles `(n, d)`; `key`: the Brownian motion's key.
    - `steps`: number of fixed steps; `solver`: "euler" (Euler-Maruyama, strong order 1/2) or
      "milstein" (strong order 1 when each noise amplitude depends on its own coordinate only,
      the commutative case).
    - `throw`: raise the status message if the run fails, as in `simulate`.

    **Returns:** a [`Trajectory`][] (no `logp`).
    """
    x0 = _checks.particles(x0, "x0")
    dtype = x0.dtype
    key = _checks.key(key)
    t0, t1 = _checks.time_interval(t0, t1)
    steps = _checks.positive_int(steps, "steps")
    solver = SDE_SOLVERS[_checks.choice(solver, SDE_SOLVERS, "solver")]()
    t0 = jnp.asarray(t0, dtype)
    t1 = jnp.asarray(t1, dtype)
    ts = save_times(saveat, t0, t1, dtype)
    check_field(drift, t0, x0, args, "drift")
    if callable(diffusion):
        shape = _diffusion_shape(diffusion, t0, x0, args)
    else:
        diffusion = _checks.check_finite(_checks.as_float_array(diffusion, "diffusion"),
                                         "diffusion")
        shape = diffusion.shape
    if shape not in ((), x0.shape):
        raise ValueError(
            f"`diffusion` must be a scalar or shaped like x0 {x0.shape}, got {shape}."
        )
    traj = _solve(drift, diffusion, x0, key, t0, t1, ts, steps, solver, args)
    return raise_if_failed(traj, traj.status, "simulate_sde") if throw else traj
