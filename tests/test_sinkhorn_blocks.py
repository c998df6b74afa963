"""Sinkhorn on blocks of rows (`BlockPointCloud`): the same solution, iterations and gradients as
ott-jax's dense log-domain geometry, its routing above the memory budget, the block-wise plan
summaries, the refusal of dense plans past the budget, and its compiled memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ott.geometry import pointcloud

import flowjax_lab as fl
from flowjax_lab import _blocks
from flowjax_lab.transport import _sinkhorn
from flowjax_lab.transport._block_geometry import BlockPointCloud, squared_distances
from flowjax_lab.transport._ott import ott_promotion

SOLVE = {"epsilon": 0.1, "threshold": 1e-10, "max_iterations": 5000}


def _problem(getkey, n, m, dtype=jnp.float64):
    x = jax.random.normal(getkey(), (n, 2), dtype)
    y = jax.random.normal(getkey(), (m, 2), dtype) + 1.0
    a = jax.random.dirichlet(getkey(), jnp.ones(n, dtype))
    b = jax.random.dirichlet(getkey(), jnp.ones(m, dtype))
    return x, y, a, b


@pytest.mark.parametrize("n, m, block", [(23, 17, 5), (17, 23, 4), (12, 12, 100)])
def test_blocks_give_the_dense_solution_and_iterations(getkey, n, m, block):
    x, y, a, b = _problem(getkey, n, m)
    dense = fl.transport.sinkhorn(x, y, a=a, b=b, lse_mode=True, **SOLVE)
    blocked = fl.transport.sinkhorn(x, y, a=a, b=b, block_size=block, **SOLVE)
    assert bool(dense.converged) and bool(blocked.converged)
    assert int(blocked.iterations) == int(dense.iterations)
    np.testing.assert_allclose(blocked.cost, dense.cost, rtol=1e-12)
    np.testing.assert_allclose(blocked.f, dense.f, atol=1e-11)
    np.testing.assert_allclose(blocked.g, dense.g, atol=1e-11)
    plan = dense.plan()
    np.testing.assert_allclose(blocked.transport_cost(), jnp.sum(plan * dense.cost_matrix()),
                               rtol=1e-12)
    # The barycentric projection is the plan applied to y, row by row.
    np.testing.assert_allclose(blocked.barycentric_map(), plan @ y / a[:, None], atol=1e-9)


def test_blocks_give_the_dense_gradients_by_the_implicit_backward_pass(getkey):
    x, y, a, b = _problem(getkey, 19, 13)
    w = jax.random.normal(getkey(), (19,))

    def losses(**route):
        def loss(x, y):
            result = fl.transport.sinkhorn(x, y, a=a, b=b, **route, **SOLVE)
            # The cost, and the potentials themselves (their cotangents go through ott-jax's
            # implicit linear solve), and the block-wise summaries.
            return (result.cost + jnp.sum(w * result.f) + result.transport_cost()
                    + jnp.sum(result.barycentric_map() ** 2))
        return jax.grad(loss, argnums=(0, 1))(x, y)

    dense, blocked = losses(lse_mode=True), losses(block_size=6)
    for got, want in zip(blocked, dense, strict=True):
        assert bool(jnp.all(jnp.isfinite(got)))
        np.testing.assert_allclose(got, want, atol=1e-8)


def test_geometry_products_equal_the_dense_point_cloud(getkey):
    x, y, _, _ = _problem(getkey, 11, 7)
    f, g = jax.random.normal(getkey(), (11,)), jax.random.normal(getkey(), (7,))
    vec_rows, vec_cols = jax.random.normal(getkey(), (11,)), jax.random.normal(getkey(), (7,))
    with ott_promotion():
        dense = pointcloud.PointCloud(x, y, epsilon=0.3)
        blocked = BlockPointCloud(x, y, epsilon=0.3, batch_size=3)
        for axis, vec in ((1, vec_cols), (0, vec_rows)):
            for v in (None, vec):
                got, want = (geom.apply_lse_kernel(f, g, 0.3, vec=v, axis=axis)
                             for geom in (blocked, dense))
                np.testing.assert_allclose(got[0], want[0], atol=1e-12)
                np.testing.assert_allclose(got[1], want[1])
            np.testing.assert_allclose(blocked.apply_kernel(vec, axis=axis),
                                       dense.apply_kernel(vec, axis=axis), atol=1e-12)
        for axis, vec in ((0, vec_rows), (1, vec_cols)):
            np.testing.assert_allclose(blocked.apply_square_cost(vec, axis=axis),
                                       dense.apply_square_cost(vec, axis=axis), rtol=1e-12)
        np.testing.assert_allclose(blocked._compute_summary_online("max_cost"),
                                   jnp.max(dense.cost_matrix), rtol=1e-12)
        np.testing.assert_allclose(blocked.apply_transport_from_potentials(f, g, vec_cols, axis=1),
                                   dense.apply_transport_from_potentials(f, g, vec_cols, axis=1),
                                   atol=1e-12)
        # A pytree: flattened and rebuilt, it keeps its blocks.
        leaves, tree = jax.tree.flatten(blocked)
        assert jax.tree.unflatten(tree, leaves)._batch_size == 3


def test_squared_distances_keep_float32_accuracy_far_from_the_origin():
    # Two points 1e3 from the origin, 1e-2 apart: the expansion |x|^2 + |y|^2 - 2 <x, y> loses
    # every digit in float32 (its rounding unit there is ~0.1); exact differences do not.
    x = jnp.array([[1000.0, -1000.0]], jnp.float32)
    y = x + jnp.array([[0.01, 0.0]], jnp.float32)
    exact = float(np.sum((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2))
    got = float(squared_distances(x, jnp.transpose(y))[0, 0])
    assert abs(got - exact) < 1e-5 * exact


def test_above_the_budget_the_default_routes_to_blocks(getkey, monkeypatch):
    x, y, a, b = _problem(getkey, 29, 31)
    dense = fl.transport.sinkhorn(x, y, a=a, b=b, lse_mode=True, **SOLVE)
    plan = dense.plan()
    monkeypatch.setattr(_sinkhorn, "KERNEL_MAX_BYTES", 64)
    calls = []
    original = BlockPointCloud.apply_lse_kernel

    def spy(self, *args, **kwargs):
        calls.append(self._batch_size)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BlockPointCloud, "apply_lse_kernel", spy)
    assert _sinkhorn._mode(None, None, 29, 31, jnp.float64)[0] == "block"
    assert _sinkhorn._mode(True, None, 29, 31, jnp.float64)[0] == "block"
    assert _sinkhorn._mode(False, None, 29, 31, jnp.float64)[0] == "kernel"
    routed = fl.transport.sinkhorn(x, y, a=a, b=b, **SOLVE)
    assert calls, "the solve did not run on BlockPointCloud"
    np.testing.assert_allclose(routed.f, dense.f, atol=1e-11)
    np.testing.assert_allclose(routed.cost, dense.cost, rtol=1e-12)
    # Everything built on `sinkhorn` follows: the divergence and W2 by Sinkhorn.
    calls.clear()
    divergence = fl.transport.sinkhorn_divergence(x, y, a=a, b=b, epsilon=0.1, threshold=1e-10)
    assert calls and float(divergence) > 0
    w2 = fl.transport.w2(x, y, a=a, b=b, method="sinkhorn", epsilon=0.1)
    assert bool(jnp.isfinite(w2))
    # Past the budget, the dense plan is refused with its size and the block-wise alternatives.
    with pytest.raises(ValueError, match=r"\(n, m\) = \(29, 31\) array of float64, 7.0 KiB.*"
                                         r"above `max_bytes` = 64 bytes.*barycentric_map"):
        routed.plan()
    np.testing.assert_allclose(routed.plan(max_bytes=10**6), plan, atol=1e-11)


def test_row_blocks_fit_the_budget_and_cut_rows_evenly():
    assert _blocks.row_block(100, 50, jnp.float32) == 100  # fits: one block
    rows = _blocks.row_block(40_000, 40_000, jnp.float32)
    assert rows * 40_000 <= 2**20 and -(-40_000 // rows) * rows - 40_000 < -(-40_000 // rows)
    assert _blocks.row_block(10, 10**7, jnp.float32) == 1
    assert _blocks.row_block(64, 64, jnp.float32, budget_bytes=64 * 16 * 4 * 4) == 16


def _temp_bytes(fn, *args):
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_blocked_solve_and_its_gradient_never_hold_an_n_by_m_array(monkeypatch):
    n = 4096
    square = n * n * 4  # one (n, n) float32 array
    x = jnp.zeros((n, 2), jnp.float32)
    y = jnp.ones((n, 2), jnp.float32)

    # A new function per trace: `jax.jit` caches traces by function, and the route is read when
    # tracing.
    cost = lambda: lambda x, y: fl.transport.sinkhorn(x, y, epsilon=0.1).cost
    assert _temp_bytes(cost(), x, y) >= square  # below the budget: the dense kernel
    # Past the kernel budget: blocks of 2**20 / (4 numbers * 4 bytes * 4096) = 16 rows, so that
    # a few (16, 4096) blocks (the gradient holds about four) stay far below one (n, n) array.
    monkeypatch.setattr(_sinkhorn, "KERNEL_MAX_BYTES", 2**20)
    monkeypatch.setattr(_blocks, "PAIR_BUDGET_BYTES", 2**20)
    assert _temp_bytes(cost(), x, y) < square / 32
    assert _temp_bytes(jax.grad(cost()), x, y) < square / 32
    summaries = lambda x, y: fl.transport.sinkhorn(x, y, epsilon=0.1).barycentric_map()
    assert _temp_bytes(summaries, x, y) < square / 32
