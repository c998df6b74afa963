"""The exact flow-matching field to an empirical target memorizes its training points.

The closed-form field ``E[X1 - X0 | X_t]`` from N(0, I) to the empirical measure of `n_train`
moons points is integrated from fresh noise. Every generated point lands on a training point
(distance ~ solver tolerance), while fresh moons samples sit at the typical nearest-neighbour
distance of the training set: the minimiser of the flow-matching loss reproduces the data, it does
not generalize. The field's exact log-density along the flow (its own divergence) is checked
against the closed-form mixture density ``alpha_t`` at an interior time.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import datasets
from .._plotting import figure, paths
from .._simulate import simulate
from ..fields import ExactFlowMatching
from ..measures import Gaussian
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    n_train: int = 500
    n_generated: int = 2000
    tolerance: float = 1e-6
    t_density: float = 0.9

    @classmethod
    def quick(cls):
        return cls(n_train=100, n_generated=300)


def nearest_distance(x, data):
    """Distance from each row of `x` to its nearest row of `data`, shape `(n,)`."""
    return jnp.sqrt(jax.vmap(lambda xi: jnp.min(jnp.sum((data - xi) ** 2, axis=1)))(x))


@register(
    "fm-memorization",
    theme="optimal transport and flow matching",
    config=Config,
    description="The exact flow-matching field to an empirical target reproduces training points.",
)
def run(config: Config, key) -> Result:
    k_train, k_noise, k_fresh = jax.random.split(key, 3)
    train = datasets.sample("moons", k_train, config.n_train)
    field = ExactFlowMatching(train)
    source = Gaussian.standard(2, train.dtype)
    x0 = source.sample(k_noise, config.n_generated)
    ts = jnp.linspace(0, 1, 21, dtype=train.dtype)
    traj = simulate(field, x0, saveat=ts, rtol=config.tolerance, atol=config.tolerance)
    generated = nearest_distance(traj.x1, train)
    fresh = nearest_distance(datasets.sample("moons", k_fresh, config.n_generated), train)
    hits = jnp.argmin(jax.vmap(lambda xi: jnp.sum((train - xi) ** 2, axis=1))(traj.x1), axis=1)
    distinct = len(np.unique(np.asarray(hits))) / config.n_train

    # Density along the flow: log alpha_t(x_t) = log N(x0) - int_0^t div v, vs the closed form.
    t = config.t_density
    dens = simulate(field, x0[:256], t1=t, log_density="exact", logp0=source.log_prob(x0[:256]),
                    rtol=1e-8, atol=1e-8)
    closed = field.log_prob(t, dens.x1)

    result = Result("fm-memorization", dataclasses.asdict(config))
    result.metrics.update({
        "generated_nearest_distance_median": float(jnp.median(generated)),
        "generated_nearest_distance_max": float(jnp.max(generated)),
        "fresh_nearest_distance_median": float(jnp.median(fresh)),
        "fraction_of_training_points_hit": distinct,
        "num_field_evals": int(traj.stats["num_field_evals"]),
    })
    result.checks += [
        check("generated points on training points (max distance)", jnp.max(generated), 0.0,
              1e3 * config.tolerance, relative=False),
        check("memorized far closer than fresh data (median ratio)",
              jnp.median(generated) / jnp.median(fresh), 0.0, 1e-2, relative=False),
        check(f"log-density along the flow vs mixture density at t={t}", dens.logp[-1], closed,
              1e-5),
    ]
    result.arrays.update({"train": train, "generated": traj.x1, "paths": traj.xs[:, :300]})

    fig, axes = figure(2, size=4.0)
    paths(axes[0, 0], traj.xs, count=150, alpha=0.25)
    axes[0, 0].scatter(train[:, 0], train[:, 1], s=14, facecolors="none", edgecolors="k",
                       label="training points", zorder=4)
    axes[0, 0].legend(fontsize=8, loc="lower left")
    axes[0, 0].set_title("exact FM field: noise -> training points", fontsize=10)
    bins = np.logspace(-10, 0.5, 50)
    axes[0, 1].hist(np.asarray(generated).clip(1e-10), bins=bins, alpha=0.7, label="generated")
    axes[0, 1].hist(np.asarray(fresh), bins=bins, alpha=0.7, label="fresh moons samples")
    axes[0, 1].set_xscale("log")
    axes[0, 1].set_xlabel("distance to nearest training point")
    axes[0, 1].legend(fontsize=8)
    result.figures["memorization"] = fig
    return result
