"""Bad input to the image fields (the U-Net): one row per public function or argument."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import flowjax_lab as fl

KEY = jax.random.key(0)
X64 = jnp.ones((4, 64))
X49 = jnp.ones((4, 49))


@functools.cache
def _unet():
    """A valid field, built under jit from an "rbg" key (see tests/test_unet.py: it compiles
    three times faster than op by op from a threefry key)."""
    build = eqx.filter_jit(lambda key: fl.fields.UNetField(64, channels=2, key=key))
    return build(jax.random.key(0, impl="rbg"))


CASES = [
    ("UNetField dim not a square", lambda: fl.fields.UNetField(63, key=KEY), ValueError,
     "`dim` must be the square of an even image side"),
    ("UNetField odd image side", lambda: fl.fields.UNetField(49, key=KEY), ValueError, "`dim`"),
    ("UNetField dim 0", lambda: fl.fields.UNetField(0, key=KEY), ValueError, "dim"),
    ("UNetField channels 0", lambda: fl.fields.UNetField(64, channels=0, key=KEY), ValueError,
     "channels"),
    ("UNetField frequencies not an integer",
     lambda: fl.fields.UNetField(64, frequencies=2.5, key=KEY), TypeError, "frequencies"),
    ("UNetField no key", lambda: fl.fields.UNetField(64, key=None), TypeError, "key"),
    ("UNetField integer dtype", lambda: fl.fields.UNetField(64, key=KEY, dtype=jnp.int32),
     (TypeError, ValueError), "dtype"),
    ("UNetField wrong particle dimension",
     lambda: _unet()(0.0, X49), ValueError,
     r"shape \(n, 64\)"),
    ("UNetField one particle without its row axis",
     lambda: _unet()(0.0, X64[0]), ValueError,
     r"shape \(n, 64\)"),
]


@pytest.mark.parametrize(("call", "error", "match"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
