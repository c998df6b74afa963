"""Finite-time blow-up of the Gaussian closure of attention with V = I.

For ``V = I`` the closure ``dS/dt = S (M + M^T) S`` (``M = K^T Q``) is solved by
``S_t = (S_0^{-1} - t (M + M^T))^{-1}``, which blows up at ``t* = 1 / lambda_max(S_0^{1/2} (M +
M^T) S_0^{1/2})``. Particle clouds of growing n follow this closed form well before t* (checked at
t*/4 and t*/2, to within the sampling error of the n initial tokens); finite clouds cannot blow up
(a softmax average of n tokens grows at most like e^t), so they leave the closure near t*, later
for larger n, and stay finite past it.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

from .. import theory
from .._plotting import figure
from .._simulate import simulate
from ..fields import Attention
from ..measures import Gaussian
from ._config import validate
from ._registry import register
from ._result import Result, at_most, close


@dataclasses.dataclass(frozen=True)
class Config:
    sizes: tuple = (500, 4000, 16000)
    saved_times: int = 25
    steps: int = 48
    chunk_size: int = 2048
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, counts=("sizes", "saved_times", "steps", "chunk_size"))

    @classmethod
    def quick(cls):
        return cls(sizes=(300, 3000), steps=24)


Q = ((1.0, 0.5), (-0.3, 0.8))
K = ((0.7, -0.4), (0.2, 0.9))
COV0 = ((1.0, 0.3), (0.3, 0.5))
CHECKED_FRACTIONS = ((0.25, "t*/4"), (0.5, "t*/2"))  # of t*, where particles meet the closure


def _sampling_error(cov0, cov_t, n: int) -> float:
    """Relative Frobenius sd of the closed form at time t started from the sample second moment
    of n tokens instead of `cov0` (first order): ``S_t = (S_0^{-1} - t B)^{-1}`` moves a change
    ``D`` of ``S_0`` to ``A D A^T`` with ``A = S_t S_0^{-1}``, and for a Wishart sample
    ``E|A D A^T|_F^2 = ((tr C)^2 + |C|_F^2) / n`` with ``C = A S_0 A^T = S_t S_0^{-1} S_t``."""
    c = cov_t @ jnp.linalg.solve(cov0, cov_t)
    return float(jnp.sqrt((jnp.trace(c) ** 2 + jnp.sum(c**2)) / n) / jnp.linalg.norm(cov_t))


@register("attention-blowup", theme="transformer dynamics", config=Config,
          description="Blow-up time of the attention covariance closure (V = I) vs particles.")
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    q, k, cov0 = (jnp.asarray(a, dtype) for a in (Q, K, COV0))
    eye = jnp.eye(2, dtype=dtype)
    exact_star = float(theory.attention_covariance_identity(cov0, q, k, jnp.zeros(1, dtype))
                       .blow_up_time)
    ts = jnp.linspace(0.0, 1.2 * exact_star, config.saved_times, dtype=dtype)
    exact = theory.attention_covariance_identity(cov0, q, k, ts)
    half = ts <= 0.5 * exact_star
    closure_norm = jnp.linalg.norm(exact.covs, axis=(1, 2))
    particle_moments, half_errors = [], []
    for n in config.sizes:
        x0 = Gaussian(jnp.zeros(2, dtype), cov0).sample(key, n)
        xs = simulate(Attention(q, k, eye, chunk_size=min(config.chunk_size, n)), x0,
                      saveat=ts, solver="rk4", steps=config.steps).xs
        moments = jnp.einsum("tni,tnj->tij", xs, xs) / n
        particle_moments.append(moments)
        half_errors.append(float(jnp.max(jnp.linalg.norm(moments[half] - exact.covs[half],
                                                         axis=(1, 2)) / closure_norm[half])))
    n, moments = config.sizes[-1], particle_moments[-1]  # x0, xs: the largest cloud
    result = Result("attention-blowup", dataclasses.asdict(config))
    # The error is dominated by the sampling error of the n initial tokens, propagated by the
    # closed form: a relative sd `sigma` (`_sampling_error`). The field's own finite-n fluctuation
    # is a second, smaller O(n^-1/2) term: over seeds the rms error is ~1 sigma up to t*/2. The
    # error is the norm of a 3-component (symmetric 2 x 2) vector, lighter-tailed than a scalar
    # Gaussian: 5 sigma fails with probability < 1e-4.
    for fraction, label in CHECKED_FRACTIONS:
        i = int(np.argmin(np.abs(np.asarray(ts) - fraction * exact_star)))
        sigma = _sampling_error(cov0, exact.covs[i], n)
        result.checks.append(close(
            f"particle second moment vs closed form at {label} (n={n})", moments[i],
            exact.covs[i], 5 * sigma,
            against=f"theory.attention_covariance_identity (closed form, V = I); tolerance 5 "
                    f"sigma, sigma = {sigma:.3g} the sampling error of n tokens"))
    radius0, radius1 = (float(jnp.max(jnp.linalg.norm(x, axis=-1))) for x in (x0, xs[-1]))
    # Each token's velocity is a convex combination of the tokens, so max_i |x_i| grows at most
    # like e^t (Gronwall); one RK4 step multiplies it by at most 1 + h + ... + h^4/24 <= e^h.
    result.checks.append(at_most(
        f"particles finite past t*: max |x_i| at {float(ts[-1] / exact_star):.2g} t* (n={n})",
        radius1, radius0 * float(np.exp(ts[-1])),
        against="Gronwall bound max_i |x_i(0)| e^t for softmax averages (V = I)"))
    result.metrics.update({"blow_up_time_exact": exact_star, "max_norm_past_tstar": radius1})
    result.metrics.update({f"rel_error_half_tstar_n{n}": e
                           for n, e in zip(config.sizes, half_errors, strict=True)})
    particle_norms = np.stack([np.asarray(jnp.linalg.norm(m, axis=(1, 2)))
                               for m in particle_moments])
    result.arrays.update({"ts": ts, "closure": exact.covs, "particle_norms": particle_norms})

    fig, axes = figure(1, size=4.5)
    ax = axes[0, 0]
    finite = np.isfinite(np.asarray(closure_norm))
    ax.semilogy(np.asarray(ts)[finite], np.asarray(closure_norm)[finite], "k-",
                label="closure (closed form)")
    for n, norms in zip(config.sizes, particle_norms, strict=True):
        ax.semilogy(ts, norms, "o-", ms=3, label=f"particles n={n}")
    ax.axvline(exact_star, color="C3", ls="--", label="t* (closed form)")
    ax.set_xlabel("t")
    ax.set_ylabel("|S(t)| (Frobenius)")
    ax.legend(fontsize=8)
    result.figures["blowup"] = fig
    return result
