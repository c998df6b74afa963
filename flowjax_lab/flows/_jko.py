"""The JKO (minimizing-movement) scheme on particle clouds, solved with optimistix L-BFGS."""

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx

from .. import _checks
from .._status import Status, finite_status, first_failure, from_diffrax, raise_if_failed
from .._trajectory import Trajectory
from .._types import Particles, ParticlesLike, ScalarLike, StatusCode, WeightsLike


def _check_energy(energy, x) -> None:
    if not callable(energy):
        raise TypeError(f"`energy` must be callable as energy(y) -> scalar, got {energy!r}.")
    try:
        out = jax.eval_shape(energy, x)
    except Exception as err:
        raise TypeError(f"`energy` must be callable on a cloud {x.shape}: {err}") from err
    if getattr(out, "shape", None) != ():
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"`energy` must return a scalar, got {got}.")


def _prepare(energy, x, tau, weights, name):
    x = _checks.particles(x, name)
    tau = _checks.positive(tau, "tau")
    _check_energy(energy, x)
    n = x.shape[0]
    w = (jnp.full((n,), 1 / n, x.dtype) if weights is None
         else _checks.weights(weights, n, dtype=x.dtype))
    return x, jnp.asarray(tau, x.dtype), w


def _step(energy, x, tau, w, rtol, atol, max_steps):
    def objective(y, _):
        return jnp.sum(w * jnp.sum((y - x) ** 2, axis=1)) / (2 * tau) + energy(y)

    sol = optx.minimise(objective, optx.LBFGS(rtol=rtol, atol=atol), x, max_steps=max_steps,
                        throw=False)
    return sol.value, finite_status(from_diffrax(sol.result), sol.value)


@eqx.filter_jit
def _jko_step(energy, x, tau, w, rtol, atol, max_steps):
    return _step(energy, x, tau, w, rtol, atol, max_steps)


@eqx.filter_jit
def _jko(energy, x0, tau, w, num_steps, rtol, atol, max_steps):
    def body(carry, _):
        x, status = carry
        y, step_status = _step(energy, x, tau, w, rtol, atol, max_steps)
        return (y, first_failure(status, step_status)), y

    (_, status), xs = jax.lax.scan(body, (x0, jnp.asarray(Status.SUCCESS, jnp.int32)), None,
                                   length=num_steps)
    xs = jnp.concatenate([x0[None], xs])
    ts = tau * jnp.arange(num_steps + 1, dtype=x0.dtype)
    stats = {"num_steps": jnp.asarray(num_steps)}
    return Trajectory(ts, xs, None, stats, status)


def jko_step(energy, x: ParticlesLike, tau: ScalarLike, *, weights: WeightsLike | None = None,
             rtol=1e-8, atol=1e-8, max_steps=512,
             throw=False) -> tuple[Particles, StatusCode]:
    """One minimizing movement ``argmin_y sum_i w_i |y_i - x_i|^2 / (2 tau) + energy(y)``.

    The transport cost pairs `y_i` with `x_i`, which equals ``W2^2(x, y)`` for small steps (the
    identity is then the optimal coupling), so this is the Lagrangian JKO step: an implicit
    Euler step of the particle flow ``v_i = -(1/w_i) d energy / d x_i``.

    **Arguments:**
    - `energy`: callable ``energy(y) -> scalar`` on a cloud `(n, d)`, e.g.
      ``fields.Interaction(...).energy``.
    - `x`: the current cloud `(n, d)`; `tau`: the time step, > 0.
    - `weights`: particle weights `(n,)` (uniform if `None`).
    - `rtol`, `atol`, `max_steps`: passed to ``optimistix.LBFGS`` / ``optimistix.minimise``.
    - `throw`: raise the status message if the solve fails (as in `simulate`).

    **Returns:** `(y, status)`: the new cloud `(n, d)` and a [`Status`][flowjax_lab.Status] code
    (``NOT_CONVERGED`` when L-BFGS ran out of `max_steps`).
    """
    x, tau, w = _prepare(energy, x, tau, weights, "x")
    max_steps = _checks.positive_int(max_steps, "max_steps")
    y, status = _jko_step(energy, x, tau, w, rtol, atol, max_steps)
    return (raise_if_failed(y, status, "jko_step") if throw else y), status


def jko(energy, x0: ParticlesLike, tau: ScalarLike, num_steps: int, *,
        weights: WeightsLike | None = None, rtol=1e-8, atol=1e-8, max_steps=512,
        throw=False) -> Trajectory:
    """`num_steps` JKO steps of size `tau` from `x0` `(n, d)`, in one jitted ``lax.scan``.

    Arguments as in `jko_step`.

    **Returns:** a [`Trajectory`][] with `ts = tau * k` `(K + 1,)`, `xs` `(K + 1, n, d)` and the
    status of the first step that failed (did not converge, or gave a NaN), else success.
    """
    x0, tau, w = _prepare(energy, x0, tau, weights, "x0")
    num_steps = _checks.positive_int(num_steps, "num_steps")
    max_steps = _checks.positive_int(max_steps, "max_steps")
    traj = _jko(energy, x0, tau, w, num_steps, rtol, atol, max_steps)
    return raise_if_failed(traj, traj.status, "jko") if throw else traj
