"""FFJORD continuous normalizing flows on 2-D toy data, trained by maximum likelihood.

The held-out NLL (exact trace) is checked three ways on the same test points, each with a margin
of 5 standard errors of the paired per-point difference (``std / sqrt(n_test)``): below that of
the same network untrained (and by 0.1 nats more), below that of the maximum-likelihood Gaussian
of the training data (a flow that cannot beat one Gaussian has learned nothing of the shape), and
above the data's own NLL under its exact density (Gibbs: cross-entropy >= entropy, so only an
unnormalised model goes below). Sanity checks from the change of variables, which hold for any
network: the density integrates to one on a grid, backward-then-forward reconstruction, and the
Hutchinson estimate agrees in mean with the exact trace. The data set is one with an exact
density (moons, circles or 8gaussians).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import multivariate_normal

from .. import datasets
from .._plotting import figure
from .._simulate import simulate
from ..learn import CNF, LikelihoodLoss, fit
from ..learn._flow_matching import Reversed
from ..measures import isotropic_log_prob
from . import _toy_densities
from ._config import validate
from ._registry import register
from ._result import Result, at_least, at_most, better, close, fit_ok
from ._training import adam, chunk_size


@dataclasses.dataclass(frozen=True)
class Config:
    data: str = "moons"
    n: int = 2000
    train_steps: int = 600
    batch: int = 256
    width: int = 64
    ode_steps: int = 8
    trace: str = "exact"
    learning_rate: float = 5e-3
    grid: int = 100
    probes: int = 64
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("learning_rate",),
                 counts=("n", "train_steps", "batch", "width", "ode_steps", "grid", "probes"),
                 choices={"data": _toy_densities.NAMES, "trace": ("exact", "hutchinson")})
        if self.grid < 2 or self.probes < 2:
            raise ValueError(f"config fields 'grid' and 'probes' of cnf-2d must be >= 2, got "
                             f"{self.grid} and {self.probes}.")

    @classmethod
    def quick(cls):
        return cls(n=500, train_steps=100, batch=128, width=32, ode_steps=4, grid=50, probes=16)


@eqx.filter_jit
def _setup(config: Config, key):
    """Training and test data and the initial model, in one compilation."""
    k_data, k_init, k_test = jax.random.split(key, 3)
    x = datasets.sample(config.data, k_data, config.n)
    x_test = datasets.sample(config.data, k_test, min(config.n, 500))
    return x, x_test, CNF(2, width=config.width, steps=config.ode_steps, key=k_init)


@eqx.filter_jit
def _evaluate(model: CNF, x, x_test, config: Config, key):
    """Every measurement of a model in one compilation (before and after training): the exact
    log-density on the test points and a grid, Hutchinson estimates, the reconstruction and
    samples."""
    k_probe, k_sample = jax.random.split(key)
    lim = jnp.max(jnp.abs(x)) + 1.0
    g = jnp.linspace(-lim, lim, config.grid, dtype=x.dtype)
    grid = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
    n_test = x_test.shape[0]
    # One exact backward solve for the test points and the grid together (what
    # ``model.log_prob`` does); its end points are also the test points' base points.
    back = simulate(Reversed(model.field), jnp.concatenate([x_test, grid]), log_density="exact",
                    solver=model.solver, steps=model.steps)
    both = isotropic_log_prob(back.x1) - back.logp[-1]
    exact, density = both[:n_test], jnp.exp(both[n_test:]).reshape(config.grid, config.grid)
    probes = jax.random.split(k_probe, config.probes)
    hutch = jax.vmap(lambda k: model.log_prob(x_test, trace="hutchinson", key=k))(probes)
    # ``forward`` refuses non-finite points: a NaN model's base points are replaced by zeros
    # and its reconstruction error made NaN
    base = back.x1[:n_test]
    finite = jnp.all(jnp.isfinite(base))
    recon = model.forward(jnp.where(finite, base, 0.0))
    nan = jnp.asarray(jnp.nan, base.dtype)
    return {
        "lim": lim,
        "exact": exact,
        "density": density,
        "hutch": hutch,
        "stderr": jnp.std(jnp.mean(hutch, axis=1)) / np.sqrt(config.probes),
        "mass": jnp.sum(density) * (g[1] - g[0]) ** 2,
        "recon_err": jnp.where(finite, jnp.max(jnp.linalg.norm(recon - x_test, axis=1)), nan),
        "samples": model.sample(k_sample, n_test),
    }


@register(
    "cnf-2d",
    theme="continuous-time networks",
    config=Config,
    description="FFJORD on 2-D data: NLL, density mass on a grid, reconstruction, Hutchinson.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    k_setup, k_fit, k_eval = jax.random.split(key, 3)
    x, x_test, model = _setup(config, k_setup)
    initial = _evaluate(model, x, x_test, config, k_eval)
    loss = LikelihoodLoss(x, batch=config.batch, trace=config.trace)
    fitted = fit(loss, model, adam(config.learning_rate), k_fit, steps=config.train_steps,
                 chunk=chunk_size(config.train_steps), checkpoint=checkpoint,
                 resume=checkpoint is not None)
    model = fitted.model
    out = {k: np.asarray(v) for k, v in _evaluate(model, x, x_test, config, k_eval).items()}
    x, x_test = np.asarray(x, np.float64), np.asarray(x_test, np.float64)
    lim = float(out["lim"])
    exact, hutch, density, samples = out["exact"], out["hutch"], out["density"], out["samples"]
    stderr, mass, recon_err = out["stderr"], float(out["mass"]), float(out["recon_err"])
    # Per-point held-out NLLs: the trained model, the same network untrained, the
    # maximum-likelihood Gaussian of the training data, and the exact data density.
    nll = -exact.astype(np.float64)
    untrained = -np.asarray(initial["exact"], np.float64)
    gaussian = -multivariate_normal(np.mean(x, axis=0), np.cov(x.T)).logpdf(x_test)
    truth = -_toy_densities.log_density(config.data, x_test)
    paired_error = lambda other: np.std(nll - other) / np.sqrt(nll.size)

    result = Result("cnf-2d", dataclasses.asdict(config))
    result.metrics.update({
        "test_nll_exact": float(np.mean(nll)),
        "test_nll_untrained": float(np.mean(untrained)),
        "test_nll_best_gaussian": float(np.mean(gaussian)),
        "test_nll_data_density": float(np.mean(truth)),
        "test_nll_hutchinson_mean_over_probes": float(-np.mean(hutch)),
        "hutchinson_per_point_rms_deviation": float(np.sqrt(np.mean((hutch[0] - exact) ** 2))),
        "density_mass_on_grid": mass,
        "reconstruction_max_error": recon_err,
        "final_train_loss": float(np.mean(fitted.losses[-10:])),
        "fit_seconds": fitted.seconds,
    })
    result.checks += [
        fit_ok("training", fitted),
        better("held-out NLL: trained vs untrained", np.mean(nll), np.mean(untrained),
               margin=0.1 + 5 * paired_error(untrained),
               against="the same network at initialisation, same test points (margin 0.1 nats "
                       "+ 5 standard errors of the paired difference)"),
        better("held-out NLL: trained vs best single Gaussian", np.mean(nll), np.mean(gaussian),
               margin=5 * paired_error(gaussian),
               against="maximum-likelihood Gaussian of the training data (scipy), same test "
                       "points (margin 5 standard errors of the paired difference)"),
        at_least("held-out NLL >= NLL under the exact data density", np.mean(nll),
                 np.mean(truth) - 5 * paired_error(truth), kind="theory",
                 against="Gibbs' inequality; the data density by quadrature over its curve, "
                         "same test points, less 5 standard errors of the paired difference"),
        close("density integrates to one on the grid", mass, 1.0, 0.05, relative=False,
              kind="sanity", against="normalisation; 0.05 allows the Riemann sum's error and the "
                                     "mass outside the box (data range + 1)"),
        at_most("backward-then-forward reconstruction error", recon_err, 1e-2,
                against="the RK4 solves each way invert each other to O(h^4); 1e-2 absolute"),
        at_most("|Hutchinson mean - exact mean| in standard errors",
                float(np.abs(np.mean(hutch) - np.mean(exact)) / stderr), 4.0,
                against="Hutchinson's estimator is unbiased; 4 standard errors over the probes"),
    ]
    result.arrays.update({"density": density, "samples": samples,
                          "losses": fitted.losses})
    fig, axes = figure(3, size=3.4)
    axes[0, 0].scatter(x[:, 0], x[:, 1], s=2)
    axes[0, 0].set_title(f"data ({config.data})", fontsize=9)
    axes[0, 1].imshow(np.asarray(density), origin="lower", extent=(-lim, lim, -lim, lim))
    axes[0, 1].set_title(f"learned density (mass {mass:.3f})", fontsize=9)
    axes[0, 2].scatter(samples[:, 0], samples[:, 1], s=2, color="C1")
    axes[0, 2].set_title("samples (forward flow)", fontsize=9)
    for ax in axes[0]:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    result.figures["density_and_samples"] = fig
    return result
