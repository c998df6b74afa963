"""A strict harness: float64 available, dtype and rank promotion strict, 4 host devices, no
persistent compilation cache."""

import os

os.environ.setdefault("FLOWJAX_LAB_SMALL", "1")
# No persistent compilation cache shared between the workers (and other jobs) from cli.main.
os.environ["FLOWJAX_LAB_CACHE"] = ""

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def getkey():
    """A fresh, deterministic key per call within a test."""
    keys = iter(jax.random.split(jax.random.key(1234), 1000))
    return lambda: next(keys)
