"""The Riccati ODE of a mean-field linear network under a Gaussian neuron law."""

import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp

from .. import _checks
from .._status import finite_status, from_diffrax, raise_if_failed
from .._types import Array, ArrayLike, Float, Real, TimesLike

# The neuron covariance: `p = d_in + d_out`.
NeuronCovariance = Real[ArrayLike, "p p"] | list
Covariances = Float[Array, "T p p"]
InputMoment = Real[ArrayLike, "d_in d_in"] | list
CrossMoment = Real[ArrayLike, "d_out d_in"] | list


def linear_network_covariance(cov0: NeuronCovariance, Szz: InputMoment, Syz: CrossMoment,
                              ts: TimesLike, *, rtol=1e-8, atol=1e-8) -> Covariances:
    """Neuron covariance along the Wasserstein gradient flow of a mean-field linear network.

    Neurons ``theta = (u, v)`` with ``u`` in R^{d_in}, ``v`` in R^{d_out} give the predictor
    ``M = E[v u^T]`` (`(d_out, d_in)`) and the risk ``R = 1/2 E|y - M z|^2``, with
    ``Szz = E[z z^T]`` and ``Syz = E[y z^T]``. The first variation of R at ``(u, v)`` is
    ``v^T G u`` with ``G = M Szz - Syz``, so each neuron moves linearly,
    ``d/dt (u, v) = -B (u, v)`` with ``B = [[0, G^T], [G, 0]]``, and the neuron law stays
    N(0, Sigma_t) with the Riccati (quadratic) ODE

        dSigma/dt = -(B(Sigma) Sigma + Sigma B(Sigma)),    M(Sigma) = Sigma[d_in:, :d_in].

    Its rest points with ``G = 0`` have ``M = Syz Szz^{-1}``, the least-squares predictor.
    Integrated with diffrax (Tsit5, adaptive steps).

    **Arguments:**
    - `cov0`: the initial neuron covariance, `(d_in + d_out, d_in + d_out)`, positive
      semi-definite; the neuron law is N(0, cov0).
    - `Szz`: input second moment `(d_in, d_in)`, positive definite.
    - `Syz`: output-input cross moment `(d_out, d_in)`.
    - `ts`: increasing times `(T,)`, starting at the time of `cov0`.

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
    ts = _checks.times(ts, dtype=Szz.dtype)
    rtol = _checks.positive(rtol, "rtol")
    atol = _checks.positive(atol, "atol")
    sigmas, status = _solve(cov0, Szz, Syz, ts, rtol, atol)
    return raise_if_failed(sigmas, status, "theory.linear_network_covariance")


@eqx.filter_jit
def _solve(cov0, Szz, Syz, ts, rtol, atol):
    d_in = Szz.shape[0]

    def vf(t, sigma, args):
        g = sigma[d_in:, :d_in] @ Szz - Syz
        zeros_in = jnp.zeros((d_in, d_in), sigma.dtype)
        zeros_out = jnp.zeros((g.shape[0], g.shape[0]), sigma.dtype)
        b = jnp.block([[zeros_in, g.T], [g, zeros_out]])
        return -(b @ sigma + sigma @ b)

    sol = dfx.diffeqsolve(
        dfx.ODETerm(vf), dfx.Tsit5(), ts[0], ts[-1], None, cov0, saveat=dfx.SaveAt(ts=ts),
        stepsize_controller=dfx.PIDController(rtol=rtol, atol=atol), max_steps=65536, throw=False,
    )
    return sol.ys, finite_status(from_diffrax(sol.result), sol.ys)
