"""The Riccati ODE of a mean-field linear network under a Gaussian neuron law."""

import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._status import finite_status, from_diffrax, raise_if_failed
from .._types import Array, ArrayLike, Float, Real, TimesLike
from ._times import output_times

# The neuron covariance: `p = d_in + d_out`.
NeuronCovariance = Real[ArrayLike, "p p"] | list
Covariances = Float[Array, "T p p"]
InputMoment = Real[ArrayLike, "d_in d_in"] | list
CrossMoment = Real[ArrayLike, "d_out d_in"] | list


def risk_scale_argument(risk_scale):
    """`risk_scale` checked: a positive finite real scalar (a Python number stays one)."""
    if isinstance(risk_scale, bool) or not isinstance(
            risk_scale, int | float | np.number | np.ndarray | jnp.ndarray):
        raise TypeError(f"`risk_scale` must be a positive finite float (1.0: the risk "
                        f"E|y - M z|^2; 0.5: 1/2 E|y - M z|^2), got {risk_scale!r}.")
    risk_scale = _checks.positive(risk_scale, "risk_scale")
    return float(risk_scale) if isinstance(risk_scale, int | float | np.number) else risk_scale


def linear_network_covariance(cov0: NeuronCovariance, Szz: InputMoment, Syz: CrossMoment,
                              ts: TimesLike, *, risk_scale=1.0, t0=0.0, rtol=1e-8,
                              atol=1e-8) -> Covariances:
    """Neuron covariance along the Wasserstein gradient flow of a mean-field linear network.

    Neurons ``theta = (u, v)`` with ``u`` in R^{d_in}, ``v`` in R^{d_out} give the predictor
    ``M = E[v u^T]`` (`(d_out, d_in)`) and the risk ``R = risk_scale * E|y - M z|^2``, with
    ``Szz = E[z z^T]`` and ``Syz = E[y z^T]``. The default ``risk_scale = 1`` is the risk
    ``f = (1/N) sum_k |g(z_k) - y_k|^2`` (no 1/2) of Prop. 6.2 and its Riccati ODE (23) in
    G. Peyré, "Optimal and Diffusion Transports in Machine Learning" (arXiv:2512.06797);
    ``risk_scale = 0.5`` gives the ``1/2 E|y - M z|^2`` convention, whose flow is the same one
    run at half the speed (its time 2t is the default's time t). The first variation of R at
    ``(u, v)`` is ``v^T G u`` with ``G = 2 risk_scale (M Szz - Syz)``, so each neuron moves
    linearly, ``d/dt (u, v) = -B (u, v)`` with ``B = [[0, G^T], [G, 0]]``, and the neuron law
    stays N(0, Sigma_t) with the Riccati (quadratic) ODE

        dSigma/dt = -(B(Sigma) Sigma + Sigma B(Sigma)),    M(Sigma) = Sigma[d_in:, :d_in].

    Its rest points with ``G = 0`` have ``M = Syz Szz^{-1}``, the least-squares predictor.
    Integrated with diffrax (Tsit5, adaptive steps). The particle field with the same
    convention is ``fields.LinearNetworkField`` (same `risk_scale`).

    **Arguments:**
    - `cov0`: the neuron covariance at time `t0`, `(d_in + d_out, d_in + d_out)`, positive
      semi-definite; the neuron law is N(0, cov0).
    - `Szz`: input second moment `(d_in, d_in)`, positive definite.
    - `Syz`: output-input cross moment `(d_out, d_in)`.
    - `ts`: the output times `(T,)`, increasing, each >= `t0` (the time convention of
      ``flowjax_lab.theory``: include `t0` in `ts` to get `cov0` back as the first output).
    - `risk_scale`: the factor of ``E|y - M z|^2`` in the risk, a positive float (default 1.0,
      the paper's risk; 0.5 for ``1/2 E|y - M z|^2``).
    - `t0`: the time of `cov0` (default 0.0). The ODE is autonomous: starting at `t0` shifts
      the solution by `t0`.

    **Returns:** `Sigma_t` at each time, shape `(T, d_in + d_out, d_in + d_out)`. A failed solve
    raises ``RuntimeError`` with its [`Status`][flowjax_lab.Status] message.
    """
    Szz = _checks.covariance(Szz, "Szz")
    d_in = Szz.shape[0]
    Syz = _checks.as_float_array(Syz, "Syz").astype(Szz.dtype)
    if Syz.ndim != 2 or Syz.shape[1] != d_in:
        raise ValueError(f"`Syz` must have shape (d_out, {d_in}), got {tuple(Syz.shape)}.")
    Syz = _checks.check_finite(Syz, "Syz")
    dim = d_in + Syz.shape[0]
    cov0 = _checks.covariance(cov0, "cov0", dim=dim, semidefinite=True).astype(Szz.dtype)
    ts, t0 = output_times(ts, t0, Szz.dtype)
    scale = jnp.asarray(risk_scale_argument(risk_scale), Szz.dtype)
    rtol = _checks.positive(rtol, "rtol")
    atol = _checks.positive(atol, "atol")
    sigmas, status = _solve(cov0, Szz, Syz, scale, t0, ts, rtol, atol)
    return raise_if_failed(sigmas, status, "theory.linear_network_covariance")


@eqx.filter_jit
def _solve(cov0, Szz, Syz, scale, t0, ts, rtol, atol):
    d_in = Szz.shape[0]

    def vf(t, sigma, args):
        g = 2 * scale * (sigma[d_in:, :d_in] @ Szz - Syz)
        zeros_in = jnp.zeros((d_in, d_in), sigma.dtype)
        zeros_out = jnp.zeros((g.shape[0], g.shape[0]), sigma.dtype)
        b = jnp.block([[zeros_in, g.T], [g, zeros_out]])
        return -(b @ sigma + sigma @ b)

    sol = dfx.diffeqsolve(
        dfx.ODETerm(vf), dfx.Tsit5(), t0, ts[-1], None, cov0, saveat=dfx.SaveAt(ts=ts),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol), max_steps=65536, throw=False,
    )
    return sol.ys, finite_status(from_diffrax(sol.result), sol.ys)
