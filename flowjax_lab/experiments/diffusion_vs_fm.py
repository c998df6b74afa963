"""Diffusion and flow matching are one model, up to a change of time and scale.

On the Gaussian target N(0, cov0), with exact models: ``y = x_t / (alpha + sigma)`` lies on the
flow-matching path from N(0, I) at ``tau = alpha / (alpha + sigma)``, so the VP diffusion model read
through this time change (``diffusion.to_flow_matching``) is ``learn``'s flow-matching field
``GaussianFlowMatching(I, cov0)``; DDIM on VP and DDIM on the flow-matching path (its Euler
sampler) on the same log-SNR grid move the same points, scaled by ``alpha + sigma``; and ``learn``'s
Euler sampler follows the flow-matching path's covariance recursion. What differs is the time grid:
the model evaluations each sampler needs to reach a W2 target are compared (theory recursions), and
the straightness of the exact paths is measured.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import metrics, theory
from .._plotting import figure
from .._simulate import simulate
from ..diffusion import VP, FlowMatchingPath, ProbabilityFlow, ddim, time_grid, to_flow_matching
from ..fields import GaussianFlowMatching
from ..learn import Reversed, generate
from ..measures import Gaussian
from ._config import validate
from ._registry import register
from ._result import Result, at_most, close
from .diffusion_gaussian_samplers import ExactScore, covariance0, rounding_tolerance


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 20000
    eigenvalues: tuple = (2.0, 0.1)
    rotation: float = 0.6  # angle of the principal axes of cov0, radians
    t_min: float = 1e-3  # of the VP samplers (the flow-matching path runs to tau = 1)
    steps: tuple = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # the ladder for NFE to target
    particle_steps: int = 16
    w2_target: float = 0.03  # Bures W2 to each sampler's exact target
    saved_times: int = 33  # of the paths whose straightness is measured
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("eigenvalues", "t_min", "w2_target"),
                 counts=("n", "steps", "particle_steps", "saved_times"))
        if self.t_min >= 1:
            raise ValueError(f"config field 't_min' of diffusion-vs-fm must be < 1, got "
                             f"{self.t_min!r}.")

    @classmethod
    def quick(cls):
        return cls(n=4000)


def flow_matching_field(cov0):
    """``learn``'s exact flow-matching field from N(0, I) to N(0, cov0) (faults replace it)."""
    return GaussianFlowMatching(jnp.eye(cov0.shape[0], dtype=cov0.dtype), cov0)


def to_path(x, process, t):
    """Points at time t of `process` moved to the flow-matching path: ``x / (alpha + sigma)``."""
    return x / (process.alpha(t) + process.sigma(t))


# name -> (process name, theory sampler, spacing, evaluations per step)
SAMPLERS = {
    "vp_probability_flow_euler": ("vp", "probability_flow_euler", "uniform", 1),
    "vp_ddim_log_snr": ("vp", "ddim", "log_snr", 1),
    "vp_heun_edm": ("vp", "heun_edm", "edm", 2),
    "vp_dpm_solver_2": ("vp", "dpm_solver_2", "log_snr", 2),
    "fm_euler": ("fm", "probability_flow_euler", "uniform", 1),
    "fm_heun": ("fm", "probability_flow_heun", "uniform", 2),
}


def nfe_to_target(nfe, w2, target) -> float:
    """The fewest evaluations of the ladder reaching `target` (NaN if none does)."""
    reached = np.flatnonzero(np.asarray(w2) <= target)
    return float(nfe[reached[0]]) if reached.size else float("nan")


