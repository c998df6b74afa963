"""The error of a diffusion sampler on Gaussian data, split by source (in the spirit of Hurault,
Terris, Moreau and Peyre 2025, "From score matching to diffusion: a fine-grained error analysis in
the Gaussian setting"; the decomposition and every formula below are derived here).

Data N(mu, Sigma), forward process ``x_t = alpha(t) x0 + sigma(t) eps``. The sampler uses the
score of a Gaussian N(m, S) (the exact one, m = mu and S = Sigma, or the one estimated from n
samples: their mean and 1/n covariance, which is also the minimiser of denoising score matching
over affine scores on those samples). Every sampler step is then affine in x, so the output law is
Gaussian, and the error W2(output, data) has four sources:

- early stopping: the sampler ends at ``t_min > 0``, at the exact marginal
  P1 = N(alpha mu, alpha^2 Sigma + sigma^2 I), not at the data;
- score: with N(m, S) estimated from n samples the exact sampler ends at
  P2 = N(alpha m, alpha^2 S + sigma^2 I). To first order in the estimation error, with
  ``v_i = alpha^2 lambda_i + sigma^2`` over the eigenvalues lambda_i of Sigma at t_min,
  ``E W2^2(P2, P1) = (1 / n) [alpha^2 tr Sigma
  + sum_ij alpha^4 lambda_i lambda_j (1 + delta_ij) / (2 (v_i + v_j))]``
  (the Bures metric ``sum_ij E_ij^2 / (2 (v_i + v_j))`` at a perturbation E of the covariance,
  averaged over the Wishart fluctuation ``Var E_ij = (lambda_i lambda_j + delta_ij lambda_i^2) / n``
  of the empirical covariance, plus the mean's ``E |m - mu|^2 = tr Sigma / n``);
- discretization: K steps instead of the continuous-time sampler (the exact recursion of
  ``diffusion_sampler_covariance``, and its mean counterpart below);
- initialisation: the start N(0, s^2 I) at T instead of the marginal N(alpha_T mu, V_T). The
  deviation of the sampler's law from the exact marginals evolves linearly: along each
  eigenvector it is multiplied by ``rho = sqrt(v(t_min) / v(T))`` for the probability-flow ODE
  (``dy/dt = v' / (2 v) y``) and by ``rho = v(t_min) alpha(T) / (v(T) alpha(t_min))`` for the
  reverse SDE (``dy/dt = (f + g^2 / v) y = ((log v)' - f) y``); DDIM with stochasticity eta
  follows the SDE whose noise is eta g, and ``rho = rho_ode^(1 - eta^2) rho_sde^(eta^2)``. The
  output is ``N(alpha mu - rho alpha_T mu, v + rho^2 (s^2 - v_T))`` along each eigenvector.

The biases (early stopping, discretization, initialisation) are deterministic and, to first
order, add as signed errors of the mean and of the standard deviation along each eigenvector;
the score error has a zero-mean first-order fluctuation, so that
``E W2^2(full pipeline, data) = bias^2 + E W2^2(P2, P1)`` to leading order (the field `total`).
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._types import Matrix, MatrixLike, Scalar, TimesLike, Vector, VectorLike
from ._bures import bures_w2_squared
from ._diffusion import DIFFUSION_SAMPLERS, _all_steps, diffusion_sampler_covariance

_DETERMINISTIC = ("probability_flow_euler", "probability_flow_heun", "heun_edm", "dpm_solver_2")


def _check_grid(ts, dtype):
    """`ts` `(K + 1,)` strictly decreasing and concrete, as a NumPy array."""
    if _checks.is_traced(ts):
        raise TypeError("`ts` must be concrete (a NumPy or JAX array outside `jit`): the grid "
                        "is read with NumPy.")
    return np.asarray(_checks.times(ts, dtype=dtype, min_length=2, decreasing=True,
                                     strictly=True))


def _mean_forcing(c, ts, alpha, sigma):
    """Per-step forcing ``e`` `(S, K, d)` of the mean recursion of every sampler.

    With the score of N(m, S), ``y = x - alpha(t) m`` obeys a homogeneous linear flow; a step of a
    scheme in t does not follow ``alpha(t) m`` exactly, so ``E[y'] = M E[y] + e (B^T m)`` per
    eigenvector of S. Euler: ``e = alpha_0 + h alpha'_0 - alpha_1`` (the scheme's local error on
    alpha); Heun: ``alpha_0 - alpha_1 + h (alpha'_0 + alpha'_1) / 2 + h r_1 e_Euler / 2`` with r
    the flow's rate at t_1. DDIM, EDM-Heun and DPM-Solver-2 act on ``x / alpha - m``, e = 0.
    """
    ones = jnp.ones_like(ts)
    a, da = jax.jvp(alpha, (ts,), (ones,))
    s, ds = jax.jvp(sigma, (ts,), (ones,))
    a, da, s, ds = (jnp.asarray(u, ts.dtype)[:, None] for u in (a, da, s, ds))
    v = a**2 * c[None, :] + s**2
    h = (ts[1:] - ts[:-1])[:, None]
    f = da / a
    rate_ode = (a * da * c[None, :] + s * ds) / v
    rate_sde = f + (2 * s * ds - 2 * f * s**2) / v
    euler = jnp.broadcast_to(a[:-1] + h * da[:-1] - a[1:], h.shape[:1] + c.shape)
    heun = a[:-1] - a[1:] + h / 2 * (da[:-1] + da[1:])
    zero = jnp.zeros_like(euler)
    forcing = {
        "reverse_sde_euler_maruyama": euler,
        "reverse_sde_heun": heun + h / 2 * rate_sde[1:] * euler,
        "probability_flow_euler": euler,
        "probability_flow_heun": heun + h / 2 * rate_ode[1:] * euler,
        "ddim": zero, "heun_edm": zero, "dpm_solver_2": zero,
    }
    return jnp.stack([forcing[name] for name in DIFFUSION_SAMPLERS])


@eqx.filter_jit
def _mean_recursion(mean_model, cov_model, mean_start, ts, steps, alpha, sigma, index, eta):
    """``E[x]`` at ``ts[-1]``: ``alpha m + B (P d_0 + sum_k e_k prod_{j > k} m_j B^T m)``."""
    c, basis = jnp.linalg.eigh(cov_model)
    m = _all_steps(c, ts, alpha, sigma, eta)[0][index]
    e = _mean_forcing(c, ts, alpha, sigma)[index]
    live = (jnp.arange(ts.shape[0] - 1) < steps)[:, None]
    m, e = jnp.where(live, m, 1), jnp.where(live, e, 0)
    after = jnp.cumprod(jnp.concatenate([jnp.ones_like(m[:1]), m[:0:-1]]), axis=0)[::-1]
    a0, a1 = alpha(ts[0]), alpha(ts[-1])
    start = basis.T @ (mean_start - a0 * mean_model)
    end = jnp.prod(m, axis=0) * start + jnp.sum(e * after, axis=0) * (basis.T @ mean_model)
    return a1 * mean_model + basis @ end


def diffusion_sampler_law(mean_model: VectorLike, cov_model: MatrixLike, mean_start: VectorLike,
                          cov_start: MatrixLike, ts: TimesLike, alpha, sigma, *, sampler: str,
                          eta=0.0) -> tuple[Vector, Matrix]:
    """The Gaussian law a sampler produces with the score of N(`mean_model`, `cov_model`).

    Starting from N(`mean_start`, `cov_start`) at ``ts[0]``, `sampler` steps through the
    decreasing times `ts` (as in [`diffusion_sampler_covariance`][], which gives the covariance;
    the mean follows the forced recursion described in `_mean_forcing`).

    **Arguments:** `mean_model` `(d,)`, `cov_model` `(d, d)` positive semi-definite: the Gaussian
    whose score the sampler uses; `mean_start` `(d,)`, `cov_start` `(d, d)`: the law at ``ts[0]``;
    `ts` `(K + 1,)` strictly decreasing and concrete (not traced: the grid is padded with NumPy,
    so this function is not `jit`-able in `ts`); `alpha`, `sigma` callables of an array of times;
    `sampler` one of `DIFFUSION_SAMPLERS`; `eta` DDIM's stochasticity in [0, 1].

    **Returns:** `(mean (d,), cov (d, d))` at ``ts[-1]``.
    """
    cov_model = _checks.covariance(cov_model, "cov_model", semidefinite=True)
    d = cov_model.shape[0]
    mean_model = _checks.vector(mean_model, "mean_model", dim=d)
    mean_start = _checks.vector(mean_start, "mean_start", dim=d)
    cov = diffusion_sampler_covariance(cov_model, cov_start, ts, alpha, sigma, sampler=sampler,
                                       eta=eta)
    mean_model, mean_start = mean_model.astype(cov.dtype), mean_start.astype(cov.dtype)
    ts = _check_grid(ts, cov.dtype)
    steps = ts.shape[0] - 1
    size = max(512, 1 << (steps - 1).bit_length())  # one compilation for every grid up to 512
    padded = jnp.asarray(np.concatenate([ts, np.full(size - steps, ts[-1], ts.dtype)]))
    cov_model = jnp.asarray(cov_model, cov.dtype)
    mean = _mean_recursion(mean_model, cov_model, mean_start, padded, jnp.asarray(steps), alpha,
                           sigma, jnp.asarray(DIFFUSION_SAMPLERS.index(sampler)),
                           jnp.asarray(eta, cov.dtype))
    return mean, cov


class DiffusionErrors(NamedTuple):
    """The error sources of a diffusion sampler on N(mu, Sigma), as W2 distances (scalars).

    **Fields:**
    - `early_stopping`: W2(P1, data), P1 the exact marginal at t_min;
    - `score`: sqrt of the first-order ``E W2^2(P2, P1)`` for a score estimated from n samples;
    - `discretization`: W2 of the K-step sampler with the exact score, started from the exact
      marginal at T, to P1;
    - `initialisation`: W2 of the continuous-time sampler started from N(0, s^2 I), to P1;
    - `bias`: exact W2 to the data of the K-step sampler with the exact score started from
      N(0, s^2 I) (early stopping, discretization and initialisation together);
    - `total`: ``sqrt(bias^2 + score^2)``, the first-order root-mean-square W2 of the whole
      pipeline with the estimated score.
    """

    early_stopping: Scalar
    score: Scalar
    discretization: Scalar
    initialisation: Scalar
    bias: Scalar
    total: Scalar


def _w2(mean0, cov0, mean1, cov1):
    return jnp.sqrt(bures_w2_squared(mean0, cov0, mean1, cov1))


def diffusion_errors(mean: VectorLike, cov: MatrixLike, ts: TimesLike, alpha, sigma, *,
                     sampler: str, n: int, eta=0.0, prior_std=1.0) -> DiffusionErrors:
    """The error contributions of `sampler` on data N(`mean`, `cov`), see the module docstring.

    **Arguments:**
    - `mean` `(d,)`, `cov` `(d, d)` positive definite: the data law.
    - `ts` `(K + 1,)` strictly decreasing: the sampler's grid from T = ``ts[0]`` to
      t_min = ``ts[-1]``, with ``sigma(t_min) > 0`` or ``alpha(t_min) > 0``; concrete (not
      traced: the grid is read with NumPy, so this function is not `jit`-able in `ts`).
    - `alpha`, `sigma`: the process's schedules, differentiable callables of an array of times.
    - `sampler`: one of `DIFFUSION_SAMPLERS`; `eta`: DDIM's stochasticity in [0, 1].
    - `n`: the number of samples the score is estimated from.
    - `prior_std`: s, the standard deviation of the start N(0, s^2 I), > 0.

    **Returns:** [`DiffusionErrors`][].
    """
    cov = _checks.covariance(cov, "cov")
    d = cov.shape[0]
    mean = _checks.vector(mean, "mean", dim=d).astype(cov.dtype)
    sampler = _checks.choice(sampler, DIFFUSION_SAMPLERS, "sampler")
    n = _checks.positive_int(n, "n")
    prior_std = _checks.positive(_checks.scalar(prior_std, "prior_std"), "prior_std")
    grid = _check_grid(ts, cov.dtype)
    eye = jnp.eye(d, dtype=cov.dtype)
    t_max, t_min = jnp.asarray(grid[0]), jnp.asarray(grid[-1])
    a_max, s_max = (jnp.asarray(fn(t_max), cov.dtype) for fn in (alpha, sigma))
    a_min, s_min = (jnp.asarray(fn(t_min), cov.dtype) for fn in (alpha, sigma))
    lam, basis = jnp.linalg.eigh(cov)
    mu = basis.T @ mean
    v_min, v_max = a_min**2 * lam + s_min**2, a_max**2 * lam + s_max**2
    exact_min = (a_min * mean, a_min**2 * cov + s_min**2 * eye)

    early = jnp.sqrt(jnp.sum(((a_min - 1) * mu) ** 2)
                     + jnp.sum((jnp.sqrt(v_min) - jnp.sqrt(lam)) ** 2))

    pair = v_min[:, None] + v_min[None, :]
    cross = a_min**4 * lam[:, None] * lam[None, :] * (1 + eye) / (2 * pair)
    score = jnp.sqrt((a_min**2 * jnp.sum(lam) + jnp.sum(cross)) / n)

    start = (a_max * mean, a_max**2 * cov + s_max**2 * eye)
    law = diffusion_sampler_law(mean, cov, *start, grid, alpha, sigma, sampler=sampler, eta=eta)
    discretization = _w2(*law, *exact_min)

    rho_ode = jnp.sqrt(v_min / v_max)
    rho_sde = v_min / v_max * a_max / a_min
    if sampler in _DETERMINISTIC:
        rho = rho_ode
    elif sampler == "ddim":
        rho = rho_ode ** (1 - eta**2) * rho_sde ** (eta**2)
    else:
        rho = rho_sde
    var = v_min + rho**2 * (prior_std**2 - v_max)
    initialisation = jnp.sqrt(jnp.sum((rho * a_max * mu) ** 2)
                              + jnp.sum((jnp.sqrt(jnp.maximum(var, 0)) - jnp.sqrt(v_min)) ** 2))

    prior = (jnp.zeros(d, cov.dtype), prior_std**2 * eye)
    law = diffusion_sampler_law(mean, cov, *prior, grid, alpha, sigma, sampler=sampler, eta=eta)
    bias = _w2(*law, mean, cov)
    return DiffusionErrors(early, score, discretization, initialisation, bias,
                           jnp.sqrt(bias**2 + score**2))
