"""FFJORD continuous normalizing flows on 2-D toy data, trained by maximum likelihood.

Checks that follow from the change of variables: the learned density integrates to one on a grid;
mapping data back to the base and forward again returns the data; the Hutchinson estimate of the
log-likelihood agrees in expectation with the exact one (difference of the means within a few
standard errors).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import datasets
from .._plotting import figure
from .._simulate import simulate
from ..learn import CNF, LikelihoodLoss, fit
from ..learn._cnf import standard_normal_log_prob
from ..learn._flow_matching import Reversed
from ._registry import register
from ._result import Result, check
from ._training import chunk_size


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
    """Every measurement of the trained model in one compilation: the exact log-density on the
    test points and a grid, Hutchinson estimates, the reconstruction and samples."""
    k_probe, k_sample = jax.random.split(key)
    lim = jnp.max(jnp.abs(x)) + 1.0
    g = jnp.linspace(-lim, lim, config.grid, dtype=x.dtype)
    grid = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
    n_test = x_test.shape[0]
    # One exact backward solve for the test points and the grid together (what
    # ``model.log_prob`` does); its end points are also the test points' base points.
    back = simulate(Reversed(model.field), jnp.concatenate([x_test, grid]), log_density="exact",
                    solver=model.solver, steps=model.steps)
    both = standard_normal_log_prob(back.x1) - back.logp[-1]
    exact, density = both[:n_test], jnp.exp(both[n_test:]).reshape(config.grid, config.grid)
    probes = jax.random.split(k_probe, config.probes)
    hutch = jax.vmap(lambda k: model.log_prob(x_test, trace="hutchinson", key=k))(probes)
    recon = model.forward(back.x1[:n_test])
    return {
        "lim": lim,
        "exact": exact,
        "density": density,
        "hutch": hutch,
        "stderr": jnp.std(jnp.mean(hutch, axis=1)) / np.sqrt(config.probes),
        "mass": jnp.sum(density) * (g[1] - g[0]) ** 2,
        "recon_err": jnp.max(jnp.linalg.norm(recon - x_test, axis=1)),
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
    loss = LikelihoodLoss(x, batch=config.batch, trace=config.trace)
    fitted = fit(loss, model, optax.adam(config.learning_rate), k_fit, steps=config.train_steps,
                 chunk=chunk_size(config.train_steps), checkpoint=checkpoint,
                 resume=checkpoint is not None, progress=False)
    model = fitted.model
    out = {k: np.asarray(v) for k, v in _evaluate(model, x, x_test, config, k_eval).items()}
    x = np.asarray(x)
    lim = float(out["lim"])
    exact, hutch, density, samples = out["exact"], out["hutch"], out["density"], out["samples"]
    stderr, mass, recon_err = out["stderr"], float(out["mass"]), float(out["recon_err"])

    result = Result("cnf-2d", dataclasses.asdict(config))
    result.metrics.update({
        "test_nll_exact": float(-np.mean(exact)),
        "test_nll_hutchinson_mean_over_probes": float(-np.mean(hutch)),
        "hutchinson_per_point_rms_deviation": float(np.sqrt(np.mean((hutch[0] - exact) ** 2))),
        "density_mass_on_grid": mass,
        "reconstruction_max_error": recon_err,
        "final_train_loss": float(np.mean(fitted.losses[-10:])),
        "fit_seconds": fitted.seconds,
    })
    result.checks += [
        check("density integrates to one on the grid", mass, 1.0, 0.05),
        check("backward-then-forward reconstruction", recon_err, 0.0, 1e-2, relative=False),
        check("Hutchinson mean - exact mean, in standard errors",
              float(np.abs(np.mean(hutch) - np.mean(exact)) / stderr), 0.0, 4.0,
              relative=False),
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
