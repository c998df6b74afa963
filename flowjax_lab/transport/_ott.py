"""Calling ott-jax from a strict harness.

ott-jax 0.6.0 relies on implicit rank promotion and standard dtype promotion internally, so calls
into it run under those settings; the rest of flowjax_lab stays strict.
"""

import contextlib

import jax


@contextlib.contextmanager
def ott_promotion():
    """Allow rank and standard dtype promotion while tracing ott-jax code."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield
