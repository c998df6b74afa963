"""Clustering of tokens on the sphere: the phase diagram of Geshkovski et al. ("A mathematical
perspective on Transformers"), at reduced size, and metastable clusters in d = 2.

Tokens on the unit sphere follow softmax self-attention with ``Q = beta I``, ``K = V = I``,
projected on the tangent space. For each dimension d, inverse temperature beta and time t we
record the probability that two distinct tokens have clustered (cosine >= threshold), averaged
over random initial clouds of n = 32 tokens. In d = 2 with a large beta the tokens first gather
into a few clusters that then persist over a time span of several decades (metastability), while
the interaction energy ``E_beta`` never decreases (a Lyapunov function of the dynamics).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import clustering
from .._plotting import figure
from .._simulate import simulate
from ..fields import Attention
from ._config import validate
from ._registry import register
from ._result import Result, at_least, at_most, holds


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 32
    dims: tuple = (2, 8, 32)
    betas: tuple = (0.25, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
    clouds: int = 8
    t1: float = 20.0
    saved_times: int = 41
    steps: int = 200
    threshold: float = 0.99
    metastable_beta: float = 9.0
    metastable_t1: float = 1000.0
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("betas", "t1", "threshold", "metastable_beta", "metastable_t1"),
                 counts=("n", "dims", "clouds", "saved_times", "steps"))
        if self.n < 2:
            raise ValueError(f"config field 'n' of clustering-phase-diagram must be at least 2 "
                             f"(pairs of tokens), got {self.n!r}.")
        if self.threshold > 1:
            raise ValueError(f"config field 'threshold' of clustering-phase-diagram must be a "
                             f"cosine <= 1, got {self.threshold!r}.")

    @classmethod
    def quick(cls):
        return cls(dims=(2, 16), betas=(0.25, 1.0, 2.0, 4.0, 6.0, 9.0), clouds=4, steps=120,
                   saved_times=21)


def _measured(measure, xs, fill):
    """`measure` of every saved cloud of `xs` `(T, n, d)`, and `fill` for those that are not
    finite (a failed solve), which the measures would refuse."""
    finite = jnp.all(jnp.isfinite(xs), axis=(1, 2))
    placeholder = jnp.ones_like(xs[0]) * xs.shape[-1] ** -0.5  # unit tokens
    values = jax.vmap(measure)(jnp.where(finite[:, None, None], xs, placeholder))
    return jnp.where(finite, values, fill)


def _diagram(config, key, d, ts, betas):
    """Mean clustered fraction, shape `(len(betas), len(ts))` (NaN where a solve failed)."""
    x0 = jax.random.normal(key, (config.clouds, config.n, d), dtype=ts.dtype)
    x0 = x0 / jnp.linalg.norm(x0, axis=-1, keepdims=True)
    eye = jnp.eye(d, dtype=ts.dtype)

    def one(beta, x):
        field = Attention(beta * eye, eye, eye, sphere=True)
        xs = simulate(field, x, t1=config.t1, saveat=ts, solver="rk4", steps=config.steps).xs
        return _measured(lambda y: clustering.clustered_fraction(y, config.threshold), xs,
                         jnp.nan)

    fractions = jax.jit(jax.vmap(lambda b: jax.vmap(lambda x: one(b, x))(x0)))(betas)
    return np.asarray(jnp.mean(fractions, axis=1))


def _multicluster_span(ts, counts, most: int) -> float:
    """The largest ratio ``t_end / t_start`` over a run of saved times (t > 0) at which the
    cloud holds between 2 and `most` clusters: how long a multi-cluster state lasts."""
    inside = (np.asarray(counts) >= 2) & (np.asarray(counts) <= most) & (np.asarray(ts) > 0)
    best, start = 1.0, None
    for i, flag in enumerate(inside):
        if flag and start is None:
            start = i
        if flag:
            best = max(best, float(ts[i] / ts[start]))
        else:
            start = None
    return best


@register("clustering-phase-diagram", theme="transformer dynamics", config=Config,
          description="Token clustering on the sphere over (beta, t) and metastable clusters.")
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    ts = jnp.linspace(0.0, config.t1, config.saved_times, dtype=dtype)
    betas = jnp.asarray(config.betas, dtype)
    keys = jax.random.split(key, len(config.dims) + 1)
    diagrams = {d: _diagram(config, k, d, ts, betas)
                for d, k in zip(config.dims, keys[:-1], strict=True)}

    d, beta = 2, config.metastable_beta
    x0 = jax.random.normal(keys[-1], (config.n, d), dtype=dtype)
    x0 = x0 / jnp.linalg.norm(x0, axis=-1, keepdims=True)
    log_ts = jnp.concatenate([jnp.zeros(1, dtype), jnp.logspace(-1, np.log10(
        config.metastable_t1), 41, dtype=dtype)])
    eye = jnp.eye(d, dtype=dtype)
    traj = simulate(Attention(beta * eye, eye, eye, sphere=True), x0, t1=config.metastable_t1,
                    saveat=log_ts, rtol=1e-6, atol=1e-6, max_steps=100_000)
    counts = np.asarray(_measured(lambda y: clustering.cluster_count(y, 0.999), traj.xs, -1))
    energy = np.asarray(_measured(lambda y: clustering.attention_energy(y, beta), traj.xs,
                                  jnp.nan), np.float64)
    few = config.n // 4
    span = _multicluster_span(np.asarray(log_ts), counts, few)

    result = Result("clustering-phase-diagram", dataclasses.asdict(config))
    smallest = int(np.argmin(config.betas))
    low = float(np.min([diagrams[dim][smallest, -1] for dim in config.dims]))
    largest, low_d = int(np.argmax(config.betas)), min(config.dims)
    # Each energy sums n^2 positive terms, rounded by up to n^2 eps relative (a difference of two:
    # 2 n^2 eps); the adaptive solve (rtol 1e-6) may lower a flat stretch by ~rtol (10 rtol
    # allowed): a decrease beyond both is a fault.
    slack = 2 * config.n**2 * float(jnp.finfo(dtype).eps) + 1e-5
    result.checks += [
        at_least(f"pairs clustered at beta={config.betas[smallest]}, t={config.t1} (min over d)",
                 low, 0.98, kind="theory",
                 against="Geshkovski et al.: at small beta every token joins one cluster "
                         "(fraction 1; 0.98 lets 2% of the pairs lag)"),
        at_most(f"pairs clustered at beta={config.betas[largest]}, t={config.t1}, d={low_d}",
                float(diagrams[low_d][largest, -1]), 0.9, kind="theory",
                against="Geshkovski et al.: at large beta in low d the tokens first form several "
                        "clusters that merge only after a time exponential in beta (two equal "
                        "clusters: fraction 0.48; 0.9 lets a few clouds finish)"),
        at_least(f"multi-cluster span (2..{few} clusters) at beta={beta}, d=2 (t ratio)", span,
                 10.0, against="metastability: n tokens gather into a few clusters that last "
                               "over >= a decade of time before merging"),
        at_least("interaction energy never decreases (min relative step, d=2)",
                 float(np.min(np.diff(energy) / energy[:-1])), -slack, kind="theory",
                 against="E_beta is a Lyapunov function: dE/dt = n^-2 sum_i Z_i |P_x_i m_i|^2 "
                         ">= 0 (Z_i: softmax normaliser, m_i: attention average)"),
        holds("metastable simulation finished", bool(traj.ok),
              against=f"simulate status: {traj.message}"),
    ]
    for dim in config.dims:
        result.metrics[f"final_fraction_d{dim}_beta{config.betas[-1]}"] = float(
            diagrams[dim][-1, -1])
    result.metrics.update({"metastable_final_clusters": int(counts[-1]),
                           "metastable_multicluster_span": span,
                           "energy_increase_d2": float(energy[-1] - energy[0])})
    result.arrays.update({"ts": ts, "betas": betas, "metastable_ts": log_ts,
                          "metastable_counts": counts, "metastable_tokens": traj.xs})
    result.arrays.update({f"fraction_d{dim}": diagrams[dim] for dim in config.dims})

    fig, axes = figure(len(config.dims), size=3.4, sharey=True)
    extent = (float(betas[0]), float(betas[-1]), 0.0, config.t1)
    for ax, dim in zip(axes[0], config.dims, strict=True):
        image = ax.imshow(diagrams[dim].T, origin="lower", aspect="auto", extent=extent,
                          vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        ax.set_title(f"d = {dim}, n = {config.n}", fontsize=10)
        ax.set_xlabel("beta")
    axes[0, 0].set_ylabel("t")
    fig.colorbar(image, ax=axes[0, -1], label="P(two tokens clustered)")
    result.figures["phase_diagram"] = fig

    fig, axes = figure(2, size=4.0)
    angles = np.unwrap(np.arctan2(np.asarray(traj.xs[..., 1]), np.asarray(traj.xs[..., 0])),
                       axis=0)
    axes[0, 0].semilogx(np.asarray(log_ts[1:]), angles[1:], color="C0", lw=0.7)
    axes[0, 0].set_xlabel("t")
    axes[0, 0].set_ylabel("token angle")
    axes[0, 0].set_title(f"d = 2, beta = {beta}: metastable clusters", fontsize=10)
    axes[0, 1].semilogx(np.asarray(log_ts[1:]), counts[1:], "o-", ms=3)
    axes[0, 1].set_xlabel("t")
    axes[0, 1].set_ylabel("clusters (cos >= 0.999)")
    result.figures["metastable"] = fig
    return result
