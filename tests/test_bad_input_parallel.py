"""Bad input to flowjax_lab.parallel: each error names the argument (4 CPU host devices)."""

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
]


@pytest.mark.parametrize(("call", "error", "message"), CASES)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
