"""Toy distributions as pure JAX samplers: jit-compatible and deterministic for a key.

Each sampler returns a cloud of shape ``(n, d)`` and the component each point came from (moons,
circles, spirals, 8gaussians, mixture), shape ``(n,)``.
Scales follow the flow-matching literature: 8gaussians on a circle of radius 5 (standard deviation
sqrt(0.1)), moons = 2 * make_moons(noise=0.05) - 1, checkerboard and spirals as in FFJORD.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .._types import Key, Labels, Particles

Sampler = Callable[..., tuple[Particles, Labels]]


def _gaussian(key, n, dim, dtype):
    return jax.random.normal(key, (n, dim), dtype), jnp.zeros(n, jnp.int32)


def _eight_gaussians(key, n, dim, dtype, radius=5.0, std=0.1**0.5):
    k_comp, k_noise = jax.random.split(key)
    label = jax.random.randint(k_comp, (n,), 0, 8)
    angle = 2 * jnp.pi * label.astype(dtype) / 8
    centres = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    return centres + std * jax.random.normal(k_noise, (n, 2), dtype), label


def _moons(key, n, dim, dtype, noise=0.05):
    k_comp, k_angle, k_noise = jax.random.split(key, 3)
    label = jax.random.randint(k_comp, (n,), 0, 2)
    theta = jnp.pi * jax.random.uniform(k_angle, (n,), dtype)
    upper = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    lower = jnp.stack([1 - jnp.cos(theta), 0.5 - jnp.sin(theta)], axis=1)
    x = jnp.where(label[:, None] == 0, upper, lower)
    x = x + noise * jax.random.normal(k_noise, (n, 2), dtype)
    return 2 * x - 1, label


def _checkerboard(key, n, dim, dtype):
    k1, k2, k3 = jax.random.split(key, 3)
    x1 = 4 * jax.random.uniform(k1, (n,), dtype) - 2
    column = jax.random.randint(k3, (n,), 0, 2)
    x2 = jax.random.uniform(k2, (n,), dtype) - 2 * column.astype(dtype)
    x2 = x2 + jnp.mod(jnp.floor(x1), 2)
    label = (jnp.mod(jnp.floor(x1) + jnp.floor(x2), 2)).astype(jnp.int32)
    return 2 * jnp.stack([x1, x2], axis=1), label


def _spirals(key, n, dim, dtype):
    k_comp, k_len, k_noise = jax.random.split(key, 3)
    label = jax.random.randint(k_comp, (n,), 0, 2)
    s = jnp.sqrt(jax.random.uniform(k_len, (n,), dtype)) * 3 * jnp.pi
    arm = jnp.stack([-jnp.cos(s) * s, jnp.sin(s) * s], axis=1)
    sign = jnp.where(label == 0, 1.0, -1.0).astype(dtype)[:, None]
    x = sign * arm + 0.5 * jax.random.uniform(k_noise, (n, 2), dtype)
    return x / 3, label


def _circles(key, n, dim, dtype, factor=0.5, noise=0.08):
    k_comp, k_angle, k_noise = jax.random.split(key, 3)
    label = jax.random.randint(k_comp, (n,), 0, 2)
    theta = 2 * jnp.pi * jax.random.uniform(k_angle, (n,), dtype)
    radius = jnp.where(label == 0, 1.0, factor).astype(dtype)
    x = radius[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=1)
    return 3 * (x + noise * jax.random.normal(k_noise, (n, 2), dtype)), label


def _mixture(key, n, dim, dtype, components=3, radius=3.0, std=0.5):
    k_comp, k_noise = jax.random.split(key)
    label = jax.random.randint(k_comp, (n,), 0, components)
    angle = 2 * jnp.pi * label.astype(dtype) / components
    centres = jnp.zeros((n, dim), dtype)
    centres = centres.at[:, 0].set(radius * jnp.cos(angle))
    centres = centres.at[:, 1].set(radius * jnp.sin(angle))
    return centres + std * jax.random.normal(k_noise, (n, dim), dtype), label


_SAMPLERS: dict[str, tuple[Sampler, bool]] = {
    # name: (sampler, accepts any dimension)
    "gaussian": (_gaussian, True),
    "8gaussians": (_eight_gaussians, False),
    "moons": (_moons, False),
    "checkerboard": (_checkerboard, False),
    "spirals": (_spirals, False),
    "circles": (_circles, False),
    "mixture": (_mixture, True),
}


def names() -> list[str]:
    """The toy data-set names (generated, any size)."""
    return sorted(_SAMPLERS)


def draw(name: str, key: Key, n: int, dim: int, dtype, options: dict):
    """Points ``(n, dim)`` and component labels ``(n,)`` of a toy set; arguments checked."""
    sampler, any_dim = _SAMPLERS[name]
    if not any_dim and dim != 2:
        raise ValueError(f"`dim` must be 2 for data set {name!r}, got {dim}.")
    if name == "mixture" and dim < 2:
        raise ValueError(f"`dim` must be >= 2 for data set 'mixture', got {dim}.")
    try:
        return sampler(key, n, dim, dtype, **options)
    except TypeError as err:
        raise TypeError(f"Bad options {sorted(options)} for data set {name!r}: {err}") from err
