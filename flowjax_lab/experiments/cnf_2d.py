"""FFJORD continuous normalizing flows on 2-D toy data, trained by maximum likelihood.

Checks that follow from the change of variables: the learned density integrates to one on a grid;
mapping data back to the base and forward again returns the data; the Hutchinson estimate of the
log-likelihood agrees in expectation with the exact one (difference of the means within a few
standard errors).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import datasets
from .._plotting import figure
from ..learn import CNF, LikelihoodLoss, fit
from ._registry import register
from ._result import Result, check


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


@register(
    "cnf-2d",
    theme="continuous-time networks",
    config=Config,
    description="FFJORD on 2-D data: NLL, density mass on a grid, reconstruction, Hutchinson.",
)
def run(config: Config, key) -> Result:
    k_data, k_init, k_fit, k_test, k_probe, k_sample = jax.random.split(key, 6)
    x = datasets.sample(config.data, k_data, config.n)
    x_test = datasets.sample(config.data, k_test, min(config.n, 500))
    model = CNF(2, width=config.width, steps=config.ode_steps, key=k_init)
    loss = LikelihoodLoss(x, batch=config.batch, trace=config.trace)
    fitted = fit(loss, model, optax.adam(config.learning_rate), k_fit, steps=config.train_steps,
                 chunk=config.train_steps, progress=False)
    model = fitted.model

    lim = float(jnp.max(jnp.abs(x))) + 1.0
    g = jnp.linspace(-lim, lim, config.grid, dtype=x.dtype)
    grid = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
    n_test = x_test.shape[0]
    # One exact solve for the test points and the grid together.
    both = model.log_prob(jnp.concatenate([x_test, grid]))
    exact, density = both[:n_test], jnp.exp(both[n_test:]).reshape(config.grid, config.grid)
    probes = jax.random.split(k_probe, config.probes)
    hutch = jax.vmap(lambda k: model.log_prob(x_test, trace="hutchinson", key=k))(probes)
    stderr = jnp.std(jnp.mean(hutch, axis=1)) / np.sqrt(config.probes)
    mass = float(jnp.sum(density) * (g[1] - g[0]) ** 2)
    recon = model.forward(model.inverse(x_test))
    recon_err = float(jnp.max(jnp.linalg.norm(recon - x_test, axis=1)))
    samples = model.sample(k_sample, n_test)  # same shapes as `forward`: no new compilation

    result = Result("cnf-2d", dataclasses.asdict(config))
    result.metrics.update({
        "test_nll_exact": float(-jnp.mean(exact)),
        "test_nll_hutchinson_mean_over_probes": float(-jnp.mean(hutch)),
        "hutchinson_per_point_rms_deviation": float(jnp.sqrt(jnp.mean((hutch[0] - exact) ** 2))),
        "density_mass_on_grid": mass,
        "reconstruction_max_error": recon_err,
        "final_train_loss": float(np.mean(fitted.losses[-10:])),
        "fit_seconds": fitted.seconds,
    })
    result.checks += [
        check("density integrates to one on the grid", mass, 1.0, 0.05),
        check("backward-then-forward reconstruction", recon_err, 0.0, 1e-2, relative=False),
        check("Hutchinson mean - exact mean, in standard errors",
              float(jnp.abs(jnp.mean(hutch) - jnp.mean(exact)) / stderr), 0.0, 4.0,
              relative=False),
    ]
    result.arrays.update({"density": np.asarray(density), "samples": np.asarray(samples),
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
