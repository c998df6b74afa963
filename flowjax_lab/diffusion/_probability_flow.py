"""The probability-flow ODE ``dx/dt = f(t) x - g(t)^2 / 2 score(t, x)``: sampling and likelihood,
on ``simulate`` (diffrax)."""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp

from .. import _checks
from .._simulate import simulate
from .._trajectory import Trajectory
from .._types import Array, Particles
from ..learn import Reversed
from ..measures import isotropic_log_prob
from ._grid import check_times
from ._predictions import check_prediction, check_process, convert
from ._samples import Samples, check_model, sampler_inputs


class ProbabilityFlow(eqx.Module):
    """A diffusion model read as the velocity field of its probability-flow ODE, callable as
    ``field(t, x, args)`` for ``simulate`` (time in the diffusion convention: data at t = 0).

    **Arguments:** `model` ``(t, x) -> (n, d)``; `process`; `prediction`, the kind `model` returns
    ("eps", "x0", "v", "score" or "velocity").
    """

    model: object
    process: object
    prediction: str = eqx.field(static=True)

    def __init__(self, model, process, prediction: str):
        if not callable(model):
            raise TypeError(f"`model` must be callable as model(t, x), got "
                            f"{type(model).__name__}.")
        self.model = model
        self.process = check_process(process)
        self.prediction = check_prediction(prediction)

    def __call__(self, t, x, args=None) -> Particles:
        return convert(self.process, self.prediction, "velocity", self.model(t, x), t, x)


def sample_probability_flow(model, process, x, *, prediction: str, solver: str | None = None,
                            steps: int | None = None, rtol=1e-5, atol=1e-5, t_max=1.0,
                            t_min=1e-3, max_steps: int = 4096) -> Samples:
    """Integrate the probability-flow ODE from noise `x` `(n, d)` at `t_max` down to `t_min`.

    **Arguments:**
    - `model`: ``(t, x) -> (n, d)``, a prediction of kind `prediction`.
    - `process`: the forward process the model belongs to.
    - `x`: particles at `t_max` (e.g. ``process.sample_prior``).
    - `solver`, `steps`: `steps=None` is adaptive (tsit5 unless `solver` is given, with `rtol`,
      `atol`, `max_steps`); an integer uses that many steps uniform in t (Euler unless `solver`
      is given).

    **Returns:** [`Samples`][] (the status is that of ``simulate``).
    """
    process, x, prediction = sampler_inputs(model, process, x, prediction)
    t_max, t_min = check_times(process, t_max, t_min)
    solver = solver or ("tsit5" if steps is None else "euler")
    # Time runs backwards: s = 1 - t goes from 1 - t_max to 1 - t_min.
    traj = simulate(Reversed(ProbabilityFlow(model, process, prediction)), x, t0=1 - t_max,
                    t1=1 - t_min, solver=solver, steps=steps, rtol=rtol, atol=atol,
                    max_steps=max_steps)
    return Samples(traj.x1, traj.stats["num_field_evals"], traj.status)


def log_likelihood(model, process, x, *, prediction: str, prior_log_prob: Callable | None = None,
                   method: str = "exact", key=None, solver: str | None = None,
                   steps: int | None = None, rtol=1e-5, atol=1e-5, t_max=1.0, t_min=1e-3,
                   max_steps: int = 4096) -> tuple[Array, Trajectory]:
    """Log-density at `x` `(n, d)` of the model's marginal at `t_min`, by the probability-flow ODE.

    Integrates the ODE forward from `t_min` to `t_max` with ``simulate(log_density=method)`` and
    uses ``log p_tmin(x) = log p_tmax(x_tmax) + int div(velocity) dt``.

    **Arguments:**
    - `prior_log_prob`: ``(n, d) -> (n,)``, the law at `t_max`; N(0, sigma(t_max)^2 I) if `None`.
    - `method`: "exact" (d JVPs per evaluation) or "hutchinson" (one, needs `key`).
    - `solver`, `steps`, `rtol`, `atol`, `max_steps`: as in [`sample_probability_flow`][].

    **Returns:** `(log_p (n,), trajectory)`; the trajectory (from `x` to t_max) carries the
    run's `status`.
    """
    process = check_process(process)
    prediction = check_prediction(prediction)
    x = _checks.particles(x, "x")
    check_model(model, jnp.ones((), x.dtype), x)
    t_max, t_min = check_times(process, t_max, t_min)
    if prior_log_prob is None:
        std = process.sigma(jnp.asarray(t_max, x.dtype))
        prior_log_prob = lambda z: isotropic_log_prob(z, variance=std**2)
    elif not callable(prior_log_prob):
        raise TypeError(f"`prior_log_prob` must be callable as prior_log_prob(x) -> (n,), got "
                        f"{type(prior_log_prob).__name__}.")
    solver = solver or ("tsit5" if steps is None else "euler")
    traj = simulate(ProbabilityFlow(model, process, prediction), x, t0=t_min, t1=t_max,
                    solver=solver, steps=steps, rtol=rtol, atol=atol, max_steps=max_steps,
                    log_density=method, key=key)
    return prior_log_prob(traj.x1) - traj.logp[-1], traj
