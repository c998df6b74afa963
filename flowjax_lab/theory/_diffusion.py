"""Diffusion models on Gaussian targets: marginals, scores, and the exact covariance recursion of
each sampler.

The forward process ``x_t = alpha(t) x0 + sigma(t) eps`` (data at t = 0) is given here by two
plain callables `alpha` and `sigma`; its drift ``f = (log alpha)'`` and squared diffusion
``g^2 = (sigma^2)' - 2 f sigma^2`` are derived from them by automatic differentiation, apart from
the closed forms of ``diffusion``'s processes.

On the target N(0, cov0) every exact prediction is linear in x and a function of cov0: with
``v_t = alpha^2 c + sigma^2`` for an eigenvalue c of cov0, ``E[x0 | x] = alpha c x / v_t`` and
``E[eps | x] = sigma x / v_t`` along that eigenvector. A sampler step is then
``x' = M x (+ noise of covariance Q)`` with M, Q diagonal in the eigenbasis of cov0, so the
covariance obeys ``C' = M C M^T + Q`` exactly, whatever the starting covariance.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .._types import (
    ArrayLike,
    Matrix,
    MatrixLike,
    Particles,
    ParticlesLike,
    Real,
    ScalarLike,
    TimesLike,
    VectorLike,
)

DIFFUSION_SAMPLERS = (
    "reverse_sde_euler_maruyama",
    "reverse_sde_heun",
    "probability_flow_euler",
    "probability_flow_heun",
    "ddim",
    "heun_edm",
    "dpm_solver_2",
)

# The `K` components of a Gaussian mixture.
Means = Real[ArrayLike, "K d"] | list
ComponentCovariances = Real[ArrayLike, "K d d"] | list
ComponentWeights = Real[ArrayLike, " K"] | list


def diffusion_covariance(cov0: MatrixLike, alpha: ScalarLike, sigma: ScalarLike) -> Matrix:
    """Covariance ``alpha^2 cov0 + sigma^2 I`` of ``alpha x0 + sigma eps`` for x0 ~ N(m, cov0),
    eps ~ N(0, I) independent; `alpha`, `sigma` scalars. Shape `(d, d)`."""
    cov0 = _checks.covariance(cov0, "cov0", semidefinite=True)
    alpha = jnp.asarray(_checks.scalar(alpha, "alpha"), cov0.dtype)
    sigma = jnp.asarray(_checks.scalar(sigma, "sigma"), cov0.dtype)
    return alpha**2 * cov0 + sigma**2 * jnp.eye(cov0.shape[0], dtype=cov0.dtype)


def _solve_cholesky(chol, b):
    """``(L L^T)^{-1} b`` for b `(d, n)`."""
    z = jax.scipy.linalg.solve_triangular(chol, b, lower=True)
    return jax.scipy.linalg.solve_triangular(chol.T, z, lower=False)


def gaussian_score(x: ParticlesLike, mean: VectorLike, cov: MatrixLike) -> Particles:
    """``grad log N(mean, cov)`` at each row of `x` `(n, d)`: ``-cov^{-1} (x - mean)``, `(n, d)`."""
    x = _checks.particles(x, "x")
    mean = _checks.vector(mean, "mean", dim=x.shape[1]).astype(x.dtype)
    cov = _checks.covariance(cov, "cov", dim=x.shape[1]).astype(x.dtype)
    return -_solve_cholesky(jnp.linalg.cholesky(cov), (x - mean[None, :]).T).T


def gaussian_mixture_score(x: ParticlesLike, means: Means, covs: ComponentCovariances,
                           weights: ComponentWeights) -> Particles:
    """``grad log sum_k w_k N(x; m_k, C_k)`` at each row of `x` `(n, d)`, shape `(n, d)`.

    The posterior weights of the components are a softmax of ``log w_k + log N_k(x)``
    (log-sum-exp: no underflow far from every component).

    **Arguments:** `means` `(K, d)`; `covs` `(K, d, d)` positive definite; `weights` `(K,)`
    non-negative, summing to one.
    """
    x = _checks.particles(x, "x")
    d = x.shape[1]
    means = _checks.particles(means, "means", dim=d).astype(x.dtype)
    k = means.shape[0]
    covs = _checks.as_float_array(covs, "covs").astype(x.dtype)
    if covs.shape != (k, d, d):
        raise ValueError(f"`covs` must have shape ({k}, {d}, {d}), got {tuple(covs.shape)}.")
    covs = jnp.stack([_checks.covariance(covs[i], f"covs[{i}]") for i in range(k)])
    weights = _checks.weights(weights, k, "weights", dtype=x.dtype)

    def component(mean, cov):
        chol = jnp.linalg.cholesky(cov)
        centred = (x - mean[None, :]).T  # (d, n)
        z = jax.scipy.linalg.solve_triangular(chol, centred, lower=True)
        log_density = (-0.5 * jnp.sum(z**2, axis=0) - jnp.sum(jnp.log(jnp.diag(chol)))
                       - 0.5 * d * jnp.log(2 * jnp.pi))
        return log_density, -_solve_cholesky(chol, centred).T

    log_density, scores = jax.vmap(component)(means, covs)  # (K, n), (K, n, d)
    log_w = jnp.where(weights > 0, jnp.log(jnp.where(weights > 0, weights, 1)), -jnp.inf)
    posterior = jax.nn.softmax(log_w[:, None] + log_density, axis=0)  # (K, n)
    return jnp.einsum("kn,knd->nd", posterior, scores)


def _all_steps(c, ts, alpha, sigma, eta):
    """Per-step multipliers ``m`` and noise variances ``q`` of every sampler (in the order of
    `DIFFUSION_SAMPLERS`), each `(S, K, d)`, along the eigenvalues `c` `(d,)` of cov0, for the
    grid `ts` `(K + 1,)`."""
    ones = jnp.ones_like(ts)
    a, da = jax.jvp(alpha, (ts,), (ones,))
    s, ds = jax.jvp(sigma, (ts,), (ones,))
    a, da, s, ds = (jnp.asarray(u, ts.dtype)[:, None] for u in (a, da, s, ds))  # (K + 1, 1)
    c = c[None, :]
    v = a**2 * c + s**2  # marginal variance along each eigenvector, (K + 1, d)
    h = (ts[1:] - ts[:-1])[:, None]  # negative: time runs from noise to data
    zero = jnp.zeros((ts.shape[0] - 1, c.shape[1]), ts.dtype)
    steps = {}

    # Probability-flow ODE in t: dx/dt = b x with b = v' / (2 v) (it keeps x / sqrt(v_t) fixed).
    b = (a * da * c + s * ds) / v
    steps["probability_flow_euler"] = 1 + h * b[:-1], zero
    steps["probability_flow_heun"] = 1 + h / 2 * (b[:-1] + b[1:] * (1 + h * b[:-1])), zero

    # Reverse SDE in t: x(t + h) = x + h A x + g sqrt(|h|) z with A = f + g^2 / v
    # (score = -x / v); Heun: k1 = h A0 x + g0 dW, k2 = h A1 (x + k1) + g1 dW,
    # x' = x + (k1 + k2) / 2.
    f = da / a
    g2 = 2 * s * ds - 2 * f * s**2
    big_a, g = f + g2 / v, jnp.sqrt(g2)
    steps["reverse_sde_euler_maruyama"] = 1 + h * big_a[:-1], g2[:-1] * -h + zero
    gain = (g[:-1] + g[1:]) / 2 + h / 2 * big_a[1:] * g[:-1]
    steps["reverse_sde_heun"] = (
        1 + h / 2 * (big_a[:-1] + big_a[1:]) + h**2 / 2 * big_a[:-1] * big_a[1:], gain**2 * -h)

    # DDIM: x' = alpha' E[x0|x] + sqrt(sigma'^2 - rho^2) E[eps|x] + rho z.
    a0, a1, s0, s1 = a[:-1], a[1:], s[:-1], s[1:]
    rho = eta * s1 / s0 * jnp.sqrt(jnp.maximum(s0**2 - (a0 / a1) ** 2 * s1**2, 0))
    steps["ddim"] = ((a1 * a0 * c + jnp.sqrt(jnp.maximum(s1**2 - rho**2, 0)) * s0) / v[:-1],
                     rho**2 + zero)

    # EDM-Heun and DPM-Solver-2 step ``dy/dr = r y / (c + r^2)`` in r = sigma / alpha and
    # y = x / alpha (the probability-flow ODE there): Heun, and the midpoint rule at the
    # geometric mean of r (the log-SNR midpoint); x' = alpha' y'.
    r = s / a
    rate = r / (c + r**2)
    dr = r[1:] - r[:-1]
    heun = 1 + dr / 2 * (rate[:-1] + rate[1:] * (1 + dr * rate[:-1]))
    r_mid = jnp.sqrt(r[:-1] * r[1:])
    midpoint = 1 + dr * r_mid / (c + r_mid**2) * (1 + (r_mid - r[:-1]) * rate[:-1])
    steps["heun_edm"] = a1 / a0 * heun, zero
    steps["dpm_solver_2"] = a1 / a0 * midpoint, zero
    m, q = zip(*(steps[name] for name in DIFFUSION_SAMPLERS), strict=True)
    return jnp.stack(m), jnp.stack(q)


def diffusion_sampler_covariance(cov0: MatrixLike, cov_start: MatrixLike, ts: TimesLike, alpha,
                                 sigma, *, sampler: str, eta=0.0) -> Matrix:
    """The covariance a sampler produces on the target N(0, cov0) with the exact prediction.

    Starting from particles of covariance `cov_start` at ``ts[0]``, `sampler` steps through the
    decreasing times `ts`; each step is ``x' = M x + noise`` with M and the noise covariance Q
    functions of cov0, derived in closed form per eigenvalue of cov0, and
    ``C' = M C M^T + Q`` is iterated (unrolled in the eigenbasis of cov0).

    **Arguments:**
    - `cov0`: the target covariance `(d, d)`; `cov_start`: the particles' covariance at
      ``ts[0]`` `(d, d)` (e.g. ``diffusion_covariance(cov0, alpha(ts[0]), sigma(ts[0]))``, then
      the continuous-time limit is the exact marginal at ``ts[-1]``).
    - `ts`: the sampler's times `(K + 1,)`, strictly decreasing.
    - `alpha`, `sigma`: the process's schedules, differentiable callables of an array of times.
    - `sampler`: one of `DIFFUSION_SAMPLERS`, each stepping between consecutive times of `ts`
      (``diffusion``'s reverse-SDE and probability-flow samplers use times uniform in t).
    - `eta`: DDIM's stochasticity, in [0, 1] (ignored by the other samplers).

    **Returns:** the covariance at ``ts[-1]``, shape `(d, d)`.
    """
    sampler = _checks.choice(sampler, DIFFUSION_SAMPLERS, "sampler")
    cov0 = _checks.covariance(cov0, "cov0", semidefinite=True)
    d = cov0.shape[0]
    cov_start = _checks.covariance(cov_start, "cov_start", dim=d,
                                   semidefinite=True).astype(cov0.dtype)
    ts = _checks.times(ts, dtype=cov0.dtype, min_length=2, decreasing=True, strictly=True)
    for fn, name in ((alpha, "alpha"), (sigma, "sigma")):
        if not callable(fn):
            raise TypeError(f"`{name}` must be a callable of the times, got "
                            f"{type(fn).__name__}.")
    eta = _checks.unit_interval(eta, "eta")
    # Padded to a fixed length with repeats of the last time, the padded steps masked to the
    # identity: every grid of up to 512 steps shares one compilation.
    steps = ts.shape[0] - 1
    size = max(512, 1 << (steps - 1).bit_length())
    pad = jnp if _checks.is_traced(ts) else np  # NumPy: no eager compilation per grid size
    ts = jnp.asarray(pad.concatenate([ts, pad.full((size - steps,), ts[-1], ts.dtype)]))
    index = jnp.asarray(DIFFUSION_SAMPLERS.index(sampler))  # traced: one compilation for all
    return _recursion(cov0, cov_start, ts, jnp.asarray(steps), alpha, sigma, index,
                      jnp.asarray(eta, cov0.dtype))


@eqx.filter_jit
def _recursion(cov0, cov_start, ts, steps, alpha, sigma, index, eta):
    """Unrolled in the eigenbasis: ``C_K = P C_0 P + diag(sum_k q_k (prod_{j > k} m_j)^2)``
    with ``P = diag(prod_k m_k)``; steps from `steps` on are the identity."""
    c, basis = jnp.linalg.eigh(cov0)
    m, q = _all_steps(c, ts, alpha, sigma, eta)
    live = (jnp.arange(ts.shape[0] - 1) < steps)[:, None]
    m, q = jnp.where(live, m[index], 1), jnp.where(live, q[index], 0)
    after = jnp.cumprod(jnp.concatenate([jnp.ones_like(m[:1]), m[:0:-1]]), axis=0)[::-1]
    total = jnp.prod(m, axis=0)
    cov = (total[:, None] * (basis.T @ cov_start @ basis) * total[None, :]
           + jnp.diag(jnp.sum(q * after**2, axis=0)))
    return basis @ cov @ basis.T
