"""The JKO scheme converges to the particle gradient flow as tau -> 0 (first order in tau)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import flows
from .._plotting import figure
from .._simulate import simulate
from ..fields import Interaction
from ._registry import register
from ._result import Result, check


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 64
    horizon: float = 1.0
    steps: tuple = (4, 8, 16, 32, 64)

    @classmethod
    def quick(cls):
        return cls(n=24, horizon=0.5, steps=(4, 8, 16))


@register("jko-vs-flow", theme="gradient flows and mean-field training", config=Config,
          description="JKO minimizing movements vs the explicit particle flow as tau -> 0.")
def run(config: Config, key) -> Result:
    dtype = jnp.result_type(float)
    x0 = jax.random.normal(key, (config.n, 2), dtype)
    field = Interaction(flows.PowerLawKernel(2.0, 0.5), flows.QuadraticPotential(0.5))
    exact = simulate(field, x0, t1=config.horizon, saveat=65, rtol=1e-9, atol=1e-9)
    taus, errors, statuses, last = [], [], [], None
    for k in config.steps:
        traj = flows.jko(field.energy, x0, config.horizon / k, k)
        taus.append(config.horizon / k)
        errors.append(float(jnp.sqrt(jnp.mean(jnp.sum((traj.x1 - exact.x1) ** 2, axis=1)))))
        statuses.append(int(traj.status))
        last = traj
    slope = float(np.polyfit(np.log(taus), np.log(errors), 1)[0])
    energy = np.asarray(flows.energy_along(field, last.xs))

    result = Result("jko-vs-flow", dataclasses.asdict(config))
    result.checks += [
        check("log-log slope of error vs tau (implicit Euler: 1)", slope, 1.0, 0.15),
        check("JKO energy increase (finest tau)", max(float(np.max(np.diff(energy))), 0.0), 0.0,
              1e-10, relative=False),
        check("all JKO solves converged", float(max(statuses)), 0.0, 0.0, relative=False),
    ]
    result.metrics.update({f"rms_error_tau_{t:.4g}": e for t, e in zip(taus, errors,
                                                                       strict=True)})
    result.metrics["slope"] = slope
    result.arrays.update({"taus": np.array(taus), "errors": np.array(errors)})

    fig, axes = figure(2, size=3.8)
    axes[0, 0].loglog(taus, errors, "o-", label="JKO vs flow at t1")
    axes[0, 0].loglog(taus, errors[0] * np.array(taus) / taus[0], "k--", label="slope 1")
    axes[0, 0].set_xlabel("tau")
    axes[0, 0].legend(fontsize=8)
    xs, js = np.asarray(exact.xs), np.asarray(last.xs)
    for i in range(min(30, config.n)):
        axes[0, 1].plot(xs[:, i, 0], xs[:, i, 1], "C0", lw=0.8)
        axes[0, 1].plot(js[:, i, 0], js[:, i, 1], "C3.", ms=2)
    axes[0, 1].set_title("flow (lines) and finest JKO (dots)", fontsize=10)
    result.figures["jko"] = fig
    return result
