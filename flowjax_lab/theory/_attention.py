"""The Gaussian closure of softmax self-attention dynamics (Castin et al., 2025).

Tokens ``x ~ mu`` move by ``dx/dt = sum_h V_h E_{y~mu}[exp(<Q_h x, K_h y>) y] /
E_{y~mu}[exp(<Q_h x, K_h y>)]``. With the library's score ``<Q x, K y> = (K^T Q x)^T y`` and
``mu = N(0, S)``, the exponential tilt of ``y`` by ``a = K^T Q x`` is ``N(S a, S)``, so the field is
linear, ``v(x) = A x`` with ``A = sum_h V_h S K_h^T Q_h``, the tokens stay centred Gaussian and

    dS/dt = A S + S A^T,   A = sum_h V_h S K_h^T Q_h.

(The other placement, ``V S Q^T K``, is what the convention ``<K x, Q y>`` would give; the tests
let a particle simulation tell the two apart.) The ODE is quadratic in ``S`` and may blow up in
finite time. For ``V_h = I`` it is solved in closed form: ``d(S^{-1})/dt = -(M + M^T)`` with
``M = sum_h K_h^T Q_h``, so ``S_t = (S_0^{-1} - t (M + M^T))^{-1}``, which blows up at
``t* = 1 / lambda_max(S_0^{1/2} (M + M^T) S_0^{1/2})`` when that eigenvalue is positive.
"""

import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp

from .. import _checks
from .._status import from_diffrax, raise_if_failed
from .._types import (
    Array,
    ArrayLike,
    Float,
    Matrix,
    MatrixArray,
    MatrixLike,
    Real,
    Scalar,
    Times,
    TimesLike,
)
from ._linalg import symmetrize
from ._times import output_times

# One head `(k, d)`, `(d, d)` or `h` heads `(h, k, d)`, `(h, d, d)`.
Queries = Real[ArrayLike, "*h k d"] | list
Values = Real[ArrayLike, "*h d d"] | list
Covariances = Float[Array, "T d d"]


class AttentionCovariance(eqx.Module):
    """The covariance of Gaussian tokens under attention dynamics.

    **Fields:**
    - `ts`: times `(T,)`.
    - `covs`: covariances `(T, d, d)`; `inf` at times at or after a blow-up.
    - `blow_up_time`: the time at which the covariance becomes infinite (`inf` if none within
      the requested times for the ODE; the exact time for the closed form), on the same clock
      as `ts` (so `t0` plus the time it takes).
    - `blew_up`: boolean, whether `blow_up_time` is finite.
    """

    ts: Times
    covs: Covariances
    blow_up_time: Scalar
    blew_up: Array


def _heads(Q, K, V, d: int | None = None):
    Q = _checks.as_float_array(Q, "Q")
    K = _checks.as_float_array(K, "K").astype(Q.dtype)
    V = _checks.as_float_array(V, "V").astype(Q.dtype)
    if Q.ndim == 2:
        Q, K, V = Q[None], K[None], V[None]
    if Q.ndim != 3 or K.shape != Q.shape:
        raise ValueError(f"`Q` and `K` must share a shape (k, d) or (h, k, d), got "
                         f"{tuple(Q.shape)} and {tuple(K.shape)}.")
    dim = Q.shape[-1]
    if V.shape != (Q.shape[0], dim, dim):
        raise ValueError(f"`V` must have shape (d, d) (or (h, d, d) with the heads of `Q`) with "
                         f"d = {dim}, got {tuple(V.shape)}.")
    if d is not None and dim != d:
        raise ValueError(f"`Q`, `K`, `V` act on dimension {dim} but `cov0` is {d} x {d}.")
    return Q, K, V


def attention_velocity_matrix(cov: MatrixArray, Q: Queries, K: Queries,
                              V: Values) -> Matrix:
    """The matrix ``A = sum_h V_h cov K_h^T Q_h`` of the mean-field field ``v(x) = A x`` of
    softmax attention on N(0, cov), shape `(d, d)`."""
    Q, K, V = _heads(Q, K, V, cov.shape[0])
    return jnp.einsum("hij,jk,hlk,hlm->im", V, cov, K, Q)


