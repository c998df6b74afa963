"""What a diffusion model predicts, and the exact conversions between the kinds.

At ``x = alpha x0 + sigma eps`` a model predicts one of (all posterior means given `x`):

- "eps": the noise ``E[eps | x]``;
- "x0": the data ``E[x0 | x]`` (the denoiser);
- "v": ``alpha E[eps | x] - sigma E[x0 | x]`` (Salimans and Ho's v-prediction);
- "score": ``grad log p_t(x) = -E[eps | x] / sigma`` (Tweedie);
- "velocity": the probability-flow ODE's velocity
  ``f x - g^2 / 2 score = alpha' E[x0 | x] + sigma' E[eps | x]``.

Every kind is linear in the pair ``(E[x0 | x], E[eps | x])`` given `x`, which is how each is
converted. Some conversions divide by alpha or sigma and are singular where these vanish (eps or
score to x0 at alpha = 0, x0 to eps or score at sigma = 0); the rest are regular everywhere.
"""

from typing import NamedTuple

import jax.numpy as jnp

from .. import _checks
from .._types import Particles
from ._process import AbstractProcess, _column, times_for

PREDICTIONS = ("eps", "x0", "v", "score", "velocity")


def check_process(process) -> AbstractProcess:
    if not isinstance(process, AbstractProcess):
        raise TypeError(f"`process` must be a diffusion process (VP, VE, FlowMatchingPath, ...), "
                        f"got {type(process).__name__}.")
    return process


def check_prediction(prediction, name: str = "prediction") -> str:
    return _checks.choice(prediction, PREDICTIONS, name)


class Coefficients(NamedTuple):
    """``alpha, sigma`` and their time derivatives at the times of a cloud, broadcastable."""

    a: object
    s: object
    da: object
    ds: object

    @classmethod
    def at(cls, process: AbstractProcess, t, x) -> "Coefficients":
        t = jnp.asarray(t, x.dtype)
        return cls(*(_column(c(t), x) for c in (process.alpha, process.sigma, process.d_alpha,
                                                process.d_sigma)))


def eps_of(kind: str, value, x, c: Coefficients):
    """``E[eps | x]`` from a prediction of `kind`."""
    if kind == "eps":
        return value
    if kind == "x0":
        return (x - c.a * value) / c.s
    if kind == "v":
        return (c.s * x + c.a * value) / (c.a**2 + c.s**2)
    if kind == "score":
        return -c.s * value
    return (c.a * value - c.da * x) / (c.a * c.ds - c.s * c.da)


def x0_of(kind: str, value, x, c: Coefficients):
    """``E[x0 | x]`` from a prediction of `kind`."""
    if kind == "eps":
        return (x - c.s * value) / c.a
    if kind == "x0":
        return value
    if kind == "v":
        return (c.a * x - c.s * value) / (c.a**2 + c.s**2)
    if kind == "score":
        return (x + c.s**2 * value) / c.a
    return (c.ds * x - c.s * value) / (c.a * c.ds - c.s * c.da)


def convert_with(c: Coefficients, source: str, target: str, value, x):
    """The conversion with precomputed coefficients (no checks; for samplers and losses)."""
    if source == target:
        return value
    if target == "eps":
        return eps_of(source, value, x, c)
    if target == "x0":
        return x0_of(source, value, x, c)
    if target == "score":
        if source == "x0":  # avoids the detour through eps
            return (c.a * value - x) / c.s**2
        return -eps_of(source, value, x, c) / c.s
    eps, x0 = eps_of(source, value, x, c), x0_of(source, value, x, c)
    if target == "v":
        return c.a * eps - c.s * x0
    return c.da * x0 + c.ds * eps


def convert(process: AbstractProcess, source: str, target: str, value, t, x):
    """The conversion at times `t` (no checks)."""
    return convert_with(Coefficients.at(process, t, x), source, target, value, x)


def convert_prediction(value, t, x, process, source: str, target: str) -> Particles:
    """Convert a model's prediction at particles `x` `(n, d)` and time `t` from `source` to
    `target`, for the forward `process`.

    **Arguments:**
    - `value`: the `source` prediction at `x`, shape `(n, d)`.
    - `t`: a scalar or per-particle times `(n,)`, in [0, 1].
    - `process`: a forward process ([`VP`][], [`VE`][], [`FlowMatchingPath`][]).
    - `source`, `target`: each one of "eps", "x0", "v", "score", "velocity".

    **Returns:** the `target` prediction, shape `(n, d)`, in the dtype of `x`.
    """
    process = check_process(process)
    source = check_prediction(source, "source")
    target = check_prediction(target, "target")
    x = _checks.particles(x, "x")
    value = _checks.as_float_array(value, "value").astype(x.dtype)
    if value.shape != x.shape:
        raise ValueError(f"`value` must be shaped like `x` {x.shape}, got {tuple(value.shape)}.")
    return convert(process, source, target, value, times_for(t, x), x)
