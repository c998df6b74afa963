"""OT-Flow on two moons: likelihood plus transport cost plus HJB penalty, against likelihood alone.

Both models use the same potential network and exact structured Hessian trace; one is trained
with OT-Flow's weights (transport 1, likelihood 10, HJB 5, as in the public two-moons run), the
other with the likelihood term only. The transport penalty should make the trajectories
straighter (``metrics.straightness``, 1 for straight constant-speed paths) and cheaper, and the
HJB penalty should shrink the HJB residual; an adaptive solver (Tsit5, rtol 1e-5) counts the field
evaluations that sampling needs.

Each model's held-out NLL is checked on the same points against the same network untrained, the
maximum-likelihood Gaussian (which a model that learned the moons must beat) and the exact moons
density (which no normalised model can beat: Gibbs' inequality). Margins are 5 standard errors of
the paired per-point differences. The quick run trains 300 steps: at 150 the penalised model's
NLL was still that of a single Gaussian."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import multivariate_normal

from .. import datasets, metrics
from .._plotting import figure, paths
from ..learn import OTFlow, OTFlowLoss, fit
from ..measures import isotropic_log_prob
from . import _toy_densities
from ._config import validate
from ._registry import register
from ._result import Result, at_least, better, close, fit_ok
from ._training import adam, chunk_size, sub_folder


@dataclasses.dataclass(frozen=True)
class Config:
    train_steps: int = 1500
    batch: int = 256
    width: int = 32
    ode_steps: int = 4
    weights: tuple = (1.0, 10.0, 5.0)  # transport, likelihood, HJB
    learning_rate: float = 1e-2
    n_eval: int = 1000
    grid: int = 80
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("learning_rate",), nonnegative=("weights",),
                 counts=("train_steps", "batch", "width", "ode_steps", "n_eval", "grid"))
        if len(self.weights) != 3 or self.grid < 2 or self.n_eval < 2:
            raise ValueError(f"otflow-moons needs 3 weights (transport, likelihood, HJB), "
                             f"grid >= 2 and n_eval >= 2, got weights {self.weights!r}, grid "
                             f"{self.grid}, n_eval {self.n_eval}.")

    @classmethod
    def quick(cls):
        return cls(train_steps=400, batch=128, n_eval=400, grid=40)


class _Moons(eqx.Module):
    """Sampler ``key -> (batch, 2)`` of two moons; equal for equal batches, so that runs in one
    process (several seeds, tests) share one compiled training step in ``fit``."""

    batch: int = eqx.field(static=True)

    def __call__(self, key):
        return datasets.sample("moons", key, self.batch)


@eqx.filter_jit
def _evaluate(model, x_eval, grid, key, saved):
    """Per-point terms (the training solve), fine paths, adaptive sampling and the density on a
    grid, in one compilation (the three models have one structure and reuse it)."""
    d = model.dim
    y1 = model.integrate(x_eval).x1  # [z, l, L, R]: log p(x) = log N(z) + l
    terms = {"nll": -(isotropic_log_prob(y1[:, :d]) + y1[:, d]),
             "transport": y1[:, d + 1], "hjb": y1[:, d + 2]}
    flow = model.integrate(x_eval, steps=saved - 1, saveat=saved)
    samples, traj = model.sample(key, x_eval.shape[0], solver="tsit5", steps=None, rtol=1e-5,
                                 atol=1e-5)
    return terms, flow, samples, traj, model.log_prob(grid)


def _straightness_influence(xs, ts) -> np.ndarray:
    """Per-path contributions to ``metrics.straightness`` (mean displacement over mean path
    energy): its linearisation ``(D_i - S E_i) / mean(E)``, whose mean is 0 and whose standard
    deviation over sqrt(n) is the standard error of S (delta method)."""
    xs, ts = np.asarray(xs, np.float64), np.asarray(ts, np.float64)
    displacement = np.sum((xs[-1] - xs[0]) ** 2, axis=-1) / (ts[-1] - ts[0])
    energy = np.sum(np.sum(np.diff(xs, axis=0) ** 2, axis=-1) / np.diff(ts)[:, None], axis=0)
    ratio = np.mean(displacement) / np.mean(energy)
    return (displacement - ratio * energy) / np.mean(energy)


def _paired_error(a, b) -> float:
    """Standard error of ``mean(a) - mean(b)`` over paired per-point values."""
    difference = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.std(difference) / np.sqrt(difference.size))


@register(
    "otflow-moons",
    theme="continuous-time networks",
    config=Config,
    description="OT-Flow on two moons: NLL, transport cost, HJB residual, straightness, NFE.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    k_init, k_fit, k_eval, k_sample, k_gaussian = jax.random.split(key, 5)
    sampler = _Moons(config.batch)
    x_eval = datasets.sample("moons", k_eval, config.n_eval)
    transport, likelihood, hjb = config.weights
    runs = {"otflow": (transport, likelihood, hjb), "likelihood_only": (0.0, likelihood, 0.0)}
    result = Result("otflow-moons", dataclasses.asdict(config))
    fig, axes = figure(3, 2, size=3.4)
    lim = 4.5
    g = jnp.linspace(-lim, lim, config.grid, dtype=x_eval.dtype)
    grid = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
    saved = 4 * config.ode_steps + 1
    # Per-point held-out NLL references: the maximum-likelihood Gaussian of an independent
    # training-like sample, and the exact moons density.
    x_gaussian = np.asarray(datasets.sample("moons", k_gaussian, config.n_eval), np.float64)
    x_points = np.asarray(x_eval, np.float64)
    gaussian = -multivariate_normal(np.mean(x_gaussian, axis=0),
                                    np.cov(x_gaussian.T)).logpdf(x_points)
    truth = -_toy_densities.log_density("moons", x_points)
    # The same initial model, sampler and optimizer for both runs: the losses differ only in
    # their weights (arrays), so ``fit`` compiles one training step for both.
    initial = OTFlow(2, width=config.width, steps=config.ode_steps, key=k_init)
    untrained = np.asarray(_evaluate(initial, x_eval, grid, k_sample, saved)[0]["nll"], np.float64)
    optimizer = adam(config.learning_rate)
    per_point = {}
    for row, (name, (a_l, a_c, a_r)) in enumerate(runs.items()):
        loss = OTFlowLoss(sampler, transport=a_l, likelihood=a_c, hjb=a_r)
        folder = sub_folder(checkpoint, name)
        fitted = fit(loss, initial, optimizer, k_fit,
                     steps=config.train_steps, chunk=chunk_size(config.train_steps),
                     checkpoint=folder, resume=folder is not None)
        terms, flow, samples, traj, log_density = _evaluate(fitted.model, x_eval, grid, k_sample,
                                                            saved)
        xs = flow.xs[:, :, :2]
        terms = {k: np.asarray(v, np.float64) for k, v in terms.items()}
        terms["straightness"] = _straightness_influence(xs, flow.ts)
        per_point[name] = terms
        nll = terms["nll"]
        density = jnp.exp(log_density).reshape(config.grid, config.grid)
        mass = float(jnp.sum(density) * (g[1] - g[0]) ** 2)
        result.metrics.update({
            f"{name}_nll": float(np.mean(nll)),
            f"{name}_transport_cost": float(np.mean(terms["transport"])),
            f"{name}_hjb_residual": float(np.mean(terms["hjb"])),
            f"{name}_straightness": float(metrics.straightness(xs, flow.ts)),
            f"{name}_sampling_field_evals": int(traj.stats["num_field_evals"]),
            f"{name}_density_mass_on_grid": mass,
            f"{name}_fit_seconds": fitted.seconds,
        })
        result.arrays[f"{name}_paths"] = np.asarray(xs[:, :200])
        result.arrays[f"{name}_losses"] = fitted.losses
        paths(axes[row, 0], xs, count=100)
        axes[row, 0].set_title(f"{name}: data -> Gaussian, straightness "
                               f"{result.metrics[f'{name}_straightness']:.3f}", fontsize=8)
        axes[row, 1].imshow(np.asarray(density), origin="lower", extent=(-lim, lim, -lim, lim))
        axes[row, 1].set_title(f"density, NLL {np.mean(nll):.3f}", fontsize=8)
        axes[row, 2].scatter(samples[:, 0], samples[:, 1], s=2, color="C1")
        axes[row, 2].set_title(f"samples, NFE {int(traj.stats['num_field_evals'])}", fontsize=8)
        axes[row, 2].set_xlim(-lim, lim)
        axes[row, 2].set_ylim(-lim, lim)
        result.checks += [
            fit_ok(f"{name}: training", fitted),
            better(f"{name}: held-out NLL vs untrained", np.mean(nll), np.mean(untrained),
                   margin=0.1 + 5 * _paired_error(nll, untrained),
                   against="the same network at initialisation, same held-out points (margin "
                           "0.1 nats + 5 standard errors of the paired difference)"),
            better(f"{name}: held-out NLL vs best single Gaussian", np.mean(nll),
                   np.mean(gaussian), margin=5 * _paired_error(nll, gaussian),
                   against="maximum-likelihood Gaussian of an independent moons sample (scipy), "
                           "same held-out points (margin 5 paired standard errors)"),
            at_least(f"{name}: held-out NLL >= NLL under the exact moons density",
                     np.mean(nll), np.mean(truth) - 5 * _paired_error(nll, truth),
                     kind="theory",
                     against="Gibbs' inequality; the moons density by quadrature over the arcs, "
                             "same held-out points, less 5 paired standard errors"),
            close(f"{name}: density integrates to one on the grid", mass, 1.0, 0.05,
                  relative=False, kind="sanity",
                  against="normalisation; 0.05 allows the Riemann sum's error and the mass "
                          "outside the box [-4.5, 4.5]^2"),
        ]
    result.metrics["untrained_nll"] = float(np.mean(untrained))
    result.metrics["best_gaussian_nll"] = float(np.mean(gaussian))
    result.metrics["data_density_nll"] = float(np.mean(truth))
    penalised, plain = per_point["otflow"], per_point["likelihood_only"]
    m = result.metrics
    # A tie (e.g. the penalties switched off) must fail: margins are 5 standard errors of the
    # paired difference plus 1% of the likelihood-only value.
    margin = lambda term: (5 * _paired_error(penalised[term], plain[term])
                           + 0.01 * np.abs(np.mean(plain[term])))
    result.checks += [
        better("transport penalty straightens paths", m["otflow_straightness"],
               m["likelihood_only_straightness"], lower=False, margin=margin("straightness"),
               against="the likelihood-only model, same initialisation and batches (margin 5 "
                       "paired standard errors by the delta method + 1%)"),
        better("transport penalty lowers the transport cost", m["otflow_transport_cost"],
               m["likelihood_only_transport_cost"], margin=margin("transport"),
               against="the likelihood-only model (margin 5 paired standard errors + 1%)"),
        better("HJB penalty lowers the HJB residual", m["otflow_hjb_residual"],
               m["likelihood_only_hjb_residual"], margin=margin("hjb"),
               against="the likelihood-only model (margin 5 paired standard errors + 1%)"),
    ]
    result.figures["paths_density_samples"] = fig
    return result
