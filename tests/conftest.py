"""A strict harness: float64 available, dtype and rank promotion strict, 4 host devices, no
persistent compilation cache."""

import gc
import os

os.environ.setdefault("FLOWJAX_LAB_SMALL", "1")
# cli.main in the tests must not write the on-disk compilation cache of the user.
os.environ["FLOWJAX_LAB_CACHE"] = ""

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_num_cpu_devices", 4)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs():
    """Drop JAX's compiled programs after each test module. Every XLA CPU executable keeps memory
    maps; a test worker that compiles for the whole suite passed the kernel's limit of 65 530 maps
    (vm.max_map_count) and died inside an XLA compile."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def getkey():
    """A fresh, deterministic key per call within a test."""
    keys = iter(jax.random.split(jax.random.key(1234), 1000))
    return lambda: next(keys)


@pytest.fixture
def fresh_traces():
    """Drop compiled functions before and after a test that patches a function called inside
    them, so the patch is traced and does not outlive the test."""
    import equinox as eqx

    eqx.clear_caches()
    jax.clear_caches()
    yield
    eqx.clear_caches()
    jax.clear_caches()
