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
    """ott-jax's loop on the ring geometry: the iterates of the dense log-domain solve."""
    x = jax.random.normal(getkey(), (24, 2))
    y = jax.random.normal(getkey(), (20, 2)) + 1.0
    b = jax.random.uniform(getkey(), (20,), minval=0.5, maxval=1.5)
    b = b / jnp.sum(b)
    # 6 and 5 rows per device in blocks of 4: padded blocks on both sides of the ring.
    sharded = parallel.sinkhorn(x, y, b=b, epsilon=0.5, threshold=1e-9, block_size=4)
    single = fl.transport.sinkhorn(x, y, b=b, epsilon=0.5, threshold=1e-9, lse_mode=True)
    assert bool(sharded.converged) and bool(single.converged)
    assert int(sharded.iterations) == int(single.iterations) > 20
    np.testing.assert_allclose(sharded.cost, single.cost, rtol=1e-12)
    np.testing.assert_allclose(sharded.f, single.f, rtol=0, atol=1e-10)
    np.testing.assert_allclose(sharded.g, single.g, rtol=0, atol=1e-10)
    for potential in (sharded.f, sharded.g):
        assert potential.sharding.spec == jax.sharding.PartitionSpec("particles")
        assert bool(jnp.all(jnp.isfinite(potential)))


def _ring_and_dense_products(getkey, products):
    """`products(geom, x, y, f, g, u, v)` on ott-jax's dense cloud and on the ring geometry
    (16 x 12 points on 4 devices, blocks of 3 rows), one jitted program; `u`, `v` signed."""
    from ott.geometry import pointcloud

    from flowjax_lab.transport._ott import ott_promotion
    from flowjax_lab.transport._sharded_geometry import ShardedPointCloud

    mesh = parallel.particle_mesh()
    args = (jax.random.normal(getkey(), (16, 3)), jax.random.normal(getkey(), (12, 3)) + 0.5,
            jax.random.normal(getkey(), (16,)), jax.random.normal(getkey(), (12,)),
            jax.random.normal(getkey(), (16,)), jax.random.normal(getkey(), (12,)))

    @jax.jit
    def both(x, y, *rest):
        with ott_promotion():
            return [products(geom, x, y, *rest) for geom in (
                pointcloud.PointCloud(x, y, epsilon=0.7),
                ShardedPointCloud(x, y, epsilon=0.7, batch_size=3, mesh=mesh))]

    dense, ring = both(*args)
    for got, want in zip(jax.tree.leaves(ring), jax.tree.leaves(dense), strict=True):
        assert bool(jnp.all(jnp.isfinite(got)))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_ring_lse_with_a_signed_vector_equals_dense(getkey):
    """The signed log-sum-exp of the implicit backward's transport products, both axes."""
    _ring_and_dense_products(getkey, lambda geom, x, y, f, g, u, v: (
        geom.apply_lse_kernel(f, g, 0.7, vec=v, axis=1),
        geom.apply_lse_kernel(f, g, 0.7, vec=u, axis=0)))


@pytest.mark.slow
def test_ring_kernel_products_equal_dense(getkey):
    """The other products of the ring geometry: batched transport, kernel, non-linear cost,
    max cost."""
    _ring_and_dense_products(getkey, lambda geom, x, y, f, g, u, v: (
        geom.apply_transport_from_potentials(f, g, jnp.stack([u, -u]), 0),
        geom.apply_kernel(u, axis=0), geom.apply_kernel(v, axis=1),
        geom.apply_cost(u, axis=0, fn=jnp.sqrt), geom.apply_cost(v, axis=1, fn=jnp.sqrt),
        geom._compute_summary_online("max_cost") if geom.is_online else jnp.max(geom.cost_matrix)))


def test_sharded_sinkhorn_memory_per_device_is_a_share_of_the_cost(getkey):
    """From the compiled per-device program: no all-gather (no device gets a whole cloud), blocks
    passed by collective-permute, and memory a small fraction of the (n, m) cost."""
    n = m = 512
    mesh = parallel.particle_mesh()
    x = parallel.shard_particles(jax.random.normal(getkey(), (n, 2)), mesh)
    y = parallel.shard_particles(jax.random.normal(getkey(), (m, 2)), mesh, name="y")
    solve = lambda x, y: parallel.sinkhorn(x, y, mesh=mesh, epsilon=0.5, block_size=32).cost
    compiled = jax.jit(solve).lower(x, y).compile()
    hlo = compiled.as_text()
    assert "all-gather" not in hlo and "collective-permute" in hlo
    memory = compiled.memory_analysis()
    per_device = (memory.argument_size_in_bytes + memory.output_size_in_bytes
                  + memory.temp_size_in_bytes)
    cost_bytes = n * m * 8  # one (n, m) float64 array, 2 MiB
    assert per_device < cost_bytes / 8, per_device


@pytest.mark.slow
def test_gradient_through_sharded_sinkhorn_equals_single_device(getkey):
    """ott-jax's implicit differentiation runs through the ring geometry."""
    x = jax.random.normal(getkey(), (24, 2))
    y = jax.random.normal(getkey(), (20, 2)) + 1.0
    sharded = jax.grad(lambda x: parallel.sinkhorn(x, y, epsilon=0.5, threshold=1e-9).cost)(x)
    single = jax.grad(lambda x: fl.transport.sinkhorn(x, y, epsilon=0.5, threshold=1e-9,
                                                      lse_mode=True).cost)(x)
    assert float(jnp.max(jnp.abs(single))) > 1e-2
    np.testing.assert_allclose(sharded, single, rtol=0, atol=1e-10)


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
