"""Langevin dynamics: the heat flow's covariance and an Ornstein-Uhlenbeck equilibrium.

Brownian particles at temperature D follow ``theory.heat_covariance`` (JKO: the heat flow is
the Wasserstein gradient flow of the entropy); with the potential ``x^T A x / 2`` they relax to
N(0, T A^{-1}) along ``Sigma_t = e^{-At} (Sigma_0 - T A^{-1}) e^{-At} + T A^{-1}``.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from .. import flows, metrics, theory
from .._plotting import covariance_ellipse, figure
from ..measures import Gaussian
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 20000
    temperature: float = 0.5
    t1: float = 4.0
    steps: int = 800
    saved_times: int = 17

    @classmethod
    def quick(cls):
        return cls(n=4000, steps=400)


@register("langevin-equilibrium", theme="gradient flows and mean-field training", config=Config,
          description="Heat-flow covariance and Ornstein-Uhlenbeck relaxation vs closed forms.")
def run(config: Config, key) -> Result:
    dtype = jnp.result_type(float)
    k0, k1, k2 = jax.random.split(key, 3)
    cov0 = np.array([[1.0, 0.3], [0.3, 0.5]])
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    temp = config.temperature
    x0 = Gaussian(jnp.zeros(2, dtype), jnp.asarray(cov0, dtype)).sample(k0, config.n)

    heat = flows.langevin(x0, k1, temperature=temp, t1=config.t1, steps=config.saved_times - 1,
                          saveat=config.saved_times)
    ou = flows.langevin(x0, k2, potential=flows.QuadraticPotential(jnp.asarray(a, dtype)),
                        temperature=temp, t1=config.t1, steps=config.steps,
                        saveat=config.saved_times)
    ts = np.asarray(ou.ts)
    equilibrium = temp * np.linalg.inv(a)
    heat_ref = [np.asarray(theory.heat_covariance(jnp.asarray(cov0, dtype), float(t), temp))
                for t in ts]
    ou_ref = [scipy.linalg.expm(-a * t) @ (cov0 - equilibrium) @ scipy.linalg.expm(-a * t)
              + equilibrium for t in ts]
    heat_err = [float(metrics.relative_error(metrics.covariance(x), r))
                for x, r in zip(heat.xs, heat_ref, strict=True)]
    ou_err = [float(metrics.relative_error(metrics.covariance(x), r))
              for x, r in zip(ou.xs, ou_ref, strict=True)]
    sampling = 6 / np.sqrt(config.n)
    dt_bias = 2.5 * config.t1 / config.steps  # Euler-Maruyama bias ~ |A| dt / 2

    result = Result("langevin-equilibrium", dataclasses.asdict(config))
    result.checks += [
        check("heat covariance vs theory (max over t)", max(heat_err), 0.0, sampling,
              relative=False),
        check("OU covariance vs closed form (max over t)", max(ou_err), 0.0,
              sampling + dt_bias, relative=False),
        check("OU final covariance vs T A^-1", metrics.covariance(ou.x1), equilibrium,
              sampling + dt_bias),
    ]
    result.metrics.update({"heat_max_rel_error": max(heat_err), "ou_max_rel_error": max(ou_err),
                           "heat_status": int(heat.status), "ou_status": int(ou.status)})
    result.arrays.update({"ts": ts, "heat_error": np.array(heat_err),
                          "ou_error": np.array(ou_err)})

    fig, axes = figure(3, size=3.8)
    for i, (name, traj, refs) in enumerate((("heat", heat, heat_ref), ("OU", ou, ou_ref))):
        emp = np.array([np.asarray(metrics.covariance(x)) for x in traj.xs])
        for (p, q), style in (((0, 0), "C0"), ((1, 1), "C1"), ((0, 1), "C2")):
            axes[0, i].plot(ts, emp[:, p, q], "o", ms=3, color=style)
            axes[0, i].plot(ts, [r[p, q] for r in refs], "-", color=style,
                            label=f"cov[{p},{q}]")
        axes[0, i].set_title(f"{name}: particles (dots) vs theory", fontsize=10)
        axes[0, i].set_xlabel("t")
    axes[0, 0].legend(fontsize=8)
    sample = np.asarray(ou.x1[:2000])
    axes[0, 2].scatter(sample[:, 0], sample[:, 1], s=2, alpha=0.4)
    covariance_ellipse(axes[0, 2], equilibrium, color="C3", lw=1.5, label="N(0, T A^-1), 2 sd")
    axes[0, 2].set_aspect("equal")
    axes[0, 2].legend(fontsize=8)
    axes[0, 2].set_title("OU particles at t1", fontsize=10)
    result.figures["langevin"] = fig
    return result
