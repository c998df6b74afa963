"""Sinkformer (doubly stochastic) versus softmax attention dynamics of 2-D tokens.

The attention field moves the token mean by ``d mean / dt = V mean + r``, where
``r = V sum_j (c_j - 1) x_j / n`` and ``c_j`` are the column sums of the attention matrix P (its
rows sum to one). With Sinkhorn normalisation P is (nearly) doubly stochastic, ``c = 1``, so the
mean moves by ``mean(t) = e^{tV} mean(0)`` whatever Q and K are; softmax only has unit rows, and
its mean drifts. Each run's mean is checked against ``e^{tV} mean(0)`` plus the drift that the
column sums of a dense NumPy Sinkhorn on its saved tokens imply; the gap to ``e^{tV} mean(0)``
shrinks with the number of Sinkhorn iterations (one iteration is softmax).
"""

import dataclasses

import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.linalg
from scipy.special import logsumexp

from .. import datasets
from .._plotting import figure, paths
from .._simulate import simulate
from ..fields import Attention
from ._config import validate
from ._registry import register
from ._result import Result, better, close


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 128
    iterations: tuple = (1, 2, 3, 5, 10, 20)
    t1: float = 2.0
    steps: int = 40
    beta: float = 1.0
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("t1", "beta"), counts=("n", "iterations", "steps"))

    @classmethod
    def quick(cls):
        return cls(n=64, iterations=(1, 3, 10))


def _column_sums(x, q, k, iterations: int):
    """Column sums of the attention matrix of tokens `x` after `iterations` Sinkhorn
    normalisations (the library's convention: ``iterations - 1`` column normalisations, each
    after a row normalisation, rows last; one iteration is softmax), dense, in float64."""
    scores = (x @ q.T) @ (x @ k.T).T
    key_potential = np.zeros(x.shape[0])
    for _ in range(iterations - 1):
        row_potential = -logsumexp(scores + key_potential, axis=1)
        key_potential = -logsumexp(scores + row_potential[:, None], axis=0)
    logits = scores + key_potential
    return np.exp(logits - logsumexp(logits, axis=1, keepdims=True)).sum(axis=0)


def _predicted_means(xs, ts, q, k, v, iterations: int):
    """The token means that ``d mean/dt = V mean + r(t)`` gives, with ``r`` from the column sums
    of the saved tokens `xs` `(T, n, d)`: ``e^{tV} (mean(0) + int_0^t e^{-sV} r(s) ds)``, the
    integral by Simpson's rule on the saved times `ts`."""
    xs, ts = np.asarray(xs, np.float64), np.asarray(ts, np.float64)
    drifts = [v @ ((_column_sums(x, q, k, iterations) - 1) @ x) / x.shape[0] for x in xs]
    integrand = np.stack([scipy.linalg.expm(-t * v) @ r for t, r in zip(ts, drifts, strict=True)])
    integral = scipy.integrate.cumulative_simpson(integrand, x=ts, axis=0, initial=0)
    return np.stack([scipy.linalg.expm(t * v) @ (xs[0].mean(axis=0) + c)
                     for t, c in zip(ts, integral, strict=True)])


@register("sinkformer-vs-softmax", theme="transformer dynamics", config=Config,
          description="Doubly stochastic (Sinkformer) vs softmax attention flows of 2-D tokens.")
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    x0 = datasets.sample("moons", key, config.n).astype(dtype)
    q = config.beta * jnp.asarray([[1.0, 0.6], [-0.4, 1.0]], dtype)
    k = jnp.eye(2, dtype=dtype)
    v = jnp.asarray([[-0.5, 1.0], [-1.0, -0.5]], dtype)
    ts = jnp.linspace(0.0, config.t1, config.steps + 1, dtype=dtype)  # the RK4 step times
    exact_mean = np.stack([scipy.linalg.expm(t * np.asarray(v, np.float64))
                           @ np.asarray(jnp.mean(x0, axis=0), np.float64) for t in ts])

    def flow(iterations):
        normalization = "softmax" if iterations == 1 else "sinkhorn"
        field = Attention(q, k, v, normalization=normalization, sinkhorn_iterations=iterations)
        return simulate(field, x0, t1=config.t1, saveat=ts, solver="rk4", steps=config.steps).xs

    runs = {m: flow(m) for m in sorted({1, *config.iterations})}
    means = {m: np.asarray(jnp.mean(xs, axis=1), np.float64) for m, xs in runs.items()}
    gaps = {m: float(np.max(np.linalg.norm(mean - exact_mean, axis=-1)))
            for m, mean in means.items()}
    most, soft_gap = max(runs), gaps[1]
    q64, k64, v64 = (np.asarray(a, np.float64) for a in (q, k, v))

    result = Result("sinkformer-vs-softmax", dataclasses.asdict(config))
    # The mean law is exact given the column sums, so what remains is numerical: Simpson on the
    # steps + 1 RK4 step times (dt = 0.05) errs by ~t1 dt^4 / 180 |f''''| ~ 1e-7 of the path;
    # RK4 by ~(h rate)^4 ~ 3e-5 with h = 0.05 and the flow's rate ~1.5 (|V| ~ 1.1, scores
    # |Q||K| |dx/dt| ~ 1.5); float32 rounding ~1e-6. Tolerance 1e-4 of the mean path.
    for m, xs in runs.items():
        label = "softmax" if m == 1 else f"Sinkhorn {m}"
        result.checks.append(close(
            f"token mean vs e^(tV) mean(0) + column-sum drift ({label})", means[m],
            _predicted_means(xs, ts, q64, k64, v64, m), 1e-4,
            against="scipy expm of V and the column sums of a dense NumPy Sinkhorn on the saved "
                    "tokens (d mean/dt = V mean + V sum_j (c_j - 1) x_j / n)"))
    result.checks.append(better(
        f"Sinkhorn {most} mean gap vs softmax's", gaps[most], soft_gap, margin=0.9 * soft_gap,
        against="softmax's gap to e^(tV) mean(0): doubly stochastic attention (converged "
                "Sinkhorn, ~10 iterations) removes at least 90% of it"))
    result.metrics.update({"softmax_mean_gap": soft_gap,
                           **{f"sinkhorn{m}_mean_gap": g for m, g in gaps.items() if m > 1},
                           "final_gap_softmax_vs_sinkformer": float(jnp.max(jnp.abs(
                               runs[1][-1] - runs[most][-1])))})
    result.arrays.update({"ts": ts, "softmax": runs[1], "sinkhorn": runs[most],
                          "exact_mean": exact_mean})

    fig, axes = figure(3, size=3.8)
    for ax, m, title in ((axes[0, 0], 1, "softmax"),
                         (axes[0, 1], most, f"Sinkformer ({most} iterations)")):
        paths(ax, runs[m], count=config.n)
        ax.plot(*means[m].T, "C2-", lw=2, label="token mean")
        ax.plot(*exact_mean.T, "k--", lw=1.5, label="e^(tV) mean0")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.legend(fontsize=7)
    eps = float(jnp.finfo(dtype).eps)  # floor for the log plot
    axes[0, 2].semilogy(list(gaps), [max(g, eps) for g in gaps.values()], "o-",
                        label="Sinkformer (1 = softmax)")
    axes[0, 2].set_xlabel("Sinkhorn iterations")
    axes[0, 2].set_ylabel("max_t |mean - e^(tV) mean0|")
    axes[0, 2].legend(fontsize=8)
    result.figures["sinkformer"] = fig
    return result
