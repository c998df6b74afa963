"""Flow matching between centred Gaussians with the independent coupling (closed forms)."""

import diffrax as dfx
import jax
import jax.numpy as jnp

from .. import _checks
from .._status import finite_status, from_diffrax, raise_if_failed
from .._types import Matrix, MatrixLike, ScalarLike


def flow_matching_gaussian(cov0: MatrixLike, cov1: MatrixLike,
                           t: ScalarLike) -> tuple[Matrix, Matrix]:
    """Interpolant covariance and linear velocity between N(0, cov0) and N(0, cov1).

    With X0 ~ N(0, cov0), X1 ~ N(0, cov1) independent and X_t = (1 - t) X0 + t X1:
    ``cov_t = (1-t)^2 cov0 + t^2 cov1`` and ``E[X1 - X0 | X_t = x] = A_t x`` with
    ``A_t = (t cov1 - (1-t) cov0) cov_t^{-1}``.

    **Arguments:** `cov0`, `cov1` of shape `(d, d)`; `t` a scalar in [0, 1].

    **Returns:** `(cov_t, A_t)`, both `(d, d)`.
    """
    cov0 = _checks.covariance(cov0, "cov0")
    cov1 = _checks.covariance(cov1, "cov1", dim=cov0.shape[0]).astype(cov0.dtype)
    t = _checks.unit_interval(jnp.asarray(_checks.scalar(t, "t"), cov0.dtype))
    return gaussian_velocity(cov0, cov1, t)


def gaussian_velocity(cov0, cov1, t) -> tuple[Matrix, Matrix]:
    """`(cov_t, A_t)` of [`flow_matching_gaussian`][] without checks: the kernel that fields and
    solvers call on every evaluation. Any real `t` gives the formula's value (`cov_t` stays
    positive definite), outside [0, 1] its analytic extension."""
    cov_t = (1 - t) ** 2 * cov0 + t**2 * cov1
    cross = t * cov1 - (1 - t) * cov0  # Cov(X1 - X0, X_t)
    a_t = jnp.linalg.solve(cov_t, cross.T).T  # cross @ cov_t^{-1}, cov_t symmetric
    return cov_t, a_t


def flow_matching_map(cov0: MatrixLike, cov1: MatrixLike, t: ScalarLike = 1.0, *, rtol=1e-8,
                      atol=1e-8) -> Matrix:
    """The linear flow map Phi_t of ``dx/dt = A_t x`` from 0 to `t`, shape `(d, d)`.

    Integrates the matrix ODE ``dPhi/dt = A_t Phi`` with diffrax. Phi_1 pushes N(0, cov0) to
    N(0, cov1); it equals the Bures-Monge map when cov0 and cov1 commute, and not in general.
    A failed solve raises ``RuntimeError`` with its [`Status`][flowjax_lab.Status] message.
    """
    cov0 = _checks.covariance(cov0, "cov0")
    d = cov0.shape[0]
    cov1 = _checks.covariance(cov1, "cov1", dim=d).astype(cov0.dtype)
    t = _checks.unit_interval(jnp.asarray(_checks.scalar(t, "t"), cov0.dtype))
    rtol = _checks.positive(rtol, "rtol")
    atol = _checks.positive(atol, "atol")
    # A module-level field with the covariances as `args` (not a closure over them): diffrax's
    # jitted solve is then compiled once per shape, not once per call.
    sol = dfx.diffeqsolve(
        dfx.ODETerm(_map_velocity), dfx.Tsit5(), jnp.zeros((), cov0.dtype), t, None,
        jnp.eye(d, dtype=cov0.dtype), args=(cov0, cov1),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol), max_steps=16384,
        throw=False,
    )
    status = finite_status(from_diffrax(sol.result), sol.ys)
    return raise_if_failed(jax.tree.map(lambda y: y[-1], sol.ys), status,
                           "theory.flow_matching_map")


def _map_velocity(s, phi, covs):
    """``dPhi/ds = A_s Phi``."""
    return gaussian_velocity(*covs, s)[1] @ phi
