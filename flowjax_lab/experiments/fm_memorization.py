"""The exact flow-matching field to an empirical target memorizes its training points.

The closed-form field ``E[X1 - X0 | X_t]`` from N(0, I) to the empirical measure of `n_train`
moons points is integrated from fresh noise. Every generated point lands on a training point
(distance ~ solver tolerance), while fresh moons samples sit at the typical nearest-neighbour
distance of the training set: the minimiser of the flow-matching loss reproduces the data, it does
not generalize. The flow carries N(0, I) to the uniform empirical measure, so the training points
are hit uniformly; and the field's exact log-density along the flow (its own divergence) matches
the mixture density ``alpha_t = mean_j N(t y_j, (1 - t)^2 I)`` at an interior time.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logsumexp

from .. import datasets
from .._plotting import figure, paths
from .._simulate import simulate
from ..fields import ExactFlowMatching
from ..measures import Gaussian
from ._config import validate
from ._registry import register
from ._result import Result, at_most, close

DENSITY_RTOL = 1e-8  # solver tolerance of the log-density solve


@dataclasses.dataclass(frozen=True)
class Config:
    n_train: int = 500
    n_generated: int = 2000
    tolerance: float = 1e-6  # rtol = atol of the generating solve
    t_density: float = 0.9
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("tolerance", "t_density"), counts=("n_train", "n_generated"))
        if self.t_density >= 1:
            raise ValueError(f"config field 't_density' of fm-memorization must be < 1 (the "
                             f"mixture density is singular at t = 1), got {self.t_density!r}.")

    @classmethod
    def quick(cls):
        return cls(n_train=100, n_generated=300)


def nearest(x, data) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to the nearest row of `data` `(m, d)` for each row of `x` `(n, d)`
    (NumPy; a non-finite row gets distance NaN)."""
    x, data = np.asarray(x, np.float64), np.asarray(data, np.float64)
    squared = np.sum((x[:, None, :] - data[None]) ** 2, axis=-1)
    index = np.argmin(np.where(np.isnan(squared), np.inf, squared), axis=1)
    distance = np.sqrt(np.take_along_axis(squared, index[:, None], axis=1)[:, 0])
    return index, np.where(np.all(np.isfinite(x), axis=1), distance, np.nan)


def mixture_log_density(x, data, t) -> np.ndarray:
    """``log mean_j N(x; t y_j, (1 - t)^2 I)`` for `x` `(n, d)`, `data` `(m, d)`, in NumPy."""
    x, data = np.asarray(x, np.float64), np.asarray(data, np.float64)
    s, d = 1 - t, x.shape[1]
    squared = np.sum((x[:, None, :] - t * data[None]) ** 2, axis=-1)
    return (logsumexp(-squared / (2 * s**2), axis=1) - np.log(len(data))
            - d * np.log(s) - d / 2 * np.log(2 * np.pi))


def chi_square_uniform(index, m: int) -> float:
    """Pearson's chi-square of the counts of `index` over ``0..m-1`` against equal counts."""
    counts = np.bincount(index, minlength=m)
    expected = len(index) / m
    return float(np.sum((counts - expected) ** 2) / expected)


