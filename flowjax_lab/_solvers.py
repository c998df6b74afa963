"""Solvers by name: diffrax's explicit Runge-Kutta family, plus the classical RK4 tableau."""

from typing import ClassVar

import diffrax as dfx
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

SDE_SOLVERS: dict[str, type[dfx.AbstractSolver]] = {
    "euler": dfx.Euler,  # Euler-Maruyama, strong order 1/2 (Ito)
    "milstein": dfx.ItoMilstein,  # strong order 1 for diagonal noise (Ito)
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
