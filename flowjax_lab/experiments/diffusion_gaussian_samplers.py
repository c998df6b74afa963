"""Diffusion samplers on a Gaussian target with the exact score: order and error against theory.

Particles start from the exact VP marginal at t_max, N(0, alpha^2 cov0 + sigma^2 I), and every
sampler (reverse SDE by Euler-Maruyama and by Heun, probability-flow ODE by Euler, Heun and
adaptive Tsit5, DDIM with eta = 0 and eta > 0, EDM's Heun, DPM-Solver-2) runs down to t_min with
the exact score of N(0, cov0). Each step is then linear in the particles, so
``theory.diffusion_sampler_covariance`` gives the covariance each sampler must produce, and its
limit as the steps grow is the exact marginal at t_min. Checked: the particles follow the
recursion (within the sampling error of n particles), and the recursion's error against the
exact marginal falls at each sampler's order (1 for Euler-type, 2 for Heun, EDM, DPM-Solver-2).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import metrics, theory
from .._plotting import figure
from ..diffusion import (
    VP,
    ddim,
    dpm_solver_2,
    heun_edm,
    sample_probability_flow,
    sample_reverse_sde,
    time_grid,
)
from ..measures import Gaussian
from ._config import validate
from ._registry import register
from ._result import Result, at_most, close

# name -> (theory sampler, grid spacing, stochastic, evaluations per step, theoretical order)
SAMPLERS = {
    "reverse_sde_euler_maruyama": ("reverse_sde_euler_maruyama", "uniform", True, 1, 1),
    "reverse_sde_heun": ("reverse_sde_heun", "uniform", True, 2, 2),
    "probability_flow_euler": ("probability_flow_euler", "uniform", False, 1, 1),
    "probability_flow_heun": ("probability_flow_heun", "uniform", False, 2, 2),
    "ddim": ("ddim", "uniform", False, 1, 1),
    "ddim_stochastic": ("ddim", "uniform", True, 1, 1),  # with eta = config.eta
    "heun_edm": ("heun_edm", "edm", False, 2, 2),
    "dpm_solver_2": ("dpm_solver_2", "log_snr", False, 2, 2),
}
# ... and the adaptive probability-flow run, which has no grid and no recursion
SAMPLER_NAMES = (*SAMPLERS, "probability_flow_tsit5")


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 20000
    eigenvalues: tuple = (2.0, 0.1)
    rotation: float = 0.6  # angle of the principal axes of cov0, radians
    t_max: float = 1.0
    t_min: float = 1e-3
    steps: tuple = (64, 128, 256, 512)  # the ladder of the order fits (theory recursion)
    particle_steps: int = 32  # steps of the particle runs (a power of two, see `run`)
    eta: float = 1.0  # DDIM's stochasticity in the stochastic DDIM run
    order_tolerance: float = 0.1
    max_error: float = 0.25  # of the sampled covariance against the exact marginal at t_min
    rtol: float = 1e-6  # of the adaptive probability-flow run
    samplers: tuple = SAMPLER_NAMES  # any non-empty subset
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("eigenvalues", "t_max", "t_min", "eta", "order_tolerance",
                                 "max_error", "rtol"), counts=("n", "steps", "particle_steps"))
        if not self.t_min < self.t_max <= 1:
            raise ValueError(f"config fields 't_min' < 't_max' <= 1 of diffusion-gaussian-samplers"
                             f" are required, got t_min={self.t_min!r}, t_max={self.t_max!r}.")
        if self.eta > 1:
            raise ValueError(f"config field 'eta' of diffusion-gaussian-samplers must be <= 1, "
                             f"got {self.eta!r}.")
        if len(self.steps) < 2:
            raise ValueError(f"config field 'steps' of diffusion-gaussian-samplers needs at least "
                             f"two step counts for an order fit, got {self.steps!r}.")
        unknown = set(self.samplers) - set(SAMPLER_NAMES)
        if unknown or not self.samplers:
            raise ValueError(f"config field 'samplers' of diffusion-gaussian-samplers must name "
                             f"samplers among {SAMPLER_NAMES}, got {self.samplers!r}.")

    @classmethod
    def quick(cls):
        return cls(n=4000)


def covariance0(config: Config, dtype):
    c, s = np.cos(config.rotation), np.sin(config.rotation)
    rot = np.array([[c, -s], [s, c]])
    return jnp.asarray(rot @ np.diag(config.eigenvalues) @ rot.T, dtype)


class ExactScore(eqx.Module):
    """The score ``-(alpha^2 cov0 + sigma^2 I)^{-1} x`` of N(0, cov0) pushed by `process` (a
    Module, so that runs with equal shapes share the samplers' compilations)."""

    process: object
    cov0: jax.Array

    def __call__(self, t, x):
        eye = jnp.eye(self.cov0.shape[0], dtype=self.cov0.dtype)
        cov_t = self.process.alpha(t) ** 2 * self.cov0 + self.process.sigma(t) ** 2 * eye
        return -jnp.linalg.solve(cov_t, x.T).T


def exact_score(process, cov0):
    """The exact score model of the target (the fault tests replace it)."""
    return ExactScore(process, cov0)


def start_particles(key, cov, n):
    """`n` draws of N(0, cov): the exact marginal at t_max."""
    return Gaussian(jnp.zeros(cov.shape[0], cov.dtype), cov).sample(key, n)


def sample(name, model, process, x, key, steps, config: Config):
    """Run sampler `name` with `steps` steps from `x` at t_max down to t_min."""
    times = {"t_max": config.t_max, "t_min": config.t_min}
    if name.startswith("reverse_sde"):
        method = "heun" if name.endswith("heun") else "euler_maruyama"
        return sample_reverse_sde(model, process, x, key, prediction="score", steps=steps,
                                  method=method, **times)
    if name.startswith("probability_flow"):
        return sample_probability_flow(model, process, x, prediction="score", steps=steps,
                                       solver=name.rsplit("_", 1)[1], **times)
    if name.startswith("ddim"):
        eta = config.eta if name == "ddim_stochastic" else 0.0
        return ddim(model, process, x, key, prediction="score", steps=steps, eta=eta, **times)
    fn = heun_edm if name == "heun_edm" else dpm_solver_2
    return fn(model, process, x, prediction="score", steps=steps, **times)


def recursion(name, process, cov0, cov_start, steps, config: Config):
    """The covariance sampler `name` produces with `steps` steps (theory)."""
    sampler, spacing, *_ = SAMPLERS[name]
    ts = time_grid(process, steps, spacing=spacing, t_max=config.t_max, t_min=config.t_min,
                   dtype=cov0.dtype)
    return theory.diffusion_sampler_covariance(cov0, cov_start, ts, process.alpha,
                                               process.sigma, sampler=sampler,
                                               eta=config.eta if name == "ddim_stochastic" else 0.0)


def sampling_tolerance(cov, n) -> float:
    """4 root-mean-square relative errors of the covariance of n draws of N(0, cov).

    After any of these samplers the particles are n independent draws of N(0, C) (linear maps of
    Gaussian particles plus independent Gaussian noise), and their covariance misses C by
    ``E |C_n - C|_F^2 = (tr(C)^2 + tr(C^2)) / n``. In d = 2 the squared error is a weighted sum
    of 3 chi-square(1) variables with that mean; 4 rms (16 times the mean) is exceeded with
    probability below 1e-4 even when one of them carries all the weight.
    """
    rms = jnp.sqrt((jnp.trace(cov) ** 2 + jnp.trace(cov @ cov)) / n) / jnp.linalg.norm(cov)
    return 4 * float(rms)


def rounding_tolerance(evaluations: int, dtype) -> float:
    """Relative rounding error allowed after `evaluations` linear steps: 100 eps per step (each
    step is a few dozen floating-point operations on O(1) numbers, with a 2 x 2 solve)."""
    return 100 * evaluations * float(jnp.finfo(dtype).eps)


def bures_w2(cov_a, cov_b) -> float:
    zero = jnp.zeros(cov_a.shape[0], cov_a.dtype)
    return float(jnp.sqrt(jnp.maximum(theory.bures_w2_squared(zero, cov_a, zero, cov_b), 0)))


@register(
    "diffusion-gaussian-samplers",
    theme="optimal transport and flow matching",
    config=Config,
    description="Diffusion samplers (reverse SDE, PF-ODE, DDIM, EDM-Heun, DPM-Solver-2) on a "
                "Gaussian: particles vs the exact covariance recursion, orders vs theory.",
)
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    process = VP()
    cov0 = covariance0(config, dtype)
    t_max, t_min = (jnp.asarray(t, dtype) for t in (config.t_max, config.t_min))
    cov_start = theory.diffusion_covariance(cov0, process.alpha(t_max), process.sigma(t_max))
    target = theory.diffusion_covariance(cov0, process.alpha(t_min), process.sigma(t_min))
    start_key, run_key = jax.random.split(key)
    x = start_particles(start_key, cov_start, config.n)
    model = exact_score(process, cov0)
    ladder = np.asarray(config.steps)

    result = Result("diffusion-gaussian-samplers", dataclasses.asdict(config))
    errors, w2, particle_errors, sampled_errors = {}, {}, {}, {}
    moment = lambda y: y.T @ y / y.shape[0]  # uncentred: exactly linear in the steps
    gridded = [name for name in SAMPLERS if name in config.samplers]
    for name in gridded:
        _, _, stochastic, per_step, order = SAMPLERS[name]
        covs = {k: recursion(name, process, cov0, cov_start, k, config)
                for k in {*map(int, ladder), config.particle_steps}}
        errors[name] = np.array([float(metrics.relative_error(covs[k], target)) for k in ladder])
        w2[name] = np.array([bures_w2(covs[k], target) for k in ladder])
        slope = -np.polyfit(np.log(ladder), np.log(errors[name]), 1)[0]
        # The particles: the Brownian increments of the reverse SDE are exact at a power-of-two
        # step count (the virtual Brownian tree's nodes fall on the grid).
        sampler_key = jax.random.fold_in(run_key, list(SAMPLERS).index(name))
        out = sample(name, model, process, x, sampler_key, config.particle_steps, config)
        if stochastic:
            expected = covs[config.particle_steps]
            tolerance = sampling_tolerance(expected, config.n)
            why = f"4 rms sampling errors of n = {config.n} (from the population start)"
        else:
            # Deterministic: the recursion from the particles' own start moment predicts their
            # end moment up to rounding, about eps per operation and per model evaluation.
            expected = recursion(name, process, cov0, moment(x), config.particle_steps, config)
            tolerance = rounding_tolerance(per_step * config.particle_steps, dtype)
            why = "rounding (from the particles' own start moment)"
        particle_errors[name] = float(metrics.relative_error(moment(out.x), expected))
        sampled_errors[name] = float(metrics.relative_error(moment(out.x), target))
        result.checks += [
            close(f"{name}: particle covariance vs recursion", moment(out.x), expected, tolerance,
                  against=f"theory.diffusion_sampler_covariance at {config.particle_steps} "
                          f"steps; tolerance: {why}"),
            close(f"{name}: fitted order", slope, order, config.order_tolerance, relative=False,
                  against=f"theoretical order {order} of the scheme; slope of log error vs log "
                          f"steps of the recursion over {tuple(config.steps)}"),
            at_most(f"{name}: sampled covariance error vs the exact marginal",
                    sampled_errors[name], config.max_error,
                    against=f"max_error: the sampler at {config.particle_steps} steps must "
                            f"land near N(0, alpha^2 cov0 + sigma^2 I) at t_min"),
        ]
        result.metrics.update({
            f"{name}_order": float(slope),
            f"{name}_error_at_{int(ladder[-1])}_steps": float(errors[name][-1]),
            f"{name}_particle_vs_recursion": particle_errors[name],
            f"{name}_nfe": int(out.nfe),
        })
        result.arrays[f"{name}_nfe"] = per_step * ladder

    if "probability_flow_tsit5" in config.samplers:
        # Adaptive probability flow: no fixed grid, so the reference is the exact flow's
        # marginal (tolerance: the sampling error plus the solver's, at most 10 rtol relative).
        adaptive = sample_probability_flow(model, process, x, prediction="score",
                                           rtol=config.rtol, atol=config.rtol,
                                           t_max=config.t_max, t_min=config.t_min)
        result.checks.append(close(
            "probability_flow_tsit5 (adaptive): particle covariance vs the exact marginal",
            moment(adaptive.x), target,
            sampling_tolerance(target, config.n) + 10 * config.rtol,
            against=f"diffusion_covariance at t_min; 4 rms sampling errors of n = {config.n} + "
                    f"10 rtol"))
        result.metrics["probability_flow_tsit5_nfe"] = int(adaptive.nfe)

    result.arrays.update({"steps": ladder, **{f"{k}_error": v for k, v in errors.items()},
                          **{f"{k}_w2": v for k, v in w2.items()}})
    fig, axes = figure(2, size=4.2)
    for j, name in enumerate(gridded):
        per_step = SAMPLERS[name][3]
        style = {"color": f"C{j}", "marker": "o", "ms": 3, "label": name}
        axes[0, 0].loglog(per_step * ladder, errors[name], **style)
        axes[0, 0].plot(per_step * config.particle_steps, sampled_errors[name], "x",
                        color=f"C{j}")
        axes[0, 1].loglog(per_step * ladder, w2[name], **style)
    axes[0, 0].set(xlabel="model evaluations (NFE)", ylabel="relative covariance error",
                   title=f"recursion (lines) and n = {config.n} particles (x)\nvs the exact "
                         f"marginal at t_min")
    axes[0, 1].set(xlabel="model evaluations (NFE)", ylabel="W2 to the exact marginal",
                   title="Bures W2")
    axes[0, 0].legend(fontsize=7)
    result.figures["error_vs_nfe"] = fig
    return result