@register(
    "fm-memorization",
    theme="optimal transport and flow matching",
    config=Config,
    description="The exact flow-matching field to an empirical target reproduces training points.",
)
def run(config: Config, key) -> Result:
    k_data, k_noise = jax.random.split(key)
    # One draw (one compiled sampler): the training set and as many fresh points.
    train, fresh_points = jnp.split(datasets.sample("moons", k_data, 2 * config.n_train), 2)
    field = ExactFlowMatching(train)
    source = Gaussian.standard(2, train.dtype)
    x0 = source.sample(k_noise, config.n_generated)
    ts = jnp.linspace(0, 1, 21, dtype=train.dtype)
    traj = simulate(field, x0, saveat=ts, rtol=config.tolerance, atol=config.tolerance)
    hits, generated = nearest(traj.x1, train)
    fresh = nearest(fresh_points, train)[1]
    # A generated point that is not finite hit nothing: the statistics become NaN.
    landed = bool(np.all(np.isfinite(generated)))
    chi_square = chi_square_uniform(hits, config.n_train) if landed else float("nan")

    # Density along the flow: log alpha_t(x_t) = log N(x0) - int_0^t div v, vs the closed form.
    t = config.t_density
    dens = simulate(field, x0[:256], t1=t, log_density="exact", logp0=source.log_prob(x0[:256]),
                    rtol=DENSITY_RTOL, atol=DENSITY_RTOL)
    closed = mixture_log_density(dens.x1, train, t)

    # The field is frozen at t = 1 - sqrt(eps) (see ExactFlowMatching): over the last sqrt(eps)
    # of time it contracts x - y by 1/e, leaving sqrt(eps) |z - y| / e <= sqrt(eps) (|x0| + |y|)
    # with z the noise paired to y. Earlier solver errors only change which point is reached;
    # the contraction near t = 1 does not amplify the late ones, each below tol (1 + |x|) per
    # accepted step.
    eps = float(jnp.finfo(train.dtype).eps)
    radius = float(jnp.max(jnp.linalg.norm(train, axis=1)))
    landing_bound = (np.sqrt(eps) * (float(jnp.max(jnp.linalg.norm(x0, axis=1))) + radius)
                     + int(traj.stats["num_accepted_steps"]) * config.tolerance * (1 + radius))
    # Counts per training point are Multinomial(N, 1/m): Pearson's statistic has mean m - 1 and
    # variance 2 (m - 1)(1 - 1/N) exactly; 5 standard deviations.
    m = config.n_train
    chi_square_bound = (m - 1) + 5 * np.sqrt(2 * (m - 1))
    # Each of the ~100 steps of the log-density solve errs by at most max(rtol, eps) relatively.
    density_tolerance = 100 * max(DENSITY_RTOL, eps)

    result = Result("fm-memorization", dataclasses.asdict(config))
    result.metrics.update({
        "generated_nearest_distance_median": float(np.median(generated)),
        "generated_nearest_distance_max": float(np.max(generated)),
        "fresh_nearest_distance_median": float(np.median(fresh)),
        "fraction_of_training_points_hit": len(np.unique(hits)) / config.n_train,
        "hit_chi_square": chi_square,
        "num_field_evals": int(traj.stats["num_field_evals"]),
    })
    result.checks += [
        at_most("generated points on training points (max distance)", np.max(generated),
                landing_bound, kind="theory",
                against="the exact field's flow ends on a training point; bound: field frozen "
                        "at 1 - sqrt(eps) plus solver tolerance per accepted step"),
        at_most("training points hit uniformly (chi-square of counts)", chi_square,
                chi_square_bound, kind="theory",
                against="the flow carries N(0, I) to the uniform empirical measure: counts "
                        "Multinomial(n_generated, 1/n_train), mean + 5 sd of Pearson's statistic"),
        close(f"log-density along the flow vs mixture density at t={t}", dens.logp[-1], closed,
              density_tolerance,
              against="log mean_j N(x; t y_j, (1-t)^2 I) written with scipy.special.logsumexp"),
    ]
    result.arrays.update({"train": train, "generated": traj.x1, "paths": traj.xs[:, :300]})

    fig, axes = figure(2, size=4.0)
    paths(axes[0, 0], traj.xs, count=150, alpha=0.25)
    axes[0, 0].scatter(train[:, 0], train[:, 1], s=14, facecolors="none", edgecolors="k",
                       label="training points", zorder=4)
    axes[0, 0].legend(fontsize=8, loc="lower left")
    axes[0, 0].set_title("exact FM field: noise -> training points", fontsize=10)
    bins = np.logspace(-10, 0.5, 50)
    landed_rows = np.isfinite(generated)
    axes[0, 1].hist(generated[landed_rows].clip(1e-10), bins=bins, alpha=0.7, label="generated")
    axes[0, 1].hist(fresh, bins=bins, alpha=0.7, label="fresh moons samples")
    axes[0, 1].set_xscale("log")
    axes[0, 1].set_xlabel("distance to nearest training point")
    axes[0, 1].legend(fontsize=8)
    result.figures["memorization"] = fig
    return result
