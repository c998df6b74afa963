"""Finite-time blow-up of the Gaussian closure of attention with V = I.

For ``V = I`` the closure ``dS/dt = S (M + M^T) S`` (``M = K^T Q``) is solved by
``S_t = (S_0^{-1} - t (M + M^T))^{-1}``, which blows up at ``t* = 1 / lambda_max(S_0^{1/2} (M +
M^T) S_0^{1/2})``. The ODE solver's event detection is compared with that time, and particle
clouds of growing n with the closure before t*: finite clouds cannot blow up in finite time
(a softmax average of n tokens grows at most exponentially), so they leave the closure near t*,
later for larger n.
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
    sizes: tuple = (500, 4000, 16000)
    saved_times: int = 25
    steps: int = 48
    chunk_size: int = 2048

    @classmethod
    def quick(cls):
        return cls(sizes=(300, 3000), steps=24)


Q = ((1.0, 0.5), (-0.3, 0.8))
K = ((0.7, -0.4), (0.2, 0.9))
COV0 = ((1.0, 0.3), (0.3, 0.5))


@register("attention-blowup", theme="transformer dynamics", config=Config,
          description="Blow-up time of the attention covariance closure (V = I) vs particles.")
def run(config: Config, key) -> Result:
    dtype = jnp.result_type(float)
    q, k, cov0 = (jnp.asarray(a, dtype) for a in (Q, K, COV0))
    eye = jnp.eye(2, dtype=dtype)
    exact_star = float(theory.attention_covariance_identity(cov0, q, k, jnp.zeros(1, dtype))
                       .blow_up_time)
    ts = jnp.linspace(0.0, 1.2 * exact_star, config.saved_times, dtype=dtype)
    tol = 1e-8 if dtype == jnp.float64 else 1e-6
    ode = theory.attention_covariance(cov0, q, k, eye, ts, rtol=tol, atol=tol,
                                      threshold=1e8 if dtype == jnp.float64 else 1e5)
    exact = theory.attention_covariance_identity(cov0, q, k, ts)
    half = ts <= 0.5 * exact_star
    closure_norm = jnp.linalg.norm(exact.covs, axis=(1, 2))
    particle_norms, half_errors = [], []
    for n in config.sizes:
        x0 = Gaussian(jnp.zeros(2, dtype), cov0).sample(key, n)
        xs = simulate(Attention(q, k, eye, chunk_size=min(config.chunk_size, n)), x0,
                      saveat=ts, solver="rk4", steps=config.steps).xs
        covs = jnp.einsum("tni,tnj->tij", xs, xs) / n
        norms = jnp.linalg.norm(covs, axis=(1, 2))
        particle_norms.append(np.asarray(norms))
        half_errors.append(float(jnp.max(jnp.abs(norms[half] / closure_norm[half] - 1))))
    result = Result("attention-blowup", dataclasses.asdict(config))
    result.checks += [
        check("ODE blow-up time vs closed form", ode.blow_up_time, exact_star,
              1e-5 if dtype == jnp.float64 else 1e-3),
        check("particles follow closure up to t*/2 (largest n)", half_errors[-1], 0.0,
              10 / np.sqrt(config.sizes[-1]), relative=False),
        check("particles stay finite past t*", float(np.all(np.isfinite(particle_norms[-1]))),
              1.0, 0.0, relative=False),
    ]
    result.metrics.update({"blow_up_time_exact": exact_star,
                           "blow_up_time_ode": float(ode.blow_up_time)})
    result.metrics.update({f"rel_error_half_tstar_n{n}": e
                           for n, e in zip(config.sizes, half_errors, strict=True)})
    result.arrays.update({"ts": ts, "closure": exact.covs, "particle_norms":
                          np.stack(particle_norms)})

    fig, axes = figure(1, size=4.5)
    ax = axes[0, 0]
    finite = np.isfinite(np.asarray(closure_norm))
    ax.semilogy(np.asarray(ts)[finite], np.asarray(closure_norm)[finite], "k-",
                label="closure (closed form)")
    for n, norms in zip(config.sizes, particle_norms, strict=True):
        ax.semilogy(ts, norms, "o-", ms=3, label=f"particles n={n}")
    ax.axvline(exact_star, color="C3", ls="--", label="t* (closed form)")
    ax.axvline(float(ode.blow_up_time), color="C2", ls=":", label="t* (ODE event)")
    ax.set_xlabel("t")
    ax.set_ylabel("|S(t)| (Frobenius)")
    ax.legend(fontsize=8)
    result.figures["blowup"] = fig
    return result
