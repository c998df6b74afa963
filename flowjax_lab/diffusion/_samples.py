"""What every sampler returns, and the argument checks they share."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._status import HasStatus, Status, finite_status
from .._types import Array, Particles
from ._predictions import check_prediction, check_process


class Samples(HasStatus, eqx.Module):
    """The output of a sampler.

    **Fields:** `x` the particles at `t_min`, shape `(n, d)`; `nfe` the number of model
    evaluations (an integer array); `status` a [`Status`][flowjax_lab.Status] code, read by
    `ok`, `message` and `raise_on_failure` as for a `Trajectory`.
    """

    x: Particles
    nfe: Array
    status: Array

    what = "sampling"


def discrete_samples(x, nfe: int) -> Samples:
    """A fixed-step sampler's output: success unless the particles are NaN or inf."""
    return Samples(x, jnp.asarray(nfe), finite_status(Status.SUCCESS, x))


def check_model(model, t, x, name: str = "model") -> None:
    """``model(t, x)`` must trace and return an array shaped like `x`."""
    if not callable(model):
        raise TypeError(f"`{name}` must be callable as {name}(t, x), got {type(model).__name__}.")
    try:
        out = jax.eval_shape(model, t, x)
    except TypeError as err:
        raise TypeError(f"`{name}` must be callable as {name}(t, x): {err}") from err
    if getattr(out, "shape", None) != x.shape:
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"`{name}` must return an array shaped like x {x.shape}, got {got}.")


def sampler_inputs(model, process, x, prediction):
    """Checked `(process, x, prediction)`; `model` is traced once at t = 1."""
    process = check_process(process)
    prediction = check_prediction(prediction)
    x = _checks.particles(x, "x")
    check_model(model, jnp.ones((), x.dtype), x)
    return process, x, prediction
