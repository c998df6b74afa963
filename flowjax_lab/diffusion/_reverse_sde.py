"""The reverse-time SDE ``dx = [f(t) x - g(t)^2 score(t, x)] dt + g(t) dW`` (t decreasing), on
``simulate_sde`` (Euler-Maruyama) or diffrax's Heun scheme."""

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from .. import _checks
from .._simulate_sde import simulate_sde
from .._status import finite_status, from_diffrax
from ._grid import check_times
from ._predictions import convert
from ._samples import Samples, sampler_inputs

METHODS = ("euler_maruyama", "heun")


class _ReverseDrift(eqx.Module):
    """The reverse SDE's drift in the time ``s = 1 - t`` that increases as noise is removed."""

    model: object
    process: object
    prediction: str = eqx.field(static=True)

    def __call__(self, s, x, args=None):
        t = 1 - s
        score = convert(self.process, self.prediction, "score", self.model(t, x), t, x)
        return -(self.process.f(t) * x - self.process.g2(t) * score)


class _ReverseDiffusion(eqx.Module):
    process: object

    def __call__(self, s, x, args=None):
        return self.process.diffusion(1 - s)


@eqx.filter_jit
def _heun(drift, diffusion, x, key, s0, s1, steps):
    """Diffrax's Heun scheme on ``drift ds + diffusion dW`` (additive noise: Ito = Stratonovich)."""
    ds = (s1 - s0) / steps
    # Fixed steps only query the increment of each step, once: the direct path gives it exactly.
    brownian = dfx.UnsafeBrownianPath(shape=jax.ShapeDtypeStruct(x.shape, x.dtype), key=key)
    noise = lambda s, y, args: lx.DiagonalLinearOperator(
        jnp.broadcast_to(diffusion(s, y, args), y.shape))
    terms = dfx.MultiTerm(dfx.ODETerm(drift), dfx.ControlTerm(noise, brownian))
    sol = dfx.diffeqsolve(terms, dfx.Heun(), s0, s1, ds, x, saveat=dfx.SaveAt(t1=True),
                          max_steps=steps, throw=False, adjoint=dfx.ForwardMode())
    return sol.ys[-1], finite_status(from_diffrax(sol.result), sol.ys)


def sample_reverse_sde(model, process, x, key, *, prediction: str, steps: int,
                       method: str = "euler_maruyama", t_max=1.0, t_min=1e-3) -> Samples:
    """Integrate the reverse-time SDE from noise `x` `(n, d)` at `t_max` down to `t_min`.

    **Arguments:**
    - `model`: ``(t, x) -> (n, d)``, a prediction of kind `prediction`.
    - `process`: the forward process the model belongs to.
    - `x`: particles at `t_max` (e.g. ``process.sample_prior``); `key`: the Brownian motion's.
    - `steps`: steps uniform in t.
    - `method`: "euler_maruyama" (``simulate_sde``; weak order 1, one evaluation a step) or
      "heun" (diffrax's stochastic Heun; weak order 2 for this additive noise on a Gaussian
      target, two evaluations a step).

    With powers of two for `steps` the Brownian increments are exact (the virtual Brownian tree's
    nodes fall on the grid).

    **Returns:** [`Samples`][].
    """
    process, x, prediction = sampler_inputs(model, process, x, prediction)
    key = _checks.key(key)
    steps = _checks.positive_int(steps, "steps")
    method = _checks.choice(method, METHODS, "method")
    t_max, t_min = check_times(process, t_max, t_min)
    with jax.ensure_compile_time_eval():  # a Python number: known even inside `jit`
        g2_max = np.asarray(process.g2(np.asarray(t_max)))
    if not np.isfinite(g2_max):
        raise ValueError(f"`t_max` = {t_max}: the diffusion g(t_max) is infinite there; choose "
                         f"t_max < 1.")
    drift = _ReverseDrift(model, process, prediction)
    diffusion = _ReverseDiffusion(process)
    s0, s1 = jnp.asarray(1 - t_max, x.dtype), jnp.asarray(1 - t_min, x.dtype)
    if method == "euler_maruyama":
        traj = simulate_sde(drift, diffusion, x, key, t0=s0, t1=s1, steps=steps)
        return Samples(traj.x1, jnp.asarray(steps), traj.status)
    x1, status = _heun(drift, diffusion, x, key, s0, s1, steps)
    return Samples(x1, jnp.asarray(2 * steps), status)
