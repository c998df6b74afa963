"""The convolutional U-Net field: shapes and dtypes, its convolution, time dependence, jit and
gradients."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab.fields._unet import conv3x3

# Built and called under jit (op by op, each of the network's many small operations compiles on
# its own), from "rbg" keys: threefry's hash, unrolled once per parameter shape, makes the
# initialisation compile three times slower.
RBG = jax.random.key(0, impl="rbg")
build = eqx.filter_jit(lambda key, dim=64, channels=4, dtype=None: fl.fields.UNetField(
    dim, channels=channels, key=key, dtype=dtype))
velocity = eqx.filter_jit(lambda field, t, x: field(t, x))


def call(field, t, x):
    """`field(t, x)` under jit, with `t` an array of `x`'s dtype (one compilation per shape)."""
    return velocity(field, jnp.asarray(t, x.dtype), x)


@pytest.fixture(scope="module")
def field():
    return build(RBG)


def test_shape_and_dtype(field, getkey):
    x = jax.random.normal(getkey(), (4, 64))
    out = call(field, 0.3, x)
    assert out.shape == (4, 64) and out.dtype == x.dtype
    assert bool(jnp.all(jnp.isfinite(out)))


def test_parameter_dtype_is_kept(field, getkey):
    # the module's field has the default dtype, float64 in this test harness (x64 enabled)
    for dtype, f in ((jnp.float64, field), (jnp.float32, build(RBG, 64, 2, jnp.float32))):
        x = jax.random.normal(getkey(), (4, 64), dtype)
        assert call(f, 0.5, x).dtype == dtype


def test_patch_product_is_equinox_convolution(getkey):
    layer = eqx.nn.Conv2d(3, 5, 3, padding=1, key=getkey())
    h = jax.random.normal(getkey(), (3, 8, 8))
    np.testing.assert_allclose(conv3x3(layer, h), layer(h), atol=1e-5)


def test_depends_on_time_and_per_particle_times_match_scalar(field, getkey):
    x = jax.random.normal(getkey(), (4, 64))
    assert float(jnp.max(jnp.abs(call(field, 0.1, x) - call(field, 0.9, x)))) > 1e-4
    t = jnp.array([0.0, 0.2, 0.6, 1.0], x.dtype)
    rows = jnp.stack([call(field, t[i], x)[i] for i in range(4)])
    np.testing.assert_allclose(call(field, t, x), rows, atol=1e-5)


def test_rows_are_independent_images(field, getkey):
    # each particle is its own image: changing one row leaves the others' velocities alone
    x = jax.random.normal(getkey(), (4, 64))
    changed = x.at[0].set(1.0)
    np.testing.assert_allclose(call(field, 0.4, x)[1:], call(field, 0.4, changed)[1:], atol=1e-6)


def test_jit_matches_eager_and_gradients_are_finite(field, getkey):
    x = jax.random.normal(getkey(), (4, 64))
    t = jnp.asarray(0.7, x.dtype)
    np.testing.assert_allclose(call(field, t, x), field(t, x), atol=1e-5)
    grads = eqx.filter_jit(eqx.filter_grad(lambda f: jnp.sum(f(t, x) ** 2)))(field)
    leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert sum(float(jnp.sum(g**2)) for g in leaves) > 0
