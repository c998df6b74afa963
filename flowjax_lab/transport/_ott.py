"""Calling ott-jax from a strict harness.

ott-jax 0.6.0 relies on implicit rank promotion and standard dtype promotion internally, so calls
into it run under those settings; the rest of flowjax_lab stays strict. Its backward passes
(implicit differentiation of Sinkhorn) are traced when the caller takes a gradient, outside any
``with ott_promotion()`` around the forward call: `promoted` covers them too.
"""

import contextlib

import jax


@contextlib.contextmanager
def ott_promotion():
    """Allow rank and standard dtype promotion while tracing ott-jax code."""
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        yield


def promoted(fn):
    """`fn(*arrays)`, traced and differentiated (reverse mode) under `ott_promotion`."""

    @jax.custom_vjp
    def call(*args):
        with ott_promotion():
            return fn(*args)

    def forward(*args):
        with ott_promotion():
            return jax.vjp(fn, *args)

    def backward(pullback, cotangent):
        with ott_promotion():
            return pullback(cotangent)

    call.defvjp(forward, backward)
    return call
