"""Bad input to flowjax_lab.parallel: each error names the argument (4 CPU host devices)."""

import os
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax_lab import parallel

X8 = np.random.default_rng(0).normal(size=(8, 2))
X6 = X8[:6]
NAN8 = X8.copy()
NAN8[3, 1] = np.nan
field = lambda t, x, args: -x
rule = lambda t, x_local, x_all, args: -x_local
pair = lambda z: z
NEG = np.array([-0.5, 1.5, 0, 0, 0, 0, 0, 0])
KEY = jax.random.key(0)


def _initialize_from(**env):
    with mock.patch.dict(os.environ, env):
        return parallel.initialize()


def _initialize_late():
    jax.devices()  # JAX's backend is running: too late to join other processes
    return parallel.initialize("127.0.0.1:1", 2, 0)

CASES = [
    (lambda: parallel.particle_mesh(0), ValueError, r"`devices`.*>= 1"),
    (lambda: parallel.particle_mesh(99), ValueError, r"`devices` asks for 99"),
    (lambda: parallel.particle_mesh("cpu"), TypeError, r"`devices` must be"),
    (lambda: parallel.particle_mesh(True), TypeError, r"`devices` must be"),
    (lambda: parallel.particle_sharding("mesh"), TypeError, r"`mesh` must be a one-axis"),
    (lambda: parallel.shard_particles(X6), ValueError, r"`x` has 6 particles.*4 devices"),
    (lambda: parallel.shard_particles(X8[0]), ValueError, r"`x` must be a particle cloud"),
    (lambda: parallel.shard_particles(NAN8), ValueError, r"`x` contains NaN"),
    (lambda: parallel.shard_particles(X8, mesh=4), TypeError, r"`mesh` must be a one-axis"),
    (lambda: parallel.simulate(field, X6), ValueError, r"`x0` has 6 particles"),
    (lambda: parallel.simulate(field, X8, steps=0), ValueError, r"`steps`"),
    (lambda: parallel.simulate(field, X8, solver="rk5"), ValueError, r"`solver`"),
    (lambda: parallel.gather_field(rule, mesh=3), TypeError, r"`mesh` must be a one-axis"),
    (lambda: parallel.ring_pair_sum(pair, X6), ValueError, r"`x` has 6 particles"),
    (lambda: parallel.ring_pair_sum(pair, NAN8), ValueError, r"`x` contains NaN"),
    (lambda: parallel.ring_pair_sum(pair, X8, weights=NEG), ValueError, r"`weights`"),
    (lambda: parallel.ring_pair_sum(pair, X8, weights=jnp.ones(3) / 3), ValueError,
     r"`weights` must have shape \(8,\)"),
    (lambda: parallel.sinkhorn(X8, X6), ValueError, r"`y` has 6 particles"),
    (lambda: parallel.sinkhorn(X8, X8[:, :1]), ValueError, r"same dimension"),
    (lambda: parallel.sinkhorn(X8, X8, epsilon=-1.0), ValueError, r"`epsilon` must be > 0"),
    (lambda: parallel.sinkhorn(NAN8, X8), ValueError, r"`x` contains NaN"),
    (lambda: parallel.sinkhorn(X8, X8, mesh=2), TypeError, r"`mesh` must be a one-axis"),
    (lambda: parallel.sinkhorn(X8, X8, a=NEG), ValueError, r"`a` must be non-negative"),
    (lambda: parallel.sinkhorn(X8, X8, b=jnp.ones(3) / 3), ValueError,
     r"`b` must have shape \(8,\)"),
    (lambda: jax.jit(lambda b: parallel.sinkhorn(X8, X8, b=b))(jnp.ones(3) / 3), ValueError,
     r"`b` must have shape \(8,\)"),
    (lambda: parallel.sinkhorn(X8, X8, momentum=2.5), ValueError, r"`momentum` must be in"),
    (lambda: parallel.sinkhorn(X8, X8, lse_mode=False), ValueError,
     r"`lse_mode` must be None or True"),
    (lambda: parallel.sinkhorn(X8, X8, block_size=0), ValueError, r"`block_size`.*>= 1"),
    (lambda: parallel.initialize(num_processes=0), ValueError, r"`num_processes`.*>= 1"),
    (lambda: parallel.initialize(num_processes=2.0), TypeError, r"`num_processes` must be an"),
    (lambda: parallel.initialize(process_id=-1), ValueError, r"`process_id`.*>= 0"),
    (lambda: parallel.initialize("localhost", 2, 0), ValueError,
     r"`coordinator_address` must be 'host:port'"),
    (lambda: parallel.initialize("host:99999", 2, 0), ValueError, r"`coordinator_address`"),
    (lambda: parallel.initialize("host:1234", 2, 2), ValueError,
     r"`process_id` 2 must be < `num_processes` 2"),
    (lambda: parallel.initialize(local_devices="gpu"), TypeError, r"`local_devices` must be"),
    (lambda: parallel.initialize(local_devices=[-1]), ValueError, r"`local_devices`.*>= 0"),
    (lambda: _initialize_from(FLOWJAX_LAB_NUM_PROCESSES="two"), ValueError,
     r"`FLOWJAX_LAB_NUM_PROCESSES` must be an integer, got 'two'"),
    (lambda: _initialize_from(FLOWJAX_LAB_COORDINATOR="nohost"), ValueError,
     r"`FLOWJAX_LAB_COORDINATOR` must be 'host:port'"),
    (lambda: _initialize_from(FLOWJAX_LAB_NUM_PROCESSES="2", FLOWJAX_LAB_PROCESS_ID="5"),
     ValueError, r"`process_id` 5 must be < `num_processes` 2"),
    (_initialize_late, RuntimeError, r"call `parallel.initialize` before any JAX computation"),
    (lambda: parallel.shard_local_rows(X6), ValueError, r"`x` has 6 local rows.*4 devices"),
    (lambda: parallel.shard_local_rows(X8[0]), ValueError, r"`x` must be a particle cloud"),
    (lambda: parallel.shard_local_rows(NAN8), ValueError, r"`x` contains NaN"),
    (lambda: parallel.shard_local_rows(X8, mesh="all"), TypeError, r"`mesh` must be"),
    (lambda: parallel.to_host({"a": X8, "b": "text"}), TypeError,
     r"`tree` must hold arrays and numbers only, got a str"),
    (lambda: parallel.sharded_sampler("gauss"), TypeError, r"`sampler` must be an array"),
    (lambda: parallel.sharded_sampler(X8[0]), ValueError, r"`sampler` must be a particle"),
    (lambda: parallel.sharded_sampler(X8)(KEY, 6), ValueError,
     r"batch of 6 rows does not split evenly over 4 devices.*`batch_size`"),
    (lambda: parallel.sharded_sampler(X8, mesh=2), TypeError, r"`mesh` must be"),
]


@pytest.mark.parametrize(("call", "error", "message"), CASES)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
