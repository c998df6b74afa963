"""OT-Flow on two moons: likelihood plus transport cost plus HJB penalty, against likelihood alone.

Both models use the same potential network and exact structured Hessian trace; one is trained
with OT-Flow's weights (transport 1, likelihood 10, HJB 5, as in the public two-moons run), the
other with the likelihood term only. The transport penalty should make the trajectories
straighter (``metrics.straightness``, 1 for straight constant-speed paths) and sampling cheaper:
an adaptive solver (Tsit5, rtol 1e-5) needs fewer field evaluations to integrate the learned field.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .. import datasets, metrics
from .._plotting import figure, paths
from ..learn import OTFlow, OTFlowLoss, fit
from ._registry import register
from ._result import Result, check
from ._training import chunk_size, sub_folder


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

    @classmethod
    def quick(cls):
        return cls(train_steps=150, batch=128, n_eval=400, grid=40)


@eqx.filter_jit
def _evaluate(model, x_eval, grid, key, saved):
    """Terms, fine paths, adaptive sampling and the density on a grid, in one compilation (the
    second model has the same structure and reuses it)."""
    flow = model.integrate(x_eval, steps=saved - 1, saveat=saved)
    samples, traj = model.sample(key, x_eval.shape[0], solver="tsit5", steps=None, rtol=1e-5,
                                 atol=1e-5)
    return model.terms(x_eval), flow, samples, traj, model.log_prob(grid)


@register(
    "otflow-moons",
    theme="continuous-time networks",
    config=Config,
    description="OT-Flow on two moons: NLL, transport cost, HJB residual, straightness, NFE.",
)
def run(config: Config, key, checkpoint=None) -> Result:
    k_init, k_fit, k_eval, k_sample = jax.random.split(key, 4)
    sampler = lambda k: datasets.sample("moons", k, config.batch)
    x_eval = datasets.sample("moons", k_eval, config.n_eval)
    transport, likelihood, hjb = config.weights
    runs = {"otflow": (transport, likelihood, hjb), "likelihood_only": (0.0, likelihood, 0.0)}
    result = Result("otflow-moons", dataclasses.asdict(config))
    fig, axes = figure(3, 2, size=3.4)
    lim = 4.5
    g = jnp.linspace(-lim, lim, config.grid, dtype=x_eval.dtype)
    grid = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
    saved = 4 * config.ode_steps + 1
    # The same initial model, sampler and optimizer for both runs: the losses differ only in
    # their weights (arrays), so ``fit`` compiles one training step for both.
    initial = OTFlow(2, width=config.width, steps=config.ode_steps, key=k_init)
    optimizer = optax.adam(config.learning_rate)
    for row, (name, (a_l, a_c, a_r)) in enumerate(runs.items()):
        loss = OTFlowLoss(sampler, transport=a_l, likelihood=a_c, hjb=a_r)
        folder = sub_folder(checkpoint, name)
        fitted = fit(loss, initial, optimizer, k_fit,
                     steps=config.train_steps, chunk=chunk_size(config.train_steps),
                     checkpoint=folder, resume=folder is not None, progress=False)
        model = fitted.model
        terms, flow, samples, traj, log_density = _evaluate(model, x_eval, grid, k_sample, saved)
        xs = flow.xs[:, :, :2]
        density = jnp.exp(log_density).reshape(config.grid, config.grid)
        mass = float(jnp.sum(density) * (g[1] - g[0]) ** 2)
        result.metrics.update({
            f"{name}_nll": float(terms["nll"]),
            f"{name}_transport_cost": float(terms["transport"]),
            f"{name}_hjb_residual": float(terms["hjb"]),
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
        axes[row, 1].set_title(f"density, NLL {float(terms['nll']):.3f}", fontsize=8)
        axes[row, 2].scatter(samples[:, 0], samples[:, 1], s=2, color="C1")
        axes[row, 2].set_title(f"samples, NFE {int(traj.stats['num_field_evals'])}", fontsize=8)
        axes[row, 2].set_xlim(-lim, lim)
        axes[row, 2].set_ylim(-lim, lim)
        result.checks.append(check(f"{name}: density integrates to one", mass, 1.0, 0.05))
    m = result.metrics
    result.checks += [
        check("transport penalty straightens paths",
              max(0.0, m["likelihood_only_straightness"] - m["otflow_straightness"]), 0.0, 0.0,
              relative=False),
        check("transport penalty lowers transport cost",
              max(0.0, m["otflow_transport_cost"] - m["likelihood_only_transport_cost"]), 0.0,
              0.0, relative=False),
    ]
    result.figures["paths_density_samples"] = fig
    return result
