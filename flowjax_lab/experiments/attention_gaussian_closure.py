"""Gaussian tokens under softmax attention against the closure ``dS/dt = A S + S A^T`` with
``A = V S K^T Q`` (Castin et al. 2025), for non-symmetric Q, K and a rotating V.

Particles from N(0, cov0) are moved by the attention field; their covariance is compared with the
closure at every saved time for growing n (the error shrinks like n^-1/2), and with the closure
of the other transpose convention ``A = V S Q^T K``, which the particles reject.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from .. import theory
from .._plotting import figure
from .._simulate import simulate
from ..fields import Attention
from ..measures import Gaussian
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    sizes: tuple = (250, 1000, 4000, 16000)
    t1: float = 0.4
    saved_times: int = 5
    steps: int = 8
    chunk_size: int = 2048

    @classmethod
    def quick(cls):
        return cls(sizes=(250, 1000, 4000))


Q = ((1.0, 0.5), (-0.3, 0.8))
K = ((0.7, -0.4), (0.2, 0.9))
V = ((0.5, 1.0), (-1.0, 0.2))
COV0 = ((1.0, 0.3), (0.3, 0.5))


def _particle_covariances(config, key, n, q, k, v, cov0):
    ts = jnp.linspace(0.0, config.t1, config.saved_times, dtype=cov0.dtype)
    x0 = Gaussian(jnp.zeros(2, cov0.dtype), cov0).sample(key, n)
    field = Attention(q, k, v, chunk_size=min(config.chunk_size, n))
    xs = simulate(field, x0, saveat=ts, solver="rk4", steps=config.steps).xs
    return ts, jnp.einsum("tni,tnj->tij", xs, xs) / n


@register("attention-gaussian-closure", theme="transformer dynamics", config=Config,
          description="Softmax attention on Gaussian tokens vs the covariance closure ODE.")
def run(config: Config, key) -> Result:
    dtype = jnp.result_type(float)
    q, k, v, cov0 = (jnp.asarray(a, dtype) for a in (Q, K, V, COV0))
    ts = jnp.linspace(0.0, config.t1, config.saved_times, dtype=dtype)
    tol = 1e-8 if dtype == jnp.float64 else 1e-6
    right = theory.attention_covariance(cov0, q, k, v, ts, rtol=tol, atol=tol)
    wrong = theory.attention_covariance(cov0, k, q, v, ts, rtol=tol, atol=tol)
    errors, wrong_errors, last = [], [], None
    for n in config.sizes:
        _, covs = _particle_covariances(config, key, n, q, k, v, cov0)
        scale = jnp.linalg.norm(right.covs, axis=(1, 2))
        errors.append(float(jnp.max(jnp.linalg.norm(covs - right.covs, axis=(1, 2)) / scale)))
        wrong_errors.append(float(jnp.max(jnp.linalg.norm(covs - wrong.covs, axis=(1, 2))
                                          / scale)))
        last = covs
    sizes = np.asarray(config.sizes, float)
    slope = float(np.polyfit(np.log(sizes), np.log(errors), 1)[0])
    result = Result("attention-gaussian-closure", dataclasses.asdict(config))
    result.checks += [
        check("particles vs closure (largest n, rel.)", errors[-1], 0.0,
              8 / np.sqrt(sizes[-1]), relative=False),
        check("error rate in n (slope, expect -1/2)", slope, -0.5, 0.3, relative=False),
        check("other transpose convention rejected", float(wrong_errors[-1] > 10 * errors[-1]),
              1.0, 0.0, relative=False),
    ]
    result.metrics.update({f"rel_error_n{n}": e for n, e in zip(config.sizes, errors,
                                                                 strict=True)})
    result.metrics.update({"wrong_convention_rel_error": wrong_errors[-1], "error_slope": slope})
    result.arrays.update({"ts": ts, "closure": right.covs, "wrong_closure": wrong.covs,
                          "particles": last, "errors": np.asarray(errors)})

    fig, axes = figure(2, size=4.0)
    labels = ("S11", "S12", "S22")
    for c, (i, j) in enumerate(((0, 0), (0, 1), (1, 1))):
        axes[0, 0].plot(ts, right.covs[:, i, j], color=f"C{c}", label=f"closure {labels[c]}")
        axes[0, 0].plot(ts, wrong.covs[:, i, j], color=f"C{c}", ls=":", alpha=0.7)
        axes[0, 0].plot(ts, last[:, i, j], "o", color=f"C{c}", ms=4)
    axes[0, 0].set_title(f"covariance: closure (lines), n={config.sizes[-1]} (dots),\n"
                         "other convention (dotted)", fontsize=9)
    axes[0, 0].set_xlabel("t")
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].loglog(sizes, errors, "o-", label="V S K^T Q (library)")
    axes[0, 1].loglog(sizes, wrong_errors, "s--", label="V S Q^T K")
    axes[0, 1].loglog(sizes, errors[0] * np.sqrt(sizes[0] / sizes), "k:", label="n^-1/2")
    axes[0, 1].set_xlabel("n tokens")
    axes[0, 1].set_ylabel("max_t relative error")
    axes[0, 1].legend(fontsize=8)
    result.figures["closure"] = fig
    return result