def attention_covariance(cov0: MatrixLike, Q: Queries, K: Queries, V: Values, ts: TimesLike, *,
                         t0=0.0, rtol=1e-8, atol=1e-8, threshold=1e8,
                         max_steps=16384) -> AttentionCovariance:
    """Covariance of centred Gaussian tokens moved by softmax attention (mean-field limit).

    Solves ``dS/dt = A S + S A^T``, ``A = sum_h V_h S K_h^T Q_h`` from ``S(t0) = cov0`` with
    diffrax.
    A blow-up is detected (a diffrax event ends the solve) at the first step where ``|S|``
    exceeds ``threshold * |cov0|``; the returned time is then extrapolated with the
    ``1 / (t* - t)`` growth of a quadratic ODE, ``t* = t + |S|^2 / <S, dS/dt>``, accurate to about
    ``1 / threshold`` relative.

    **Arguments:**
    - `cov0`: initial covariance `(d, d)`, symmetric positive definite.
    - `Q`, `K`: `(k, d)` or `(h, k, d)`; `V`: `(d, d)` or `(h, d, d)`.
    - `ts`: the output times `(T,)`, increasing, each >= `t0` (the time convention of
      ``flowjax_lab.theory``).
    - `t0`: the time of `cov0` (default 0.0); the ODE is autonomous, so starting at `t0` shifts
      the solution (and the blow-up time) by `t0`.

    **Returns:** an [`AttentionCovariance`][].
    """
    cov0 = _checks.covariance(cov0, "cov0")
    Q, K, V = _heads(Q, K, V, cov0.shape[0])
    Q, K, V = (a.astype(cov0.dtype) for a in (Q, K, V))
    ts, t0 = output_times(ts, t0, cov0.dtype)
    _checks.positive(threshold, "threshold")
    return _solve(cov0, Q, K, V, t0, ts, rtol, atol, threshold,
                  _checks.positive_int(max_steps, "max_steps"))


def _rhs(t, cov, args):
    Q, K, V = args
    a = attention_velocity_matrix(cov, Q, K, V)
    return a @ cov + cov @ a.T


@eqx.filter_jit
def _solve(cov0, Q, K, V, t0, ts, rtol, atol, threshold, max_steps):
    limit = threshold * jnp.linalg.norm(cov0)
    event = dfx.Event(lambda t, y, args, **kw: jnp.linalg.norm(y) > limit)
    sol = dfx.diffeqsolve(
        dfx.ODETerm(_rhs), dfx.Tsit5(), t0, ts[-1], None, cov0,
        args=(Q, K, V), saveat=dfx.SaveAt(subs=(dfx.SubSaveAt(ts=ts), dfx.SubSaveAt(t1=True))),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol), event=event,
        max_steps=max_steps, throw=False,
    )
    blew_up = sol.result == dfx.RESULTS.event_occurred
    t_end, s_end = sol.ts[1][-1], sol.ys[1][-1]
    growth = jnp.sum(s_end * _rhs(t_end, s_end, (Q, K, V)))  # d|S|^2/dt / 2
    extrapolated = t_end + jnp.sum(s_end**2) / jnp.where(growth > 0, growth, 1)
    blow_up_time = jnp.where(blew_up, extrapolated, jnp.inf)
    covs = jnp.where((ts >= blow_up_time)[:, None, None], jnp.inf, sol.ys[0])
    # The blow-up event is an answer, not a failure (``from_diffrax`` reads it as a success).
    covs = raise_if_failed(covs, from_diffrax(sol.result), "theory.attention_covariance")
    return AttentionCovariance(ts, _symmetrize(covs), blow_up_time, blew_up)


def _symmetrize(covs):
    return (covs + jnp.swapaxes(covs, -1, -2)) / 2


def attention_covariance_identity(cov0: MatrixLike, Q: Queries, K: Queries, ts: TimesLike, *,
                                  t0=0.0) -> AttentionCovariance:
    """The closed form for ``V = I`` (every head): ``S_t = (S_0^{-1} - (t - t0) (M + M^T))^{-1}``
    with ``M = sum_h K_h^T Q_h`` and ``S_0 = cov0`` the covariance at time `t0` (default 0.0),
    and the exact blow-up time ``t* = t0 + 1 / lambda_max(S_0^{1/2} (M + M^T) S_0^{1/2})``
    (`inf` when that eigenvalue is <= 0). Shapes and times as in [`attention_covariance`][]."""
    cov0 = _checks.covariance(cov0, "cov0")
    d = cov0.shape[0]
    Q = _checks.as_float_array(Q, "Q").astype(cov0.dtype)
    K = _checks.as_float_array(K, "K").astype(cov0.dtype)
    Q, K, _ = _heads(Q, K, jnp.broadcast_to(jnp.eye(d, dtype=cov0.dtype),
                                            Q.shape[:-2] + (d, d)), d)
    ts, t0 = output_times(ts, t0, cov0.dtype)
    m = jnp.einsum("hkd,hke->de", K, Q)
    b = m + m.T
    chol = jnp.linalg.cholesky(cov0)  # L^T B L has the eigenvalues of S0^(1/2) B S0^(1/2)
    top = jnp.max(jnp.linalg.eigvalsh(symmetrize(chol.T @ b @ chol)))
    blow_up_time = t0 + jnp.where(top > 0, 1 / jnp.where(top > 0, top, 1), jnp.inf)
    precision = jnp.linalg.inv(cov0)
    covs = jnp.linalg.inv(precision[None] - (ts - t0)[:, None, None] * b[None])
    covs = jnp.where((ts >= blow_up_time)[:, None, None], jnp.inf, _symmetrize(covs))
    return AttentionCovariance(ts, covs, blow_up_time, jnp.isfinite(blow_up_time))
