"""Solvers by name: diffrax's explicit Runge-Kutta family, plus the classical RK4 tableau; for
SDEs, Euler-Maruyama and a diagonal-noise Ito Milstein."""

from typing import ClassVar

import diffrax as dfx
import jax
import jax.numpy as jnp
import numpy as np

from . import _checks

# Classical fourth-order Runge-Kutta, written as a diffrax Butcher tableau so that diffrax does
# the stepping; the embedded error estimate (against the midpoint rule) is only used if someone
# asks for adaptive steps.
_rk4_tableau = dfx.ButcherTableau(
    a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
    b_error=np.array([1 / 6, -2 / 3, 1 / 3, 1 / 6]),
    c=np.array([0.5, 0.5, 1.0]),
)


class RK4(dfx.AbstractERK):
    """The classical fourth-order Runge-Kutta method (4 stages), for fixed steps."""

    tableau: ClassVar[dfx.ButcherTableau] = _rk4_tableau
    interpolation_cls: ClassVar = dfx.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


ODE_SOLVERS: dict[str, type[dfx.AbstractSolver]] = {
    "euler": dfx.Euler,
    "heun": dfx.Heun,
    "midpoint": dfx.Midpoint,
    "ralston": dfx.Ralston,
    "rk4": RK4,
    "bosh3": dfx.Bosh3,
    "tsit5": dfx.Tsit5,
    "dopri5": dfx.Dopri5,
    "dopri8": dfx.Dopri8,
}

# Solvers without an embedded error estimate: they need fixed `steps`.
FIXED_STEP_ONLY = frozenset({"euler"})

class DiagonalItoMilstein(dfx.AbstractItoSolver):
    """Ito Milstein for diagonal noise ``dx_i = f_i dt + g_i(t, x) dW_i``, strong order 1:

    ``x1 = x0 + f dt + g dW + 1/2 g (dg_i/dx_i) (dW^2 - dt)``.

    Diffrax's ``ItoMilstein`` handles any noise by materialising the diffusion's derivative as a
    dense ``(N, N, N)`` array for a state of N = n * d numbers, which exhausts memory for a
    cloud of a few thousand particles. For diagonal noise Milstein needs (like diffrax's) the
    commutativity condition, which here means ``g_i`` depends on ``x_i`` alone; then the diagonal
    of the Jacobian of g is one JVP along the all-ones direction. Expects
    ``MultiTerm(ODETerm(drift), ControlTerm(diffusion, brownian))`` with a diffusion returning a
    ``lineax.DiagonalLinearOperator`` (as ``simulate_sde`` builds it).
    """

    term_structure: ClassVar = dfx.MultiTerm[tuple[dfx.AbstractTerm, dfx.AbstractTerm]]
    interpolation_cls: ClassVar = dfx.LocalLinearInterpolation

    def order(self, terms):
        raise ValueError("`DiagonalItoMilstein` should not be used to solve ODEs.")

    def strong_order(self, terms):
        return 1

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del solver_state, made_jump
        drift, diffusion = terms.terms
        dt = drift.contr(t0, t1)
        dw = diffusion.contr(t0, t1)
        amplitude = lambda y: diffusion.vf(t0, y, args).diagonal
        g0, dg0 = jax.jvp(amplitude, (y0,), (jnp.ones_like(y0),))
        y1 = y0 + drift.vf_prod(t0, y0, args, dt) + g0 * dw + 0.5 * g0 * dg0 * (dw**2 - dt)
        return y1, None, {"y0": y0, "y1": y1}, None, dfx.RESULTS.successful

    def func(self, terms, t0, y0, args):
        drift, diffusion = terms.terms
        return drift.vf(t0, y0, args), diffusion.vf(t0, y0, args)


SDE_SOLVERS: dict[str, type[dfx.AbstractSolver]] = {
    "euler": dfx.Euler,  # Euler-Maruyama, strong order 1/2 (Ito)
    "milstein": DiagonalItoMilstein,  # strong order 1 for diagonal noise (Ito)
}


def ode_solver(solver) -> dfx.AbstractSolver:
    """A diffrax ODE solver from a name in ``ODE_SOLVERS`` or a solver instance."""
    if isinstance(solver, dfx.AbstractSolver):
        return solver
    if not isinstance(solver, str):
        raise TypeError(f"`solver` must be a name or a diffrax solver, got {type(solver)}.")
    return ODE_SOLVERS[_checks.choice(solver, ODE_SOLVERS, "solver")]()


def evaluations_per_step(solver: dfx.AbstractSolver) -> tuple[int, int]:
    """(field evaluations per step, extra evaluations at the start) for a Runge-Kutta solver."""
    tableau = getattr(solver, "tableau", None)
    if tableau is None:  # Euler and other single-stage methods
        return 1, 0
    if tableau.fsal:
        return tableau.num_stages - 1, 1
    return tableau.num_stages, 0


def fixed_step_states(field, y0, steps: int, solver="rk4", *, t0=0.0, t1=1.0, args=None,
                      save_every: int = 1):
    """The states of ``dy/dt = field(t, y, args)`` after every `save_every`-th of `steps` even
    steps on [t0, t1], the start included: a pytree like `y0` with a leading axis of length
    ``steps // save_every + 1`` (`save_every` must divide `steps`).

    diffrax's `solver` (a name or an explicit Runge-Kutta solver) takes each step, as in
    ``diffeqsolve`` with a constant step size (same numbers to rounding), but in a plain
    ``lax.scan`` without its step-size control, dense output and event machinery: a training
    step through it compiles about three times faster (measured on the digits experiments).
    Reverse mode recomputes each step from its start (``jax.checkpoint``), as diffrax's
    recursive checkpointing does when every step is a checkpoint.
    """
    solver = ode_solver(solver)
    term = dfx.ODETerm(field)
    dtype = jax.tree.leaves(y0)[0].dtype
    dt = (jnp.asarray(t1, dtype) - jnp.asarray(t0, dtype)) / steps
    times = jnp.asarray(t0, dtype) + dt * jnp.arange(steps + 1, dtype=dtype)
    state = solver.init(term, times[0], times[1], y0, args)

    @jax.checkpoint
    def step(carry, span):
        y, state = carry
        y, _, _, state, _ = solver.step(term, span[0], span[1], y, args, state, made_jump=False)
        return (y, state), None

    def saved(carry, spans):
        carry, _ = jax.lax.scan(step, carry, spans)
        return carry, carry[0]

    spans = (times[:-1].reshape(-1, save_every), times[1:].reshape(-1, save_every))
    _, ys = jax.lax.scan(saved, (y0, state), spans)
    return jax.tree.map(lambda first, rest: jnp.concatenate([first[None], rest]), y0, ys)
