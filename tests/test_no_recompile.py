"""Repeated calls with the same shapes and dtypes neither re-trace nor re-compile."""

import contextlib

import jax
import jax.monitoring
import jax.numpy as jnp
import pytest

import flowjax_lab as fl
from flowjax_lab import parallel

TRACE = "/jax/core/compile/jaxpr_trace_duration"
COMPILE = "/jax/core/compile/backend_compile_duration"


@contextlib.contextmanager
def count_compilations():
    """Counts JAX's jaxpr traces and backend compilations inside the block."""
    counts = {TRACE: 0, COMPILE: 0, "names": []}

    def listener(event, duration, **kwargs):
        if event in counts:
            counts[event] += 1
            counts["names"].append((event.rsplit("/", 1)[-1], kwargs.get("fun_name")))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)




def _field(t, x, args):
    return jnp.tanh(x) * (1 + t) - 0.5 * x


def _assert_no_recompile(call, first_arg, second_arg):
    jax.block_until_ready(call(first_arg))  # trace and compile once
    with count_compilations() as counts:
        for arg in (first_arg, second_arg, first_arg):
            jax.block_until_ready(call(arg))
    assert counts[COMPILE] == 0, f"backend compilations on repeated calls: {counts['names']}"
    # The jitted solvers are not traced again; only the cheap shape check of the user's field
    # (one jax.eval_shape per call) may trace.
    traced = [name for event, name in counts["names"] if event == "jaxpr_trace_duration"]
    assert not any("_solve" in str(name) for name in traced), counts["names"]
    assert len(traced) <= 3, f"jaxpr traces on repeated calls: {counts['names']}"


@pytest.mark.parametrize("steps", [None, 4])
def test_simulate_does_not_recompile(getkey, steps):
    x_a = jax.random.normal(getkey(), (16, 2))
    x_b = jax.random.normal(getkey(), (16, 2))
    _assert_no_recompile(lambda x: fl.simulate(_field, x, steps=steps).xs, x_a, x_b)


def test_sinkhorn_does_not_recompile(getkey):
    y = jax.random.normal(getkey(), (12, 2))
    x_a = jax.random.normal(getkey(), (10, 2))
    x_b = jax.random.normal(getkey(), (10, 2)) + 1.0
    _assert_no_recompile(lambda x: fl.transport.sinkhorn(x, y, epsilon=0.5).f, x_a, x_b)


def test_sharded_simulate_does_not_recompile(getkey):
    mesh = parallel.particle_mesh()
    x_a = jax.random.normal(getkey(), (8, 2))
    x_b = jax.random.normal(getkey(), (8, 2))
    _assert_no_recompile(lambda x: parallel.simulate(_field, x, mesh=mesh, steps=3).xs, x_a, x_b)


def test_counter_sees_a_recompile(getkey):
    """The counter can fail: a new shape must show up as a compilation."""
    fl.simulate(_field, jax.random.normal(getkey(), (16, 2)), steps=4)
    with count_compilations() as counts:
        jax.block_until_ready(fl.simulate(_field, jax.random.normal(getkey(), (17, 2)),
                                          steps=4).xs)
    assert counts[COMPILE] >= 1
