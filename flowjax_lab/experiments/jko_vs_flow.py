"""The JKO scheme converges to the particle gradient flow as tau -> 0 (first order in tau).

The reference is the flow itself, solved by diffrax at rtol 1e-9. Implicit Euler on a mode of
rate lambda over a horizon T has the error ``c tau (1 + lambda tau (lambda T / 4 - 2/3) + ...)``,
so the log-log slope of the error against tau is 1 within ``lambda tau_max (2/3 + lambda T / 4)``;
the rates here are at most about 1.5 (confinement 0.5, mean-field attraction 1).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .. import flows
from .._plotting import figure
from .._simulate import simulate
from .._status import Status
from ..fields import Interaction
from ._config import validate
from ._registry import register
from ._result import Result, at_most, close, holds

RATE = 1.5  # largest relaxation rate of the flow (see the module docstring)


@dataclasses.dataclass(frozen=True)
class Config:
    n: int = 64
    horizon: float = 1.0
    step_counts: tuple = (4, 8, 16, 32, 64)  # JKO steps over the horizon: tau = horizon / k
    dtype: str = "float32"

    def __post_init__(self):
        validate(self, positive=("horizon",), counts=("n", "step_counts"))

    @classmethod
    def quick(cls):
        return cls(n=24, horizon=0.5, step_counts=(4, 8, 16))


def _slope(taus, errors) -> float:
    """Least-squares slope of log(error) against log(tau); NaN when an error is not finite."""
    if not np.all(np.isfinite(errors) & (errors > 0)):
        return float("nan")
    return float(np.polyfit(np.log(taus), np.log(errors), 1)[0])


@register("jko-vs-flow", theme="gradient flows and mean-field training", config=Config,
          description="JKO minimizing movements vs the explicit particle flow as tau -> 0.")
@np.errstate(invalid="ignore", over="ignore")  # a blown-up cloud gives NaN, which fails checks
def run(config: Config, key) -> Result:
    dtype = jnp.dtype(config.dtype)
    x0 = jax.random.normal(key, (config.n, 2), dtype)
    field = Interaction(flows.PowerLawKernel(2.0, 0.5), flows.QuadraticPotential(0.5))
    exact = simulate(field, x0, t1=config.horizon, saveat=65, rtol=1e-9, atol=1e-9)
    taus = np.array([config.horizon / k for k in config.step_counts])
    errors, statuses, last = [], [], None
    for tau, k in zip(taus, config.step_counts, strict=True):
        traj = flows.jko(field.energy, x0, tau, k)
        errors.append(float(jnp.sqrt(jnp.mean(jnp.sum((traj.x1 - exact.x1) ** 2, axis=1)))))
        statuses.append(int(traj.status))
        last = traj
    errors = np.array(errors)
    slope = _slope(taus, errors)
    energy = np.asarray(flows.energy_along(field, last.xs), np.float64)
    # Energies of clouds a step apart differ at least by tau times the dissipation; their
    # rounding is a few eps of F.
    energy_noise = 10 * float(jnp.finfo(dtype).eps) * np.max(np.abs(energy))
    failed = {Status.message(s) for s in statuses + [int(exact.status)] if s != Status.SUCCESS}

    result = Result("jko-vs-flow", dataclasses.asdict(config))
    result.checks += [
        close("log-log slope of error vs tau (implicit Euler: 1)", slope, 1.0,
              RATE * np.max(taus) * (2 / 3 + RATE * config.horizon / 4),
              against="first-order convergence of implicit Euler; reference flow by diffrax at "
                      "rtol 1e-9"),
        at_most("JKO energy increase (finest tau)", np.max(np.diff(energy)), energy_noise,
                against="each minimizing movement lowers F; bound: rounding of F"),
        holds("reference flow and every JKO solve succeeded", not failed,
              against="diffrax and optimistix L-BFGS statuses: "
                      + ("; ".join(sorted(failed)) or "all succeeded")),
    ]
    result.metrics.update({f"rms_error_tau_{t:.4g}": e for t, e in zip(taus, errors,
                                                                       strict=True)})
    result.metrics["slope"] = slope
    result.arrays.update({"taus": taus, "errors": errors})

    fig, axes = figure(2, size=3.8)
    axes[0, 0].loglog(taus, errors, "o-", label="JKO vs flow at t1")
    axes[0, 0].loglog(taus, errors[0] * taus / taus[0], "k--", label="slope 1")
    axes[0, 0].set_xlabel("tau")
    axes[0, 0].legend(fontsize=8)
    xs, js = np.asarray(exact.xs), np.asarray(last.xs)
    for i in range(min(30, config.n)):
        axes[0, 1].plot(xs[:, i, 0], xs[:, i, 1], "C0", lw=0.8)
        axes[0, 1].plot(js[:, i, 0], js[:, i, 1], "C3.", ms=2)
    axes[0, 1].set_title("flow (lines) and finest JKO (dots)", fontsize=10)
    result.figures["jko"] = fig
    return result
