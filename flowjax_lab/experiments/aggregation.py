"""Aggregation under an attraction-repulsion kernel: particles settle on the uniform disk.

With ``W(z) = |z|^2/2 - log|z|`` in 2-D, ``Laplacian W = 2 - 2 pi delta``, so the steady state
of ``d rho/dt = div(rho grad W * rho)`` is the uniform density 1/pi on the unit disk: second
moment E|x|^2 = 1/2 and support radius 1. The energy never increases along the flow.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import flows
from .._plotting import figure, paths
from .._simulate import simulate
from ..fields import Interaction
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 800
    t1: float = 12.0
    saved_times: int = 49
    spread: float = 2.0  # initial N(0, spread^2 I)
    rtol: float = 1e-6

    @classmethod
    def quick(cls):
        return cls(n=200, t1=8.0, saved_times=33)


@register("aggregation", theme="gradient flows and mean-field training", config=Config,
          description="Attraction-repulsion aggregation to the uniform disk; energy decrease.")
def run(config: Config, key) -> Result:
    dtype = jnp.result_type(float)
    x0 = config.spread * jax.random.normal(key, (config.n, 2), dtype)
    field = Interaction(flows.PowerLawKernel(a=2.0, b=0.0))
    traj = simulate(field, x0, t1=config.t1, saveat=config.saved_times, rtol=config.rtol,
                    atol=config.rtol)
    energy = np.asarray(flows.energy_along(field, traj.xs))
    x1 = traj.x1 - jnp.mean(traj.x1, axis=0)
    radii = jnp.linalg.norm(x1, axis=1)
    second_moment = float(jnp.mean(radii**2))
    increase = float(np.max(np.diff(energy)))

    result = Result("aggregation", dataclasses.asdict(config))
    result.checks += [
        check("second moment vs uniform disk (1/2)", second_moment, 0.5, 4 / config.n),
        check("support radius vs 1", float(jnp.max(radii)), 1.0, 1.5 / np.sqrt(config.n)),
        check("largest energy increase between saves", max(increase, 0.0), 0.0, 1e-9,
              relative=False),
    ]
    result.metrics.update({
        "energy_initial": float(energy[0]), "energy_final": float(energy[-1]),
        "second_moment": second_moment, "max_radius": float(jnp.max(radii)),
        "status": int(traj.status), "num_field_evals": int(traj.stats["num_field_evals"]),
    })
    result.arrays.update({"ts": traj.ts, "energy": energy, "x_final": traj.x1})

    fig, axes = figure(3, size=3.8)
    paths(axes[0, 0], traj.xs, count=100)
    axes[0, 0].set_title("paths (black: start, red: end)", fontsize=10)
    theta = np.linspace(0, 2 * np.pi, 200)
    axes[0, 1].scatter(*np.asarray(x1).T, s=4)
    axes[0, 1].plot(np.cos(theta), np.sin(theta), "k--", lw=1, label="unit circle")
    axes[0, 1].set_aspect("equal")
    axes[0, 1].legend(fontsize=8)
    axes[0, 1].set_title("final cloud vs predicted disk", fontsize=10)
    axes[0, 2].semilogy(np.asarray(traj.ts), energy - energy[-1] + 1e-12)
    axes[0, 2].set_xlabel("t")
    axes[0, 2].set_title("F(x_t) - F(x_T)", fontsize=10)
    result.figures["aggregation"] = fig
    return result
