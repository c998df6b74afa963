"""``simulate``: advect a particle cloud by a vector field with diffrax."""

from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp

from . import _checks
from ._solvers import FIXED_STEP_ONLY, evaluations_per_step, fixed_step_states, ode_solver
from ._status import Status, finite_status, from_diffrax, raise_if_failed
from ._trajectory import Trajectory
from ._types import Key, ParticlesLike, ScalarLike, TimesLike, WeightsLike

ADJOINTS: dict[str, Callable[[], dfx.AbstractAdjoint]] = {
    "recursive": dfx.RecursiveCheckpointAdjoint,
    "backsolve": dfx.BacksolveAdjoint,
    "direct": dfx.DirectAdjoint,
}
LOG_DENSITIES = ("exact", "hutchinson")


def save_times(saveat, t0, t1, dtype):
    """Saved times, shape `(T,)`: `None` -> (t0, t1); an int k -> k even times; else the array."""
    if saveat is None:
        return jnp.asarray([t0, t1], dtype)
    if isinstance(saveat, int) and not isinstance(saveat, bool):
        return jnp.linspace(t0, t1, _checks.positive_int(saveat, "saveat", minimum=2), dtype=dtype)
    try:
        ts = jnp.asarray(saveat, dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"`saveat` must be None, an int or a 1-D array of times, got {saveat!r}."
        ) from err
    if ts.ndim != 1 or ts.shape[0] == 0:
        raise ValueError(f"`saveat` must be None, an int or a 1-D array of times, got shape "
                         f"{tuple(ts.shape)}.")

    def bad(args):
        ts, t0, t1 = args
        return (jnp.any(jnp.diff(ts) < 0) | (ts[0] < t0 - 1e-12) | (ts[-1] > t1 + 1e-12)
                | ~jnp.all(jnp.isfinite(ts)))

    return _checks.fail_if((ts, t0, t1), bad,
                           "`saveat` times must be increasing and within [t0, t1].")[0]


def _adjoint(adjoint) -> dfx.AbstractAdjoint:
    if isinstance(adjoint, dfx.AbstractAdjoint):
        return adjoint
    return ADJOINTS[_checks.choice(adjoint, ADJOINTS, "adjoint")]()


def divergence_exact(field, t, x, args):
    """Velocity and per-particle divergence ``sum_k d f_ik / d x_ik``: shapes `(n, d)`, `(n,)`.

    Uses the field's own ``divergence`` method if it has one; otherwise ``d`` JVPs along the
    coordinate directions shared by all particles, which is exact for fields where a particle's
    velocity depends on that particle alone (neural and pointwise fields). For interacting fields
    it also counts the cross-particle terms; such fields should define ``divergence``.
    """
    own = getattr(field, "divergence", None)
    if own is not None:
        return field(t, x, args), own(t, x, args)
    v, jvp = jax.linearize(lambda y: field(t, y, args), x)
    basis = jnp.eye(x.shape[1], dtype=x.dtype)[:, None, :] * jnp.ones_like(x)[None]
    columns = jax.vmap(jvp)(basis)  # (d, n, d)
    return v, jnp.einsum("knk->n", columns)


def divergence_hutchinson(field, t, x, args, noise):
    """Velocity and the Hutchinson estimate ``noise_i . (J noise)_i`` of each divergence."""
    v, jvp = jax.jvp(lambda y: field(t, y, args), (x,), (noise,))
    return v, jnp.sum(noise * jvp, axis=1)


def check_field(field, t0, x0, args, name: str = "field") -> None:
    """``field(t0, x0, args)`` must trace and return an array shaped like `x0`."""
    try:
        out = jax.eval_shape(field, t0, x0, args)
    except TypeError as err:
        raise TypeError(f"`{name}` must be callable as {name}(t, x, args): {err}") from err
    if getattr(out, "shape", None) != x0.shape:
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"`{name}` must return an array shaped like x0 {x0.shape}, got {got}.")


class _Velocity(eqx.Module):
    """The ODE right-hand side: the field, plus ``-div`` when log-densities are carried.

    A Module rather than a closure, so that every adjoint (backsolve included) sees the field's
    parameters as inputs.
    """

    field: object
    noise: object
    log_density: str | None = eqx.field(static=True)

    def __call__(self, t, y, args):
        if self.log_density is None:
            return self.field(t, y, args)
        x, _ = y
        if self.log_density == "exact":
            v, div = divergence_exact(self.field, t, x, args)
        else:
            v, div = divergence_hutchinson(self.field, t, x, args, self.noise)
        return v, -div


def _save_every(steps, saveat):
    """Steps between saved times when fixed `steps` put every time of `saveat` on the step grid
    (`None`: t0 and t1; an int k: k even times); else `None`."""
    if steps is None:
        return None
    if saveat is None:
        return steps
    if isinstance(saveat, int) and not isinstance(saveat, bool) and steps % (saveat - 1) == 0:
        return steps // (saveat - 1)
    return None


