"""Aggregation under an attraction-repulsion kernel: particles settle on the uniform disk.

With ``W(z) = |z|^2/2 - log|z|`` in 2-D, ``Laplacian W = 2 - 2 pi delta``, so the steady state
of ``d rho/dt = div(rho grad W * rho)`` is the uniform density 1/pi on the unit disk: support
radius 1, radial distribution function r^2. For n particles, ``z . grad W(z) = |z|^2 - 1`` gives
the exact virial identity ``d m2/dt = -2 m2 + (n - 1)/n`` for the centred second moment
``m2 = mean |x_i - mean x|^2``, so ``m2(t) = m + (m2(0) - m) e^{-2t}`` with
``m = (n - 1)/(2n)`` (1/2 as n -> infinity), along the whole flow. The energy never increases.

Tolerances: the virial check compares an adaptive solve with an exact formula, so it allows
the solve's global error, at most about 100 times its rtol (or the dtype's rounding). A discrete
equilibrium of n particles resolves the disk to one inter-particle spacing ``h = sqrt(pi / n)``:
the support radius is allowed h; the outer ring holds about ``2 pi / h`` particles, a jump of 2h
in the radial distribution function, whose Kolmogorov-Smirnov distance to r^2 is allowed 2h.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import flows
from .._plotting import figure, paths
from .._simulate import simulate
from ..fields import Interaction
from ._config import validate
from ._registry import register
from ._result import Result, at_most, close


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 800
    t1: float = 12.0
    saved_times: int = 49
    spread: float = 2.0  # initial N(0, spread^2 I)
    rtol: float = 1e-6
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("t1", "spread", "rtol"), counts=("n", "saved_times"))

    @classmethod
    def quick(cls):
        return cls(n=200, t1=8.0, saved_times=33)


@register("aggregation", theme="gradient flows and mean-field training", config=Config,
          description="Attraction-repulsion aggregation to the uniform disk; energy decrease.")
@np.errstate(invalid="ignore", over="ignore")  # a blown-up cloud gives NaN, which fails checks
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    x0 = config.spread * jax.random.normal(key, (config.n, 2), dtype)
    field = Interaction(flows.PowerLawKernel(a=2.0, b=0.0))
    traj = simulate(field, x0, t1=config.t1, saveat=config.saved_times, rtol=config.rtol,
                    atol=config.rtol)
    energy = np.asarray(flows.energy_along(field, traj.xs), np.float64)
    xs, ts = np.asarray(traj.xs, np.float64), np.asarray(traj.ts, np.float64)
    centred = xs - xs.mean(axis=1, keepdims=True)
    moments = np.mean(np.sum(centred**2, axis=-1), axis=-1)
    limit = (config.n - 1) / (2 * config.n)
    virial = limit + (moments[0] - limit) * np.exp(-2 * ts)
    radii = np.sort(np.linalg.norm(centred[-1], axis=1))
    above = np.arange(1, config.n + 1) / config.n  # the radial CDF just after each radius
    ks = np.max(np.maximum(np.abs(above - radii**2), np.abs(above - 1 / config.n - radii**2)))
    spacing = np.sqrt(np.pi / config.n)
    rounding = 100 * max(config.rtol, float(jnp.finfo(dtype).eps))
    # Energies of clouds that have stopped moving differ by rounding: the sum of n^2 pair terms
    # carries a relative error of a few eps.
    energy_noise = 10 * float(jnp.finfo(dtype).eps) * np.max(np.abs(energy))

    result = Result("aggregation", dataclasses.asdict(config))
    result.checks += [
        close("second moment vs virial closed form (max over t)",
              np.max(np.abs(moments - virial) / virial), 0.0, rounding, relative=False,
              against="m2(t) = m + (m2(0) - m) e^{-2t}, m = (n-1)/(2n), from z.grad W = |z|^2 - 1"),
        close("radial distribution vs uniform disk (KS)", ks, 0.0, 2 * spacing, relative=False,
              against="CDF r^2 of the uniform density 1/pi on the unit disk"),
        close("support radius vs 1", radii[-1], 1.0, spacing,
              against="edge of the uniform disk (continuum steady state)"),
        at_most("largest energy increase between saves", np.max(np.diff(energy)), energy_noise,
                against="a gradient flow's energy never increases; bound: rounding of F"),
    ]
    result.metrics.update({
        "energy_initial": float(energy[0]), "energy_final": float(energy[-1]),
        "second_moment": float(moments[-1]), "max_radius": float(radii[-1]),
        "radial_ks": float(ks),
        "status": int(traj.status), "num_field_evals": int(traj.stats["num_field_evals"]),
    })
    result.arrays.update({"ts": traj.ts, "energy": energy, "x_final": traj.x1})

    fig, axes = figure(3, size=3.8)
    paths(axes[0, 0], traj.xs, count=100)
    axes[0, 0].set_title("paths (black: start, red: end)", fontsize=10)
    theta = np.linspace(0, 2 * np.pi, 200)
    axes[0, 1].scatter(*centred[-1].T, s=4)
    axes[0, 1].plot(np.cos(theta), np.sin(theta), "k--", lw=1, label="unit circle")
    axes[0, 1].set_aspect("equal")
    axes[0, 1].legend(fontsize=8)
    axes[0, 1].set_title("final cloud vs predicted disk", fontsize=10)
    axes[0, 2].semilogy(ts, energy - energy[-1] + 1e-12)
    axes[0, 2].set_xlabel("t")
    axes[0, 2].set_title("F(x_t) - F(x_T)", fontsize=10)
    result.figures["aggregation"] = fig
    return result
