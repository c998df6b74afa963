"""The exact empirical score memorizes its training points; a smoothed one does not.

The exact score of `n_train` moons points pushed by the VP process (``diffusion.EmpiricalScore``,
the minimiser of denoising score matching on them) is sampled from fresh noise by the
probability-flow ODE and by the reverse SDE. The marginal at t_min is the mixture
``mean_j N(alpha y_j, sigma^2 I)``, so every generated point lies within a few sigma(t_min) of a
training point and the training points are hit uniformly. The score of the same points smoothed
by N(0, h^2 I) (a kernel density estimate) generates points at distance ~h instead, as far from the
training set as fresh data is.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import datasets
from .._plotting import figure
from ..diffusion import VP, EmpiricalScore, sample_probability_flow, sample_reverse_sde
from ._config import validate
from ._registry import register
from ._result import Result, at_least, at_most


@dataclasses.dataclass(frozen=True)
class Config:
    n_train: int = 100
    n_generated: int = 2000
    bandwidth: float = 0.2  # h of the smoothed score (about the spacing of the training points)
    t_min: float = 1e-4
    sde_steps: int = 1024  # a power of two (exact Brownian increments on the grid)
    rtol: float = 1e-5  # of the adaptive probability-flow solve
    max_ratio: float = 0.25  # memorized: nearest distance at most this fraction of fresh data's
    min_ratio: float = 0.5  # smoothed: nearest distance at least this fraction of fresh data's

    def __post_init__(self):
        validate(self, positive=("bandwidth", "t_min", "rtol", "max_ratio", "min_ratio"),
                 counts=("n_train", "n_generated", "sde_steps"))
        if self.t_min >= 1:
            raise ValueError(f"config field 't_min' of diffusion-memorization must be < 1, got "
                             f"{self.t_min!r}.")

    @classmethod
    def quick(cls):
        return cls(n_train=50, n_generated=500, sde_steps=512)


def scores(process, train, bandwidth):
    """The exact empirical score and the smoothed one (the fault tests replace this)."""
    return EmpiricalScore(process, train), EmpiricalScore(process, train, bandwidth=bandwidth)


def nearest(x, data) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to the nearest row of `data` for each row of `x` (NumPy; a
    non-finite row gets distance NaN)."""
    x, data = np.asarray(x, np.float64), np.asarray(data, np.float64)
    squared = np.sum((x[:, None, :] - data[None]) ** 2, axis=-1)
    index = np.argmin(np.where(np.isnan(squared), np.inf, squared), axis=1)
    distance = np.sqrt(np.take_along_axis(squared, index[:, None], axis=1)[:, 0])
    return index, np.where(np.all(np.isfinite(x), axis=1), distance, np.nan)


@register(
    "diffusion-memorization",
    theme="optimal transport and flow matching",
    config=Config,
    description="The exact empirical score's samplers reproduce training points; a smoothed "
                "score generates new points.",
)
def run(config: Config, key) -> Result:
    k_data, k_noise, k_sde = jax.random.split(key, 3)
    train, fresh_points = jnp.split(datasets.sample("moons", k_data, 2 * config.n_train), 2)
    process = VP()
    exact, smoothed = scores(process, train, config.bandwidth)
    noise = process.sample_prior(k_noise, config.n_generated, 2, train.dtype)
    times = {"t_min": config.t_min}
    ode = sample_probability_flow(exact, process, noise, prediction="score", rtol=config.rtol,
                                  atol=config.rtol, **times)
    sde = sample_reverse_sde(exact, process, noise, k_sde, prediction="score",
                             steps=config.sde_steps, **times)
    smooth = sample_probability_flow(smoothed, process, noise, prediction="score",
                                     rtol=config.rtol, atol=config.rtol, **times)
    fresh = np.median(nearest(fresh_points, train)[1])
    hits, ode_distance = nearest(ode.x, train)
    sde_distance = nearest(sde.x, train)[1]
    smooth_distance = nearest(smooth.x, train)[1]
    sigma = float(process.sigma(jnp.asarray(config.t_min, train.dtype)))

    # Counts per training point are Multinomial(N, 1/m): Pearson's statistic has mean m - 1 and
    # variance 2 (m - 1)(1 - 1/N); 5 standard deviations.
    m = config.n_train
    counts = np.bincount(hits, minlength=m)
    expected = config.n_generated / m
    chi_square = float(np.sum((counts - expected) ** 2) / expected)

    result = Result("diffusion-memorization", dataclasses.asdict(config))
    result.checks += [
        at_most("PF-ODE of the exact score: max distance to the training set / sigma(t_min)",
                np.max(ode_distance) / sigma, 6.0, kind="theory",
                against="the marginal at t_min is mean_j N(alpha y_j, sigma^2 I): a point's "
                        "distance to its own centre is Rayleigh(sigma) in d = 2, above 6 sigma "
                        "with probability exp(-18)"),
        at_most("PF-ODE of the exact score: training points hit uniformly (chi-square)",
                chi_square, (m - 1) + 5 * np.sqrt(2 * (m - 1)), kind="theory",
                against="the flow carries the prior to the uniform mixture: counts "
                        "Multinomial(n_generated, 1/n_train), mean + 5 sd of Pearson's statistic"),
        at_most("PF-ODE of the exact score memorizes (nearest distance / fresh data's)",
                np.median(ode_distance) / fresh, config.max_ratio, kind="comparison",
                against="median nearest-training-point distance of fresh moons points"),
        at_most("reverse SDE of the exact score memorizes (nearest distance / fresh data's)",
                np.median(sde_distance) / fresh, config.max_ratio, kind="comparison",
                against="median nearest-training-point distance of fresh moons points"),
        at_least("smoothed score generalizes (nearest distance / fresh data's)",
                 np.median(smooth_distance) / fresh, config.min_ratio, kind="comparison",
                 against=f"median nearest-training-point distance of fresh moons points; "
                         f"bandwidth {config.bandwidth}"),
    ]
    result.metrics.update({
        "fresh_nearest_distance_median": float(fresh),
        "ode_nearest_distance_median": float(np.median(ode_distance)),
        "sde_nearest_distance_median": float(np.median(sde_distance)),
        "smoothed_nearest_distance_median": float(np.median(smooth_distance)),
        "sigma_t_min": sigma,
        "fraction_of_training_points_hit": len(np.unique(hits)) / m,
        "ode_nfe": int(ode.nfe),
        "smoothed_ode_nfe": int(smooth.nfe),
    })
    result.arrays.update({"train": train, "ode": ode.x, "sde": sde.x, "smoothed": smooth.x})
    fig, axes = figure(2, size=4.0, sharex=True, sharey=True)
    for ax, points, title in ((axes[0, 0], ode.x, "exact score (PF-ODE)"),
                              (axes[0, 1], smooth.x, f"smoothed score, h = {config.bandwidth}")):
        ax.scatter(*np.asarray(points).T, s=3, alpha=0.5, label="generated")
        ax.scatter(*np.asarray(train).T, s=10, color="C3", marker="x", label="training")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
    axes[0, 0].legend(fontsize=8)
    result.figures["samples"] = fig
    return result
