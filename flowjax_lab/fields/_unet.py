"""A small time-conditioned convolutional U-Net as a velocity field on flattened square images.

Each particle `(d,)`, ``d = s^2`` with `s` even, is one grey image of side `s` (rows laid end to
end). The network has two resolutions: two 3x3 convolutions at side `s` (`channels` maps), an
average pool to side `s / 2`, two convolutions there (`2 channels`), a nearest-neighbour
upsampling back to side `s`, concatenation with the first level's maps (the skip connection),
one convolution and a 3x3 output convolution to one map. Time enters through sinusoidal features
of `t` and a small MLP whose outputs shift the maps of the first convolution of each level.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._types import Array, Key, Particles, ParticlesArray, ScalarLike


def _time_features(t, frequencies: int) -> Array:
    """``[sin(2^k pi t), cos(2^k pi t)]`` for k < `frequencies`, shape `(2 frequencies,)`."""
    angles = math.pi * t * 2.0 ** jnp.arange(frequencies, dtype=t.dtype)
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)])


def conv3x3(layer: eqx.nn.Conv2d, h) -> Array:
    """``layer(h)`` for a 3x3 `layer` with padding 1 on maps `(c_in, s, s)`: `(c_out, s, s)`.

    Written as one matrix product over the nine shifted copies of `h`: XLA's CPU convolution is
    some fifty times slower inside ``lax.scan``, where ``learn.fit`` runs its steps.
    """
    c_in, s, _ = h.shape
    padded = jnp.pad(h, ((0, 0), (1, 1), (1, 1)))
    patches = jnp.stack([padded[:, i:i + s, j:j + s] for i in range(3) for j in range(3)], axis=1)
    weight = layer.weight.reshape(layer.weight.shape[0], 9 * c_in)
    return jnp.einsum("ok,khw->ohw", weight, patches.reshape(9 * c_in, s, s)) + layer.bias


def _pool(h) -> Array:
    """2x2 average pooling of maps `(c, s, s)` to `(c, s/2, s/2)`."""
    c, s, _ = h.shape
    return h.reshape(c, s // 2, 2, s // 2, 2).mean(axis=(2, 4))


def _upsample(h) -> Array:
    """Nearest-neighbour upsampling of maps `(c, s, s)` to `(c, 2s, 2s)`."""
    return jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)


class UNetField(eqx.Module):
    """The field ``v(t, x_i) = UNet(t, x_i)`` on a cloud of flattened square images `(n, dim)`.

    **Arguments:**
    - `dim`: particle dimension, the square of an even image side (64 for 8x8 images).
    - `channels`: feature maps at full resolution (twice as many at half resolution).
    - `frequencies`: sinusoidal time features (each gives a sine and a cosine).
    - `key`: PRNG key; `dtype`: parameter dtype (the default float if `None`).

    Call as ``field(t, x, args)`` with `x` `(n, dim)` and `t` a scalar or per-particle `(n,)`.
    """

    time_mlp: eqx.nn.MLP
    conv_in: eqx.nn.Conv2d
    conv_down: eqx.nn.Conv2d
    conv_mid: eqx.nn.Conv2d
    conv_mid2: eqx.nn.Conv2d
    conv_up: eqx.nn.Conv2d
    conv_out: eqx.nn.Conv2d
    dim: int = eqx.field(static=True)
    side: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)
    frequencies: int = eqx.field(static=True)

    def __init__(self, dim: int = 64, *, channels: int = 16, frequencies: int = 4, key: Key,
                 dtype=None):
        self.dim = _checks.positive_int(dim, "dim")
        side = math.isqrt(self.dim)
        if side * side != self.dim or side % 2:
            raise ValueError(f"`dim` must be the square of an even image side (64 for 8x8), "
                             f"got {dim}.")
        self.side = side
        c = self.channels = _checks.positive_int(channels, "channels")
        self.frequencies = _checks.positive_int(frequencies, "frequencies")
        dtype = _checks.float_dtype(dtype)
        keys = jax.random.split(_checks.key(key), 7)
        conv = lambda cin, cout, k: eqx.nn.Conv2d(cin, cout, 3, padding=1, key=k, dtype=dtype)
        # one shift per map of the first convolution of each level: c + 2c + c
        self.time_mlp = eqx.nn.MLP(2 * self.frequencies, 4 * c, 2 * c, 1,
                                   activation=jax.nn.silu, key=keys[0], dtype=dtype)
        self.conv_in = conv(1, c, keys[1])
        self.conv_down = conv(c, c, keys[2])
        self.conv_mid = conv(c, 2 * c, keys[3])
        self.conv_mid2 = conv(2 * c, 2 * c, keys[4])
        self.conv_up = conv(3 * c, c, keys[5])
        self.conv_out = conv(c, 1, keys[6])

    def image(self, t, image) -> Array:
        """The velocity of one image `(side, side)` at scalar time `t`: `(side, side)`."""
        c, act = self.channels, jax.nn.silu
        shift = self.time_mlp(_time_features(t, self.frequencies))
        s1, s2, s3 = shift[:c, None, None], shift[c:3 * c, None, None], shift[3 * c:, None, None]
        h1 = act(conv3x3(self.conv_down, act(conv3x3(self.conv_in, image[None]) + s1)))
        h2 = act(conv3x3(self.conv_mid2, act(conv3x3(self.conv_mid, _pool(h1)) + s2)))
        h3 = act(conv3x3(self.conv_up, jnp.concatenate([_upsample(h2), h1])) + s3)
        return conv3x3(self.conv_out, h3)[0]  # h1, h3: (c, s, s); h2: (2c, s/2, s/2)

    def __call__(self, t: ScalarLike, x: ParticlesArray, args=None) -> Particles:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"`x` must have shape (n, {self.dim}) for this field, got "
                             f"{tuple(x.shape)}.")
        t = jnp.broadcast_to(jnp.asarray(t, x.dtype), x.shape[:1])
        images = x.reshape(-1, self.side, self.side)
        return jax.vmap(self.image)(t, images).reshape(x.shape)