@eqx.filter_jit
def _solve(field, x0, logp0, noise, t0, t1, ts, solver, steps, rtol, atol, args, adjoint,
           max_steps, log_density, save_every):
    vf = _Velocity(field, noise, log_density)
    y0 = x0 if log_density is None else (x0, logp0)
    per_step, start = evaluations_per_step(solver)
    if (save_every is not None and isinstance(adjoint, dfx.RecursiveCheckpointAdjoint)
            and isinstance(solver, dfx.Euler | dfx.AbstractERK)):
        # Fixed steps of an explicit solver saved on the step grid: diffrax's steps in a plain
        # scan (same numbers, a fraction of diffeqsolve's compile time).
        ys = fixed_step_states(vf, y0, steps, solver, t0=t0, t1=t1, args=args,
                               save_every=save_every)
        xs, logp = (ys, None) if log_density is None else ys
        count = jnp.asarray(steps, jnp.int32)
        stats = {"num_steps": count, "num_accepted_steps": count,
                 "num_rejected_steps": jnp.zeros_like(count),
                 "num_field_evals": start + per_step * count}
        status = jnp.asarray(Status.SUCCESS, jnp.int32)
        return Trajectory(ts, xs, logp, stats, finite_status(status, xs, logp))
    if steps is None:
        controller, dt0 = dfx.PIDController(rtol=rtol, atol=atol), None
    else:
        controller, dt0 = dfx.ConstantStepSize(), (t1 - t0) / steps
    sol = dfx.diffeqsolve(
        dfx.ODETerm(vf), solver, t0, t1, dt0, y0, args=args, saveat=dfx.SaveAt(ts=ts),
        stepsize_controller=controller, adjoint=adjoint, max_steps=max_steps, throw=False,
    )
    xs, logp = (sol.ys, None) if log_density is None else sol.ys
    num_steps = sol.stats["num_steps"]
    stats = {
        "num_steps": num_steps,
        "num_accepted_steps": sol.stats["num_accepted_steps"],
        "num_rejected_steps": sol.stats["num_rejected_steps"],
        "num_field_evals": start + per_step * num_steps,
    }
    return Trajectory(sol.ts, xs, logp, stats, finite_status(from_diffrax(sol.result), xs, logp))


def simulate(
    field,
    x0: ParticlesLike,
    *,
    t0: ScalarLike = 0.0,
    t1: ScalarLike = 1.0,
    saveat: int | TimesLike | None = None,
    solver="tsit5",
    steps=None,
    rtol=1e-5,
    atol=1e-5,
    args=None,
    adjoint="recursive",
    max_steps=4096,
    log_density=None,
    logp0: WeightsLike | None = None,
    key: Key | None = None,
    throw=False,
) -> Trajectory:
    """Advect the cloud ``x0`` (shape `(n, d)`) by ``dx/dt = field(t, x, args)`` from t0 to t1.

    **Arguments:**
    - `field`: callable ``f(t, x, args) -> dx`` on the whole cloud, `(n, d) -> (n, d)`.
    - `x0`: initial particles, shape `(n, d)`; its dtype is kept.
    - `saveat`: `None` (save t0 and t1), an int (that many evenly spaced times) or times `(T,)`.
    - `solver`: a name (euler, heun, midpoint, ralston, rk4, bosh3, tsit5, dopri5, dopri8) or a
      diffrax solver.
    - `steps`: number of fixed steps; `None` uses adaptive steps with `rtol`/`atol`. Fixed steps
      of an explicit solver whose saved times lie on the step grid (`saveat` `None`, or k times
      with ``k - 1`` dividing `steps`), with the default adjoint, run as a plain scan of diffrax's
      steps (`_solvers.fixed_step_states`: the same numbers, compiled ~3x faster).
    - `adjoint`: "recursive" (checkpointed backprop, the default: discretise-then-optimise),
      "backsolve" (continuous adjoint: optimise-then-discretise), "direct", or a diffrax adjoint.
    - `max_steps`: step budget (with fixed steps, `steps` is used); exceeding it sets the status.
    - `log_density`: `None`, "exact" or "hutchinson": also integrate
      ``d log p / dt = -div field`` along each particle. "hutchinson" needs `key`.
    - `logp0`: initial log-densities `(n,)` (zeros if `None`, so `logp` is then the change).
    - `throw`: raise the status message if the run fails (``RuntimeError``; an ``error_if``
      under ``jit``) instead of only reporting it in `status`.

    **Returns:** a [`Trajectory`][] with `ts (T,)`, `xs (T, n, d)`, `logp (T, n)` or `None`,
    `stats` and `status`.
    """
    x0 = _checks.particles(x0, "x0")
    dtype = x0.dtype
    t0, t1 = _checks.time_interval(t0, t1)
    solver_name = solver if isinstance(solver, str) else None
    solver = ode_solver(solver)
    if steps is not None:
        steps = _checks.positive_int(steps, "steps")
    elif solver_name in FIXED_STEP_ONLY:
        raise ValueError(f"`solver` {solver_name!r} has no error estimate: pass `steps`.")
    else:
        rtol = _checks.positive(rtol, "rtol")
        atol = _checks.positive(atol, "atol")
    max_steps = steps if steps is not None else _checks.positive_int(max_steps, "max_steps")
    adjoint = _adjoint(adjoint)
    t0 = jnp.asarray(t0, dtype)
    t1 = jnp.asarray(t1, dtype)
    ts = save_times(saveat, t0, t1, dtype)
    check_field(field, t0, x0, args)
    noise = None
    if log_density is not None:
        _checks.choice(log_density, LOG_DENSITIES, "log_density")
        n = x0.shape[0]
        logp0 = jnp.zeros(n, dtype) if logp0 is None else _checks.as_float_array(logp0, "logp0")
        if logp0.shape != (n,):
            raise ValueError(f"`logp0` must have shape ({n},), got {tuple(logp0.shape)}.")
        logp0 = logp0.astype(dtype)
        if log_density == "hutchinson":
            key = _checks.key(key)
            noise = jax.random.rademacher(key, x0.shape, dtype)
    traj = _solve(field, x0, logp0, noise, t0, t1, ts, solver, steps, rtol, atol, args, adjoint,
                  max_steps, log_density, _save_every(steps, saveat))
    return raise_if_failed(traj, traj.status, "simulate") if throw else traj
