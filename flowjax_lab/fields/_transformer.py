"""The discrete residual transformer: L layers of step 1/L, whose limit is the attention ODE."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._types import ParticlesLike, Path, ScalarLike


def residual_transformer(field, x0: ParticlesLike, layers: int, *, t0: ScalarLike = 0.0,
                         t1: ScalarLike = 1.0, args=None, normalize=None) -> Path:
    """Tokens through `layers` residual layers ``x_{l+1} = x_l + h field(t_l, x_l)``, with
    ``h = (t1 - t0) / layers`` and ``t_l = t0 + l h`` (so a [`PiecewiseConstant`][] parameter with
    `layers` pieces gives layer l its own parameters).

    **Arguments:**
    - `field`: ``f(t, x, args) -> dx`` on the cloud, e.g. an [`Attention`][] field.
    - `x0`: tokens `(n, d)`; `layers`: number of layers L >= 1.
    - `normalize`: project every layer's output back on the unit sphere (the layer-norm model);
      default: the field's own `sphere` flag.

    **Returns:** the tokens after each layer, `(L + 1, n, d)` (index 0 is `x0`).
    """
    x0 = _checks.particles(x0, "x0")
    layers = _checks.positive_int(layers, "layers")
    t0, t1 = _checks.time_interval(t0, t1)
    if normalize is None:
        normalize = bool(getattr(field, "sphere", False))
    return _layers(field, x0, layers, jnp.asarray(t0, x0.dtype), jnp.asarray(t1, x0.dtype), args,
                   bool(normalize))


@eqx.filter_jit
def _layers(field, x0, layers, t0, t1, args, normalize):
    h = (t1 - t0) / layers

    def layer(x, index):
        t = t0 + index.astype(x.dtype) * h
        y = x + h * field(t, x, args)
        if normalize:
            y = y / jnp.linalg.norm(y, axis=-1, keepdims=True)
        return y, y

    _, xs = jax.lax.scan(layer, x0, jnp.arange(layers))
    return jnp.concatenate([x0[None], xs])