@register(
    "diffusion-vs-fm",
    theme="optimal transport and flow matching",
    config=Config,
    description="VP diffusion and flow matching as one model through the exact time change; "
                "evaluations to a W2 target and path straightness compared.",
)
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    vp, fm = VP(), FlowMatchingPath()
    processes = {"vp": vp, "fm": fm}
    cov0 = covariance0(config, dtype)
    d = cov0.shape[0]
    zero, eye = jnp.zeros(d, dtype), jnp.eye(d, dtype=dtype)
    one, t_min = jnp.asarray(1.0, dtype), jnp.asarray(config.t_min, dtype)
    ends = {"vp": (1.0, config.t_min), "fm": (1.0, 0.0)}  # FM: noise (tau = 0) to data
    starts = {"vp": theory.diffusion_covariance(cov0, vp.alpha(one), vp.sigma(one)), "fm": eye}
    targets = {"vp": theory.diffusion_covariance(cov0, vp.alpha(t_min), vp.sigma(t_min)),
               "fm": cov0}
    k_start, k_noise = jax.random.split(key)
    x = Gaussian(zero, starts["vp"]).sample(k_start, config.n)
    noise = Gaussian(zero, eye).sample(k_noise, config.n)
    model = ExactScore(vp, cov0)
    field = flow_matching_field(cov0)
    result = Result("diffusion-vs-fm", dataclasses.asdict(config))

    # 1. The time change, pointwise: the VP model read as a flow-matching velocity.
    converted = to_flow_matching(model, vp, "score")
    taus = jnp.linspace(0.1, 0.9, 9, dtype=dtype)
    gap = max(float(metrics.relative_error(converted(tau, noise), field(tau, noise)))
              for tau in taus)
    # 2. DDIM on VP and on the flow-matching path over the same log-SNR grid.
    # The flow-matching path's times t = 1 - tau = sigma / (alpha + sigma) of VP's ends.
    fm_times = [float(vp.sigma(t) / (vp.alpha(t) + vp.sigma(t))) for t in (one, t_min)]
    vp_ddim = ddim(model, vp, x, prediction="score", steps=config.particle_steps,
                   spacing="log_snr", t_min=config.t_min).x
    fm_ddim = ddim(ExactScore(fm, cov0), fm, to_path(x, vp, one), prediction="score",
                   steps=config.particle_steps, spacing="log_snr", t_max=fm_times[0],
                   t_min=fm_times[1]).x
    # 3. learn's Euler sampler vs the flow-matching path's recursion (from the particles' own
    # start moment: exact up to rounding).
    moment = lambda y: y.T @ y / y.shape[0]
    euler = generate(field, noise, steps=config.particle_steps).x1
    fm_grid = time_grid(fm, config.particle_steps, t_max=1.0, t_min=0.0, dtype=dtype)
    euler_expected = theory.diffusion_sampler_covariance(
        cov0, moment(noise), fm_grid, fm.alpha, fm.sigma, sampler="probability_flow_euler")
    tolerance = rounding_tolerance(2 * config.particle_steps, dtype)
    result.checks += [
        close("time change: VP model as a flow-matching velocity vs GaussianFlowMatching", gap,
              0.0, tolerance, relative=False,
              against="learn's exact flow-matching field at tau in [0.1, 0.9] (max relative "
                      "error); tolerance: rounding"),
        close("time change: DDIM on VP vs DDIM on the flow-matching path (scaled points)",
              vp_ddim, (vp.alpha(t_min) + vp.sigma(t_min)) * fm_ddim, tolerance,
              against="the same points: x = (alpha + sigma) y on the same log-SNR grid; "
                      "tolerance: rounding"),
        close("learn's flow-matching Euler vs the flow-matching path recursion", moment(euler),
              euler_expected, tolerance,
              against="theory.diffusion_sampler_covariance('probability_flow_euler') on the "
                      "FM path, t = 1 - tau; tolerance: rounding"),
    ]

    # 4. Evaluations to reach the W2 target, from the theory recursions.
    ladder = np.asarray(config.steps)
    w2, nfe = {}, {}
    for name, (which, sampler, spacing, per_step) in SAMPLERS.items():
        process = processes[which]
        t_max, t_end = ends[which]
        curve = []
        for k in ladder:
            ts = time_grid(process, int(k), spacing=spacing, t_max=t_max, t_min=t_end,
                           dtype=dtype)
            cov = theory.diffusion_sampler_covariance(cov0, starts[which], ts, process.alpha,
                                                      process.sigma, sampler=sampler)
            curve.append(float(jnp.sqrt(jnp.maximum(
                theory.bures_w2_squared(zero, cov, zero, targets[which]), 0))))
        w2[name], nfe[name] = np.asarray(curve), per_step * ladder
        reached = nfe_to_target(nfe[name], w2[name], config.w2_target)
        result.metrics[f"{name}_nfe_to_w2_target"] = reached
        result.checks.append(at_most(
            f"{name}: evaluations to W2 <= {config.w2_target}", reached, float(nfe[name][-1]),
            against="reached within the ladder (the recursion converges to the exact target)"))

    # 5. Straightness of the exact paths (adaptive solves).
    saved = config.saved_times
    vp_path = simulate(Reversed(ProbabilityFlow(model, vp, "score")), x[:512], t0=0.0,
                       t1=1 - config.t_min, saveat=saved)
    fm_path = generate(field, noise[:512], saveat=saved)
    result.metrics.update({
        "vp_straightness": float(metrics.straightness(vp_path.xs, vp_path.ts)),
        "fm_straightness": float(metrics.straightness(fm_path.xs, fm_path.ts)),
        "time_change_max_relative_gap": gap,
    })
    result.arrays.update({"steps": ladder, **{f"{k}_w2": v for k, v in w2.items()}})
    fig, axes = figure(2, size=4.2)
    for j, name in enumerate(SAMPLERS):
        axes[0, 0].loglog(nfe[name], w2[name], "o-", ms=3, color=f"C{j}", label=name)
    axes[0, 0].axhline(config.w2_target, color="k", lw=0.8, ls="--")
    axes[0, 0].set(xlabel="model evaluations (NFE)", ylabel="W2 to the exact target",
                   title="theory recursions")
    axes[0, 0].legend(fontsize=7)
    for xs, color, label in ((vp_path.xs, "C0", "VP probability flow"),
                             (fm_path.xs, "C4", "flow matching")):
        xs = np.asarray(xs)
        for i in range(40):
            axes[0, 1].plot(xs[:, i, 0], xs[:, i, 1], color=color, lw=0.6, alpha=0.6,
                            label=label if i == 0 else None)
    axes[0, 1].set(title="exact paths", aspect="equal")
    axes[0, 1].legend(fontsize=7)
    result.figures["diffusion_vs_fm"] = fig
    return result
