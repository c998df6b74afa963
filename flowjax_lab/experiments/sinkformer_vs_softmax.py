"""Sinkformer (doubly stochastic) versus softmax attention dynamics of 2-D tokens.

With Sinkhorn normalisation the attention matrix P has rows summing to one and columns summing
to one, so the token mean moves exactly by ``d mean / dt = V mean`` (``mean(t) = e^{tV} mean(0)``)
whatever Q and K are; softmax only has unit rows, and its mean drifts. We measure the gap to
``e^{tV} mean(0)`` for softmax and for growing numbers of Sinkhorn iterations (one iteration is
softmax, exactly), and draw both flows.
"""

import dataclasses

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from .. import datasets
from .._plotting import figure, paths
from .._simulate import simulate
from ..fields import Attention
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 128
    iterations: tuple = (1, 2, 3, 5, 10, 20)
    t1: float = 2.0
    steps: int = 40
    beta: float = 1.0

    @classmethod
    def quick(cls):
        return cls(n=64, iterations=(1, 3, 10))


@register("sinkformer-vs-softmax", theme="transformer dynamics", config=Config,
          description="Doubly stochastic (Sinkformer) vs softmax attention flows of 2-D tokens.")
def run(config: Config, key) -> Result:
    dtype = jnp.result_type(float)
    x0 = datasets.sample("moons", key, config.n).astype(dtype)
    q = config.beta * jnp.asarray([[1.0, 0.6], [-0.4, 1.0]], dtype)
    k = jnp.eye(2, dtype=dtype)
    v = jnp.asarray([[-0.5, 1.0], [-1.0, -0.5]], dtype)
    ts = jnp.linspace(0.0, config.t1, 11, dtype=dtype)
    exact_mean = jax.vmap(lambda t: jsl.expm(t * v) @ jnp.mean(x0, axis=0))(ts)

    def flow(normalization, iterations):
        field = Attention(q, k, v, normalization=normalization, sinkhorn_iterations=iterations)
        return simulate(field, x0, t1=config.t1, saveat=ts, solver="rk4", steps=config.steps).xs

    softmax = flow("softmax", 1)
    gaps, sinkhorn = {}, {}
    for m in config.iterations:
        sinkhorn[m] = flow("sinkhorn", m)
        gaps[m] = float(jnp.max(jnp.linalg.norm(jnp.mean(sinkhorn[m], axis=1) - exact_mean,
                                                axis=-1)))
    soft_gap = float(jnp.max(jnp.linalg.norm(jnp.mean(softmax, axis=1) - exact_mean, axis=-1)))
    field_gap = float(jnp.max(jnp.abs(
        Attention(q, k, v, normalization="sinkhorn", sinkhorn_iterations=1)(0.0, x0)
        - Attention(q, k, v)(0.0, x0))))
    most = max(config.iterations)
    ordered = [gaps[m] for m in sorted(gaps)]
    eps = float(jnp.finfo(dtype).eps)  # floor for the log plot

    result = Result("sinkformer-vs-softmax", dataclasses.asdict(config))
    result.checks += [
        check("sinkhorn(1) field == softmax field", field_gap, 0.0, 0.0, relative=False),
        check(f"sinkhorn({most}) mean drift < 5% of softmax", gaps[most], 0.0,
              0.05 * soft_gap, relative=False),
        check("mean gap decreases with iterations",
              float(all(np.diff(ordered) <= 0)),
              1.0, 0.0, relative=False),
    ]
    result.metrics.update({"softmax_mean_gap": soft_gap,
                           **{f"sinkhorn{m}_mean_gap": g for m, g in gaps.items()},
                           "final_gap_softmax_vs_sinkformer": float(jnp.max(jnp.abs(
                               softmax[-1] - sinkhorn[most][-1])))})
    result.arrays.update({"ts": ts, "softmax": softmax, "sinkhorn": sinkhorn[most],
                          "exact_mean": exact_mean})

    fig, axes = figure(3, size=3.8)
    for ax, xs, title in ((axes[0, 0], softmax, "softmax"),
                          (axes[0, 1], sinkhorn[most], f"Sinkformer ({most} iterations)")):
        paths(ax, xs, count=config.n)
        ax.plot(*np.asarray(jnp.mean(xs, axis=1)).T, "C2-", lw=2, label="token mean")
        ax.plot(*np.asarray(exact_mean).T, "k--", lw=1.5, label="e^(tV) mean0")
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.legend(fontsize=7)
    axes[0, 2].semilogy(list(gaps), [max(g, eps) for g in gaps.values()], "o-",
                        label="Sinkformer")
    axes[0, 2].axhline(soft_gap, color="C3", ls="--", label="softmax")
    axes[0, 2].set_xlabel("Sinkhorn iterations")
    axes[0, 2].set_ylabel("max_t |mean - e^(tV) mean0|")
    axes[0, 2].legend(fontsize=8)
    result.figures["sinkformer"] = fig
    return result
