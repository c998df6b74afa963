"""Sharded clouds (4 CPU host devices from conftest) give the single-device results."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab import parallel


def _attention_rule(t, x_local, x_all, args):
    """Softmax self-attention of the local queries against the whole cloud, minus identity."""
    weights = jax.nn.softmax(x_local @ x_all.T, axis=1)
    return weights @ x_all - x_local


def _dense_attention(t, x, args):
    return _attention_rule(t, x, x, args)


def test_mesh_and_sharding_split_the_particle_axis(getkey):
    mesh = parallel.particle_mesh()
    assert mesh.devices.size == 4
    x = jax.random.normal(getkey(), (16, 3))
    xs = parallel.shard_particles(x, mesh)
    assert xs.sharding.spec == jax.sharding.PartitionSpec("particles", None)
    assert {s.data.shape for s in xs.addressable_shards} == {(4, 3)}
    np.testing.assert_array_equal(np.asarray(xs), np.asarray(x))
    assert parallel.particle_mesh(2).devices.size == 2


def test_sharded_interacting_simulation_equals_single_device(getkey):
    x0 = jax.random.normal(getkey(), (32, 3))
    mesh = parallel.particle_mesh()
    field = parallel.gather_field(_attention_rule, mesh)
    sharded = parallel.simulate(field, x0, mesh=mesh, rtol=1e-7, atol=1e-7)
    single = fl.simulate(_dense_attention, x0, rtol=1e-7, atol=1e-7)
    assert int(sharded.status) == 0
    # The same adaptive step sequence and the same particles to rounding.
    assert int(sharded.stats["num_steps"]) == int(single.stats["num_steps"])
    np.testing.assert_allclose(sharded.xs, single.xs, rtol=0, atol=1e-12)
    assert sharded.xs.sharding.spec[1] == "particles"
    # The cloud really moved (the comparison is not between two copies of x0).
    assert float(jnp.max(jnp.abs(single.xs[-1] - x0))) > 0.1


def test_gathered_field_gathers_the_cloud(getkey):
    mesh = parallel.particle_mesh()
    field = parallel.gather_field(_attention_rule, mesh)
    x = parallel.shard_particles(jax.random.normal(getkey(), (16, 2)), mesh)
    hlo = jax.jit(field).lower(0.0, x, None).compile().as_text()
    assert "all-gather" in hlo
    np.testing.assert_allclose(field(0.0, x, None), _dense_attention(0.0, x, None), atol=1e-13)


def test_ring_pair_sum_equals_dense_pair_sum(getkey):
    mesh = parallel.particle_mesh()
    x = jax.random.normal(getkey(), (24, 2))
    w = jax.random.uniform(getkey(), (24,), minval=0.5, maxval=1.5)
    w = w / jnp.sum(w)
    # A kernel singular at zero: the self pair must never reach it.
    fn = lambda z: z / jnp.sum(z**2) ** 1.5
    ring = parallel.ring_pair_sum(fn, x, mesh, weights=w)
    diff = x[:, None, :] - x[None, :, :] + jnp.eye(24)[..., None]  # keep the diagonal finite
    values = jax.vmap(jax.vmap(fn))(diff) * (1 - jnp.eye(24))[..., None]
    dense = jnp.einsum("ijk,j->ik", values, w)
    assert bool(jnp.all(jnp.isfinite(ring)))
    np.testing.assert_allclose(ring, dense, rtol=1e-12, atol=1e-12)
    assert ring.sharding.spec[0] == "particles"
    # Newton's third law with uniform weights: the pair forces sum to zero.
    uniform = parallel.ring_pair_sum(fn, x, mesh)
    np.testing.assert_allclose(jnp.sum(uniform, axis=0), 0.0, atol=1e-12)


def test_sharded_sinkhorn_equals_single_device(getkey):
    x = jax.random.normal(getkey(), (32, 2))
    y = jax.random.normal(getkey(), (16, 2)) + 1.0
    sharded = parallel.sinkhorn(x, y, epsilon=1.0, threshold=1e-7)
    single = fl.transport.sinkhorn(x, y, epsilon=1.0, threshold=1e-7)
    assert bool(sharded.converged) and bool(single.converged)
    assert int(sharded.iterations) == int(single.iterations)
    np.testing.assert_allclose(sharded.cost, single.cost, rtol=1e-12)
    np.testing.assert_allclose(sharded.f, single.f, atol=1e-10)
    np.testing.assert_allclose(sharded.g, single.g, atol=1e-10)
    assert sharded.f.sharding.spec == jax.sharding.PartitionSpec("particles")


@pytest.mark.parametrize("devices", [1, 2])
def test_sharded_simulation_on_fewer_devices(getkey, devices):
    mesh = parallel.particle_mesh(devices)
    x0 = jax.random.normal(getkey(), (8, 2))
    field = lambda t, x, args: -x + jnp.mean(x, axis=0, keepdims=True)
    sharded = parallel.simulate(field, x0, mesh=mesh, steps=8, solver="rk4")
    single = fl.simulate(field, x0, steps=8, solver="rk4")
    np.testing.assert_allclose(sharded.xs, single.xs, atol=1e-13)


def test_sharded_sampler_splits_the_same_batch(getkey):
    """The batch of plain sampling, split over the devices (tests/test_distributed.py trains
    with it across processes and checks the gradients)."""
    mesh = parallel.particle_mesh()
    data = jax.random.normal(getkey(), (12, 2))
    key = getkey()
    batch = eqx.filter_jit(parallel.sharded_sampler(data, mesh))(key, 8)
    assert batch.sharding.is_equivalent_to(parallel.particle_sharding(mesh), 2)
    np.testing.assert_array_equal(batch, data[jax.random.randint(key, (8,), 0, 12)])
    gaussian = lambda key, n: jax.random.normal(key, (n, 2))
    np.testing.assert_array_equal(parallel.sharded_sampler(gaussian, mesh)(key, 8),
                                  gaussian(key, 8))


def test_one_process_initialize_and_local_rows(getkey, monkeypatch):
    monkeypatch.setenv("FLOWJAX_LAB_NUM_PROCESSES", "1")
    mesh = parallel.initialize()
    assert mesh.devices.size == 4 and parallel.initialize(num_processes=1) == mesh
    x = np.asarray(jax.random.normal(getkey(), (8, 2)))
    xs = parallel.shard_local_rows(x, mesh)
    assert xs.sharding == parallel.particle_sharding(mesh)
    host = parallel.to_host({"x": xs, "n": 3})
    assert isinstance(host["x"], np.ndarray) and int(host["n"]) == 3
    np.testing.assert_array_equal(host["x"], x)
