"""The exact empirical score memorizes its training points; a smoothed one does not.

The exact score of `n_train` moons points pushed by the VP process (``diffusion.EmpiricalScore``,
the minimiser of denoising score matching on them) is sampled from fresh noise by the
probability-flow ODE and by the reverse SDE. The marginal at t_min is the mixture
``mean_j N(alpha y_j, sigma^2 I)``, so every generated point lies within a few sigma(t_min) of a
training point and the training points are hit uniformly. The score of the same points smoothed
by N(0, h^2 I) (a kernel density estimate) generates points at distance ~h instead, as far from the
training set as fresh data is. So does a small MLP trained by denoising score matching on the same
points (``learn.fit``, `train_steps` steps): at this size its smooth score does not reach the
empirical one, and it generates points as far from the training set as fresh data is, yet on the
data (no farther than `max_spread` times fresh data's distance).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import datasets
from .._plotting import figure
from ..diffusion import (
    VP,
    DenoisingScoreMatching,
    EmpiricalScore,
    sample_probability_flow,
    sample_reverse_sde,
)
from ..fields import MLPField
from ..learn import fit
from ._config import validate
from ._registry import register
from ._result import Result, at_least, at_most, fit_ok
from ._training import adam, chunk_size


@dataclasses.dataclass(frozen=True)
class Config:
    n_train: int = 100
    n_generated: int = 2000
    bandwidth: float = 0.2  # h of the smoothed score (about the spacing of the training points)
    t_min: float = 1e-4
    sde_steps: int = 1024  # a power of two (exact Brownian increments on the grid)
    rtol: float = 1e-5  # of the adaptive probability-flow solve
    max_ratio: float = 0.25  # memorized: nearest distance at most this fraction of fresh data's
    min_ratio: float = 0.5  # smoothed, learned: nearest distance at least this fraction of fresh's
    # learned: nearest distance at most this multiple of fresh data's. A score that learned the
    # data generates points as far from the training set as fresh data (ratio 1; 0.96-1.5 over
    # 3 quick seeds); an unfitted one throws them far off (ratio > 100 untrained).
    max_spread: float = 2.0
    train_steps: int = 2000  # of the learned score (an MLP, denoising score matching)
    width: int = 64
    depth: int = 3
    learning_rate: float = 3e-3
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("bandwidth", "t_min", "rtol", "max_ratio", "min_ratio",
                                 "max_spread", "learning_rate"),
                 counts=("n_train", "n_generated", "sde_steps", "train_steps", "width", "depth"))
        if self.t_min >= 1:
            raise ValueError(f"config field 't_min' of diffusion-memorization must be < 1, got "
                             f"{self.t_min!r}.")

    @classmethod
    def quick(cls):
        return cls(n_train=50, n_generated=500, sde_steps=512, train_steps=1000)


def scores(process, train, bandwidth):
    """The exact empirical score and the smoothed one (the fault tests replace this)."""
    return EmpiricalScore(process, train), EmpiricalScore(process, train, bandwidth=bandwidth)


def learned_score(config: Config, process, train, key):
    """An MLP trained by denoising score matching on the rows of `train` `(m, 2)`: the model,
    its prediction kind and ``fit``'s result (the fault tests replace this)."""
    k_model, k_fit = jax.random.split(key)
    network = MLPField(2, width=config.width, depth=config.depth, activation=jax.nn.silu,
                       key=k_model)
    loss = DenoisingScoreMatching(process, train, prediction="eps")
    fitted = fit(loss, network, adam(config.learning_rate), k_fit, steps=config.train_steps,
                 chunk=chunk_size(config.train_steps, 500))
    return fitted.model, "eps", fitted


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
    model, kind, fitted = learned_score(config, process, train, jax.random.fold_in(key, 3))
    learned = sample_probability_flow(model, process, noise, prediction=kind, rtol=config.rtol,
                                      atol=config.rtol, **times)
    fresh = np.median(nearest(fresh_points, train)[1])
    hits, ode_distance = nearest(ode.x, train)
    sde_distance = nearest(sde.x, train)[1]
    smooth_distance = nearest(smooth.x, train)[1]
    learned_ratio = np.median(nearest(learned.x, train)[1]) / fresh
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
        fit_ok("learned score: training ended ok", fitted),
        at_least("learned score generalizes (nearest distance / fresh data's)", learned_ratio,
                 config.min_ratio, kind="comparison",
                 against=f"median nearest-training-point distance of fresh moons points; an "
                         f"MLP trained {config.train_steps} steps on the training points"),
        at_most("learned score generates on the data (nearest distance / fresh data's)",
                learned_ratio, config.max_spread, kind="comparison",
                against="median nearest-training-point distance of fresh moons points (an "
                        "unfitted score throws its points far off)"),
    ]
    result.metrics.update({
        "fresh_nearest_distance_median": float(fresh),
        "ode_nearest_distance_median": float(np.median(ode_distance)),
        "sde_nearest_distance_median": float(np.median(sde_distance)),
        "smoothed_nearest_distance_median": float(np.median(smooth_distance)),
        "learned_nearest_distance_median": float(learned_ratio * fresh),
        "learned_final_loss": float(np.mean(fitted.losses[-50:])),
        "sigma_t_min": sigma,
        "fraction_of_training_points_hit": len(np.unique(hits)) / m,
        "ode_nfe": int(ode.nfe),
        "smoothed_ode_nfe": int(smooth.nfe),
        "learned_ode_nfe": int(learned.nfe),
    })
    result.arrays.update({"train": train, "ode": ode.x, "sde": sde.x, "smoothed": smooth.x,
                          "learned": learned.x})
    fig, axes = figure(3, size=4.0, sharex=True, sharey=True)
    for ax, points, title in ((axes[0, 0], ode.x, "exact score (PF-ODE)"),
                              (axes[0, 1], smooth.x, f"smoothed score, h = {config.bandwidth}"),
                              (axes[0, 2], learned.x, "learned score (DSM-trained MLP)")):
        ax.scatter(*np.asarray(points).T, s=3, alpha=0.5, label="generated")
        ax.scatter(*np.asarray(train).T, s=10, color="C3", marker="x", label="training")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
    axes[0, 0].legend(fontsize=8)
    result.figures["samples"] = fig
    return result
