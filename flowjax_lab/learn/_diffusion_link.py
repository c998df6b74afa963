"""Velocity, score and denoiser of the flow-matching path from a standard Gaussian: conversions.

With X0 ~ N(0, I) at t = 0, X1 ~ data at t = 1 and X_t = (1 - t) X0 + t X1 (law alpha_t), Tweedie's
identity ``E[X0 | X_t = x] = -(1 - t) grad log alpha_t(x)`` ties the three predictions together:

- velocity  ``v = E[X1 - X0 | x] = (x + (1 - t) s) / t``,
- score     ``s = grad log alpha_t(x) = (t v - x) / (1 - t)``,
- denoiser  ``D = E[X1 | x] = x + (1 - t) v = (x + (1 - t)^2 s) / t``.

The formula ``x / (1 - t) + t / (1 - t) s`` often quoted for the velocity is this one with t
replaced by 1 - t (the convention with data at t = 0 and noise at t = 1); in this convention it is
wrong except at t = 1/2.

Each conversion divides by t or by 1 - t: it is singular at one end (velocity from score at t = 0,
score from velocity at t = 1); the caller chooses times inside (0, 1) there.
"""

import equinox as eqx
import jax.numpy as jnp

from .. import _checks
from .._types import Particles, ParticlesLike

KINDS = ("velocity", "score", "denoiser")


def _to_denoiser(kind, value, t, x):
    if kind == "velocity":
        return x + (1 - t) * value
    if kind == "score":
        return (x + (1 - t) ** 2 * value) / t
    return value


def _from_denoiser(kind, denoiser, t, x):
    if kind == "velocity":
        return (denoiser - x) / (1 - t)
    if kind == "score":
        return (t * denoiser - x) / (1 - t) ** 2
    return denoiser


def _direct(source, target, value, t, x):
    """The conversions that avoid the denoiser's extra division."""
    if (source, target) == ("score", "velocity"):
        return (x + (1 - t) * value) / t
    if (source, target) == ("velocity", "score"):
        return (t * value - x) / (1 - t)
    return _from_denoiser(target, _to_denoiser(source, value, t, x), t, x)


def convert(value: ParticlesLike, t, x: ParticlesLike, *, source: str,
            target: str) -> Particles:
    """Convert a prediction at particles `x` `(n, d)` and time `t` from `source` to `target`.

    **Arguments:**
    - `value`: the `source` prediction at `x`, shape `(n, d)`.
    - `t`: a scalar or per-particle times `(n,)`, in [0, 1].
    - `source`, `target`: each one of "velocity", "score", "denoiser".

    **Returns:** the `target` prediction, shape `(n, d)`, in the dtype of `x`.
    """
    source = _checks.choice(source, KINDS, "source")
    target = _checks.choice(target, KINDS, "target")
    x = _checks.particles(x, "x")
    value = _checks.as_float_array(value, "value").astype(x.dtype)
    if value.shape != x.shape:
        raise ValueError(f"`value` must be shaped like `x` {x.shape}, got {tuple(value.shape)}.")
    t = _checks.unit_interval(jnp.asarray(t, x.dtype))
    if t.ndim > 1 or (t.ndim == 1 and t.shape != x.shape[:1]):
        raise ValueError(f"`t` must be a scalar or of shape ({x.shape[0]},), got {t.shape}.")
    t = jnp.broadcast_to(t, x.shape[:1])[:, None]
    return _direct(source, target, value, t, x)


class ConvertedField(eqx.Module):
    """A prediction model read as another kind: ``ConvertedField(model, "score", "velocity")``
    turns a score model ``s(t, x, args)`` into a velocity field for ``simulate``.

    **Arguments:** `model` ``(t, x, args) -> (n, d)``; `source`, `target` as in [`convert`][].
    """

    model: object
    source: str = eqx.field(static=True)
    target: str = eqx.field(static=True)

    def __init__(self, model, source: str, target: str):
        if not callable(model):
            raise TypeError(f"`model` must be callable as model(t, x, args), got {type(model)}.")
        self.model = model
        self.source = _checks.choice(source, KINDS, "source")
        self.target = _checks.choice(target, KINDS, "target")

    def __call__(self, t, x, args=None) -> Particles:
        tt = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:1])[:, None]
        return _direct(self.source, self.target, self.model(t, x, args), tt, x)
