"""Where the error of a diffusion sampler comes from, on Gaussian data (after Hurault, Terris,
Moreau and Peyre 2025; the decomposition is ``theory.diffusion_errors``, derived there).

Data N(mu, Sigma) in d = 2; the score is that of the Gaussian with the mean and covariance of n
samples; VP process; samplers from N(0, I) at t_max down to t_min. Checked, against the closed
forms: Monte Carlo over data sets of the score term (first order in 1/n), the whole pipeline's
``E W2^2 = bias^2 + score^2``, and particles of the real samplers against the exact Gaussian law
of the recursion. The qualitative statements, as checks that can fail: the score term falls as
1/n; noise hides it (it falls as t_min grows) while early stopping grows; discretization falls
at each sampler's order; from N(0, I) the reverse SDE forgets its start as alpha(t_max)^2 and the
probability flow only as alpha(t_max).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import theory
from .._plotting import figure
from ..diffusion import VP, ddim, sample_reverse_sde, time_grid
from ._config import validate
from ._registry import register
from ._result import Result, at_most, close, holds


@dataclasses.dataclass(frozen=True)
class Config:
    eigenvalues: tuple = (2.0, 0.1)
    rotation: float = 0.6  # angle of the principal axes of Sigma, radians
    mean: tuple = (1.0, -0.5)
    sizes: tuple = (50, 200, 800)  # n: the data sets the score is estimated from
    datasets: int = 2000  # Monte Carlo repetitions per size
    t_min: float = 0.01
    t_mins: tuple = (1e-3, 0.01, 0.03, 0.1, 0.3)  # the early-stopping sweep
    steps: tuple = (16, 32, 64, 128)  # the discretization sweep (asymptotic from 16 on)
    t_maxs: tuple = (0.5, 0.7, 0.9, 1.0)  # the initialisation sweep
    pipeline_n: int = 100
    pipeline_steps: int = 8
    particles: int = 20000
    particle_steps: int = 16  # a power of two: exact Brownian increments (see the samplers)
    order_tolerance: float = 0.1
    # float64: the smallest contributions (the reverse SDE's initialisation error, ~5e-5 at
    # t_max = 1) lie below what the Bures formula resolves in float32 (~sqrt(eps) ~ 3e-4).
    dtype: str = "float64"

    def __post_init__(self):
        validate(self, positive=("eigenvalues", "rotation", "t_min", "t_mins", "t_maxs",
                                 "order_tolerance"),
                 counts=("sizes", "datasets", "steps", "pipeline_n", "pipeline_steps",
                         "particles", "particle_steps"))
        if len(self.mean) != len(self.eigenvalues) or len(self.eigenvalues) != 2:
            raise ValueError(f"config fields 'mean' and 'eigenvalues' of "
                             f"diffusion-gaussian-errors must both have 2 items, got "
                             f"{self.mean!r} and {self.eigenvalues!r}.")
        if not all(t < 1 for t in (self.t_min, *self.t_mins)):
            raise ValueError(f"config fields 't_min' and 't_mins' of diffusion-gaussian-errors "
                             f"must be < 1, got {self.t_min!r} and {self.t_mins!r}.")
        if not all(self.t_min < t <= 1 for t in self.t_maxs):
            raise ValueError(f"config field 't_maxs' of diffusion-gaussian-errors must lie in "
                             f"(t_min, 1], got {self.t_maxs!r}.")
        for name in ("sizes", "t_mins", "steps", "t_maxs"):
            if len(getattr(self, name)) < 2:
                raise ValueError(f"config field {name!r} of diffusion-gaussian-errors needs at "
                                 f"least two values for a fit, got {getattr(self, name)!r}.")

    @classmethod
    def quick(cls):
        return cls(datasets=400, particles=4000)


def data_law(config: Config, dtype):
    c, s = np.cos(config.rotation), np.sin(config.rotation)
    rot = np.array([[c, -s], [s, c]])
    return (jnp.asarray(config.mean, dtype),
            jnp.asarray(rot @ np.diag(config.eigenvalues) @ rot.T, dtype))


def estimate(x):
    """The Gaussian the score is taken from: mean and 1/n covariance of `x` `(..., n, d)`."""
    m = jnp.mean(x, axis=-2)
    centred = x - m[..., None, :]
    return m, jnp.einsum("...ni,...nj->...ij", centred, centred) / x.shape[-2]


def estimated_score(process, mean, cov):
    """The score of N(mean, cov) pushed by `process` (the fault tests replace it)."""
    def score(t, x):
        a, s = process.alpha(t), process.sigma(t)
        cov_t = a**2 * cov + s**2 * jnp.eye(cov.shape[0], dtype=cov.dtype)
        return -jnp.linalg.solve(cov_t, (x - a * mean[None, :]).T).T
    return score


def sample(name, model, process, x, key, steps, t_min):
    """Run sampler `name` (DDIM or the Euler-Maruyama reverse SDE) from t = 1 down to `t_min`."""
    if name == "ddim":
        return ddim(model, process, x, prediction="score", steps=steps, t_min=t_min)
    return sample_reverse_sde(model, process, x, key, prediction="score", steps=steps,
                              t_min=t_min)


def _w2(law0, law1) -> float:
    return float(jnp.sqrt(theory.bures_w2_squared(*law0, *law1)))


def _slope(x, y) -> float:
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


@register(
    "diffusion-gaussian-errors",
    theme="optimal transport and flow matching",
    config=Config,
    description="The error of diffusion samplers on Gaussian data split by source (score from n "
                "samples, early stopping, steps, initialisation) against closed forms.",
)
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    process = VP()
    mean, cov = data_law(config, dtype)
    eye = jnp.eye(2, dtype=dtype)
    prior = (jnp.zeros(2, dtype), eye)
    chol = jnp.linalg.cholesky(cov)
    data_key, pipe_key, particle_key, run_key = jax.random.split(key, 4)
    result = Result("diffusion-gaussian-errors", dataclasses.asdict(config))
    errors = lambda ts, n, sampler="ddim": theory.diffusion_errors(
        mean, cov, ts, process.alpha, process.sigma, sampler=sampler, n=n)
    grid = lambda steps, t_min, spacing="uniform", t_max=1.0: time_grid(
        process, steps, spacing=spacing, t_max=t_max, t_min=t_min, dtype=dtype)

    # 1. The score term: Monte Carlo over data sets (nested sizes) against the first-order form.
    sizes = np.asarray(config.sizes)
    draws = jax.random.normal(data_key, (config.datasets, int(sizes.max()), 2), dtype)
    data = mean[None, None, :] + draws @ chol.T
    a, s = process.alpha(jnp.asarray(config.t_min, dtype)), process.sigma(
        jnp.asarray(config.t_min, dtype))
    target = (a * mean, a**2 * cov + s**2 * eye)
    smoothed = lambda m, c: theory.bures_w2_squared(a * m, a**2 * c + s**2 * eye, *target)
    monte_carlo, predicted = [], []
    for n in sizes:
        w = jax.vmap(smoothed)(*estimate(data[:, :n]))
        monte_carlo.append(float(jnp.mean(w)))
        predicted.append(float(errors(grid(2, config.t_min), int(n)).score) ** 2)
        se = float(jnp.std(w)) / np.sqrt(config.datasets)
        result.checks.append(close(
            f"score term E W2^2 at n = {n}: Monte Carlo vs first order", monte_carlo[-1],
            predicted[-1], 4 * se / predicted[-1],
            against=f"theory.diffusion_errors(...).score^2 (first order in 1/n); tolerance 4 "
                    f"standard errors of {config.datasets} data sets"))
    slope = _slope(sizes, monte_carlo)
    result.checks.append(close(
        "score term falls as 1/n (Monte Carlo slope)", slope, -1.0, config.order_tolerance,
        relative=False, against="E W2^2 ~ tr(...) / n: slope -1 of log E W2^2 vs log n"))

    # 2. The whole pipeline: score from pipeline_n samples, DDIM, from N(0, I), early stopped.
    ts = grid(config.pipeline_steps, config.t_min)

    def pipeline(m, c):
        law = theory.diffusion_sampler_law(m, c, *prior, ts, process.alpha, process.sigma,
                                           sampler="ddim")
        return theory.bures_w2_squared(*law, mean, cov)

    draws = jax.random.normal(pipe_key, (config.datasets, config.pipeline_n, 2), dtype)
    w = jax.vmap(pipeline)(*estimate(mean[None, None, :] + draws @ chol.T))
    total = errors(ts, config.pipeline_n)
    se = float(jnp.std(w)) / np.sqrt(config.datasets)
    result.checks.append(close(
        "whole pipeline: E W2^2 = bias^2 + score^2", float(jnp.mean(w)), float(total.total) ** 2,
        4 * se / float(total.total) ** 2,
        against=f"theory.diffusion_errors(...).total^2 (DDIM, {config.pipeline_steps} steps, "
                f"n = {config.pipeline_n}); 4 standard errors of {config.datasets} data sets"))

    # 3. Particles of the real samplers with one estimated score, against the law's recursion.
    sample_data = mean[None, :] + jax.random.normal(particle_key, (config.pipeline_n, 2),
                                                    dtype) @ chol.T
    fitted = estimate(sample_data)
    model = estimated_score(process, *fitted)
    x = jax.random.normal(run_key, (config.particles, 2), dtype)
    for i, name in enumerate(("ddim", "reverse_sde_euler_maruyama")):
        out = sample(name, model, process, x, jax.random.fold_in(run_key, i),
                     config.particle_steps, config.t_min)
        law = theory.diffusion_sampler_law(*fitted, *prior, grid(config.particle_steps,
                                                                 config.t_min),
                                           process.alpha, process.sigma, sampler=name)
        # Standardised: sqrt(n) C^{-1/2} (mean_n - mean) is N(0, I) for n independent draws
        # (for DDIM the start draws, mapped affinely); its norm^2 is chi-square(2), above 18.4
        # with probability 1e-4.
        got = jnp.linalg.solve(jnp.linalg.cholesky(law[1]), out.x.mean(0) - law[0])
        result.checks.append(at_most(
            f"{name}: particle mean vs the law (standardised)",
            float(config.particles * got @ got), 18.4, kind="theory",
            against="theory.diffusion_sampler_law with the estimated score; chi-square(2) "
                    "quantile 1 - 1e-4"))
        cov_error = float(jnp.linalg.norm(jnp.cov(out.x.T) - law[1]) / jnp.linalg.norm(law[1]))
        rms = float(jnp.sqrt((jnp.trace(law[1]) ** 2 + jnp.trace(law[1] @ law[1]))
                             / config.particles) / jnp.linalg.norm(law[1]))
        result.checks.append(at_most(
            f"{name}: particle covariance vs the law", cov_error, 4 * rms, kind="theory",
            against="theory.diffusion_sampler_law; 4 rms sampling errors of the covariance "
                    "(E |C_n - C|_F^2 = (tr(C)^2 + tr(C^2)) / n)"))

    # 4. Early stopping against the score term over t_min (n = pipeline_n, 64 EDM-Heun steps).
    sweep = [errors(grid(64, t, "edm"), config.pipeline_n, "heun_edm") for t in config.t_mins]
    early = np.array([float(e.early_stopping) for e in sweep])
    score_t = np.array([float(e.score) for e in sweep])
    result.checks += [
        holds("early stopping grows with t_min", bool(np.all(np.diff(early) > 0)),
              kind="theory", against=f"closed form at t_min = {config.t_mins}"),
        holds("noise hides the score error: it falls as t_min grows",
              bool(np.all(np.diff(score_t) < 0)), kind="theory",
              against="first-order score term, alpha^4 lambda_i lambda_j / (v_i + v_j)"),
    ]

    # 5. Discretization at each sampler's order (exact score, exact start).
    steps = np.asarray(config.steps)
    disc = {name: np.array([float(errors(grid(int(k), config.t_min, spacing), 1, name)
                                  .discretization) for k in steps])
            for name, spacing in (("ddim", "uniform"), ("heun_edm", "edm"))}
    for name, order in (("ddim", 1), ("heun_edm", 2)):
        result.checks.append(close(
            f"{name}: discretization order", -_slope(steps, disc[name]), order,
            config.order_tolerance, relative=False,
            against=f"order {order} of the scheme; the exact recursion over "
                    f"{tuple(int(k) for k in steps)}"))

    # 6. Initialisation from N(0, I) over t_max: ODE ~ alpha(t_max), SDE ~ alpha(t_max)^2.
    t_maxs = np.asarray(config.t_maxs)
    alpha_max = np.asarray(process.alpha(jnp.asarray(t_maxs, dtype)))
    init = {name: np.array([float(errors(grid(8, config.t_min, t_max=float(t)), 1, name)
                                  .initialisation) for t in t_maxs])
            for name in ("ddim", "reverse_sde_euler_maruyama")}
    for name, order in (("ddim", 1), ("reverse_sde_euler_maruyama", 2)):
        result.checks.append(close(
            f"{name}: initialisation error vs alpha(t_max)", _slope(alpha_max, init[name]),
            order, config.order_tolerance, relative=False,
            against=f"rho alpha(t_max) |mu|: rho ~ 1 (ODE) or ~ alpha(t_max) (SDE): slope "
                    f"{order}"))
    result.checks.append(holds(
        "the reverse SDE forgets its start faster than the probability flow",
        bool(np.all(init["reverse_sde_euler_maruyama"] < init["ddim"])), kind="theory",
        against="rho_sde = rho_ode^2 alpha(T) / alpha(t_min) < rho_ode"))

    result.metrics.update({
        "score_slope": slope, "pipeline_w2_rms": float(jnp.sqrt(jnp.mean(w))),
        "pipeline_bias": float(total.bias), "pipeline_score": float(total.score),
        **{f"score_w2sq_n{n}": v for n, v in zip(sizes, monte_carlo, strict=True)},
    })
    result.arrays.update({"sizes": sizes, "score_monte_carlo": np.array(monte_carlo),
                          "score_first_order": np.array(predicted), "t_mins": np.asarray(
                              config.t_mins), "early_stopping": early, "score_vs_t_min": score_t,
                          "steps": steps, **{f"{k}_discretization": v for k, v in disc.items()},
                          "t_maxs": t_maxs, **{f"{k}_initialisation": v
                                               for k, v in init.items()}})

    fig, axes = figure(3, size=3.8)
    axes[0, 0].loglog(sizes, monte_carlo, "o", label="Monte Carlo")
    axes[0, 0].loglog(sizes, predicted, "-", label="first order")
    axes[0, 0].set(xlabel="n (samples behind the score)", ylabel="E W2^2 (score term)",
                   title=f"score term at t_min = {config.t_min}")
    axes[0, 1].loglog(config.t_mins, early, "o-", label="early stopping")
    axes[0, 1].loglog(config.t_mins, score_t, "s-", label=f"score (n = {config.pipeline_n})")
    axes[0, 1].loglog(config.t_mins, [float(e.total) for e in sweep], "k--", label="total")
    axes[0, 1].set(xlabel="t_min", ylabel="W2", title="early stopping vs score")
    for name in disc:
        axes[0, 2].loglog(steps, disc[name], "o-", label=f"{name}: discretization")
    for name in init:
        axes[0, 2].axhline(init[name][-1], ls=":", color="C3" if name == "ddim" else "C4",
                           label=f"{name}: initialisation (t_max = 1)")
    axes[0, 2].set(xlabel="steps K", ylabel="W2", title="steps and start")
    for ax in axes[0]:
        ax.legend(fontsize=7)
    result.figures["error_contributions"] = fig
    return result
