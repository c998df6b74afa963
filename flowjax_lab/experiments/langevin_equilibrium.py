"""Langevin dynamics: the heat flow's covariance and an Ornstein-Uhlenbeck equilibrium.

Brownian particles at temperature T follow ``theory.heat_covariance`` (JKO: the heat flow is
the Wasserstein gradient flow of the entropy); with the potential ``x^T A x / 2`` they relax to
the Gibbs measure N(0, T A^{-1}) along ``Sigma_t = e^{-At} (Sigma_0 - T A^{-1}) e^{-At} + T A^{-1}``
(written here with scipy's ``expm``).

Tolerances: the relative Frobenius error of the sample covariance of n Gaussian points has a
standard deviation of at most ``sqrt((d + 1) / n)`` (see gaussian-transport); 4 of them allow
for the chi-like tail and the saved times. Euler-Maruyama with step dt keeps the mode of
eigenvalue lambda at a stationary variance ``T / lambda / (1 - lambda dt / 2)``: a relative bias
``lambda dt / (2 - lambda dt)``, and no more along the relaxation; the OU checks allow
``lambda_max dt``, twice its first-order value, which the step check keeps valid
(``lambda_max dt <= 0.1``). The heat flow has no drift: its Brownian increments are exact.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from .. import flows, theory
from .._plotting import covariance_ellipse, figure
from ..measures import Gaussian
from ._config import validate
from ._registry import register
from ._result import Result, at_most, close

COV0 = np.array([[1.0, 0.3], [0.3, 0.5]])
PRECISION = np.array([[2.0, 0.5], [0.5, 1.0]])  # A of the potential x^T A x / 2


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 20000
    temperature: float = 0.5
    t1: float = 4.0
    steps: int = 800
    saved_times: int = 17
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("temperature", "t1"), counts=("n", "steps", "saved_times"))

    @classmethod
    def quick(cls):
        return cls(n=4000, steps=400)


def _covariances(xs) -> np.ndarray:
    """Population covariances of saved clouds `(T, n, d)`, float64 (NaN propagates)."""
    return np.array([np.cov(x, rowvar=False, bias=True) for x in np.asarray(xs, np.float64)])


def _relative_errors(covs, refs) -> np.ndarray:
    gap = np.linalg.norm(covs - refs, axis=(-2, -1))
    return gap / np.linalg.norm(refs, axis=(-2, -1))


@register("langevin-equilibrium", theme="gradient flows and mean-field training", config=Config,
          description="Heat-flow covariance and Ornstein-Uhlenbeck relaxation vs closed forms.")
@np.errstate(invalid="ignore", over="ignore")  # a blown-up cloud gives NaN, which fails checks
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    k0, k1, k2 = jax.random.split(key, 3)
    temp = config.temperature
    x0 = Gaussian(jnp.zeros(2, dtype), jnp.asarray(COV0, dtype)).sample(k0, config.n)

    heat = flows.langevin(x0, k1, temperature=temp, t1=config.t1, steps=config.saved_times - 1,
                          saveat=config.saved_times)
    ou = flows.langevin(x0, k2, potential=flows.QuadraticPotential(jnp.asarray(PRECISION, dtype)),
                        temperature=temp, t1=config.t1, steps=config.steps,
                        saveat=config.saved_times)
    ts = np.asarray(ou.ts, np.float64)
    equilibrium = temp * np.linalg.inv(PRECISION)
    heat_ref = np.array([theory.heat_covariance(jnp.asarray(COV0, dtype), t, temp) for t in ts])
    decay = [scipy.linalg.expm(-PRECISION * t) for t in ts]
    ou_ref = np.array([e @ (COV0 - equilibrium) @ e + equilibrium for e in decay])
    heat_covs, ou_covs = _covariances(heat.xs), _covariances(ou.xs)
    heat_err = _relative_errors(heat_covs, heat_ref)
    ou_err = _relative_errors(ou_covs, ou_ref)

    sampling = 4 * np.sqrt(3 / config.n)
    stiffness = float(np.linalg.eigvalsh(PRECISION)[-1]) * config.t1 / config.steps
    transient = float(np.linalg.norm(ou_ref[-1] - equilibrium) / np.linalg.norm(equilibrium))

    result = Result("langevin-equilibrium", dataclasses.asdict(config))
    result.checks += [
        close("heat covariance vs theory (max over t)", np.max(heat_err), 0.0, sampling,
              relative=False, against="theory.heat_covariance: cov0 + 2 T t I"),
        close("OU covariance vs closed form (max over t)", np.max(ou_err), 0.0,
              sampling + stiffness, relative=False,
              against="e^{-At} (cov0 - T A^-1) e^{-At} + T A^-1 with scipy.linalg.expm"),
        close("OU final covariance vs Gibbs T A^-1", ou_covs[-1], equilibrium,
              sampling + stiffness + transient,
              against="the Gibbs measure N(0, T A^-1); allows the transient left at t1"),
        at_most("Euler-Maruyama step: lambda_max(A) dt", stiffness, 0.1,
                against="first-order bias of the stationary variance valid within 5%"),
    ]
    result.metrics.update({"heat_max_rel_error": float(np.max(heat_err)),
                           "ou_max_rel_error": float(np.max(ou_err)),
                           "heat_status": int(heat.status), "ou_status": int(ou.status)})
    result.arrays.update({"ts": ts, "heat_error": heat_err, "ou_error": ou_err})

    fig, axes = figure(3, size=3.8)
    for i, (name, emp, refs) in enumerate((("heat", heat_covs, heat_ref),
                                           ("OU", ou_covs, ou_ref))):
        for (p, q), style in (((0, 0), "C0"), ((1, 1), "C1"), ((0, 1), "C2")):
            axes[0, i].plot(ts, emp[:, p, q], "o", ms=3, color=style)
            axes[0, i].plot(ts, refs[:, p, q], "-", color=style, label=f"cov[{p},{q}]")
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
