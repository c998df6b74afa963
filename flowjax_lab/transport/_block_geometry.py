"""A squared-Euclidean point cloud for ott-jax whose kernel products run a block of rows at a time.

ott-jax's dense ``PointCloud`` builds the `(n, m)` cost on every ``apply_lse_kernel`` (19 GB peak
at n = m = 40 000); its online mode (``batch_size``) goes through ``ott.utils.batched_vmap``, which
jax >= 0.9 broke (ott-jax issue 700). `BlockPointCloud` keeps ott-jax's Sinkhorn loop, error check,
``reg_ot_cost`` and implicit-differentiation backward pass, and replaces the methods of the geometry
that they call with row-block versions: ``lax.map`` over blocks of `block` rows (the last one
zero-padded, its padded rows dropped), each block holding its `(block, m)` squared distances, so
memory is ``O((n + m) d + block * max(n, m))``. Each block is rematerialised (``jax.checkpoint``):
reverse mode keeps only the block's inputs and recomputes its distances.

Squared distances are summed from exact coordinate differences, not from the expansion
``|x|^2 + |y|^2 - 2 <x, y>``: no cancellation for close pairs of far-off points, so float32 keeps
the relative accuracy of the distances themselves.
"""

import jax
import jax.numpy as jnp
from ott.geometry import pointcloud
from ott.math import utils as mu

from .. import _blocks
from .._types import Array


def squared_distances(xb: Array, y_columns: Array) -> Array:
    """``|x_i - y_j|^2`` `(c, m)` for rows `xb` `(c, d)` and columns `y_columns` `(d, m)` (the
    transposed cloud), summed over coordinates from exact differences."""
    return sum((xb[:, k, None] - y_columns[k][None, :]) ** 2 for k in range(xb.shape[1]))


@jax.tree_util.register_pytree_node_class
class BlockPointCloud(pointcloud.PointCloud):
    """``PointCloud(x, y, batch_size=block)`` with the squared Euclidean cost, whose kernel
    products (``apply_lse_kernel``, ``apply_kernel``, the non-linear ``apply_cost`` and the
    ``max_cost`` summary) run `block` rows at a time, without ``ott.utils.batched_vmap``.

    `x` `(n, d)`, `y` `(m, d)`; `batch_size`: rows per block (ott-jax's name for it; a block of
    `x` for sums over columns, of `y` for sums over rows). Everything that ott-jax's Sinkhorn, its
    marginal errors, ``reg_ot_cost`` and its implicit backward pass call (``update_potential``,
    ``marginal_from_potentials``, ``apply_transport_from_potentials``) goes through
    ``apply_lse_kernel``. ``cost_matrix``, ``kernel_matrix`` and ``transport_from_potentials``
    stay dense: they are the `(n, m)` arrays themselves.
    """

    def __init__(self, x, y=None, cost_fn=None, batch_size=None, **kwargs):
        super().__init__(x, y, cost_fn=cost_fn, batch_size=batch_size, **kwargs)
        if not self.is_squared_euclidean:
            raise TypeError(f"BlockPointCloud computes squared Euclidean costs only, got "
                            f"{type(self.cost_fn).__name__}.")
        if batch_size is None:
            raise ValueError("BlockPointCloud needs `batch_size`, the rows per block.")

    def _sides(self, axis: int):
        """(rows, columns) of the blocked sum: rows of `x` for ``axis=1``, of `y` for 0."""
        return (self.x, self.y) if axis == 1 else (self.y, self.x)

    def apply_lse_kernel(self, f, g, eps, vec=None, axis=0):
        """``eps * log sum_j vec_j exp((f_i + g_j - C_ij) / eps) - f_i`` over ``j`` for
        ``axis=1`` (`(n,)`), over ``i`` minus `g_j` for ``axis=0`` (`(m,)`), with its sign."""
        rows, columns = self._sides(axis)
        here, there = (f, g) if axis == 1 else (g, f)
        scale = self.inv_scale_cost

        def block(data, y_columns):
            xb, hb = data
            logits = (hb[:, None] + there[None, :]
                      - scale * squared_distances(xb, y_columns)) / eps
            if vec is None:
                return mu.logsumexp(logits, axis=1), None
            return mu.logsumexp(logits, axis=1, b=vec[None, :], return_sign=True)

        lse, sign = _blocks.map_rows(block, (rows, here), columns, self._batch_size)
        out = eps * lse - jnp.where(jnp.isfinite(here), here, 0)
        # ott-jax's dense geometry answers the sign 1 when there is no `vec`.
        return out, (jnp.ones((1,), out.dtype) if sign is None else sign)

    def apply_kernel(self, vec, eps=None, axis=0):
        """``exp(-C / eps) vec`` (``axis=1``, `(n,)`) or ``exp(-C / eps)^T vec`` (``axis=0``)."""
        eps = self.epsilon if eps is None else eps
        rows, columns = self._sides(axis)
        scale = self.inv_scale_cost

        def block(xb, y_columns):
            return jnp.exp(-scale * squared_distances(xb, y_columns) / eps) @ vec

        return _blocks.map_rows(block, rows, columns, self._batch_size)

    def _apply_cost_to_vec(self, vec, axis=0, fn=None, is_linear=False, scale_cost=None):
        # A linear `fn` of the squared Euclidean cost has ott-jax's closed form in O((n + m) d).
        if fn is None or is_linear:
            return super()._apply_cost_to_vec(vec, axis, fn, is_linear, scale_cost)
        scale = self.inv_scale_cost if scale_cost is None else scale_cost
        rows, columns = self._sides(axis)

        def block(xb, y_columns):
            return fn(scale * squared_distances(xb, y_columns)) @ vec

        return _blocks.map_rows(block, rows, columns, self._batch_size)

    def _compute_summary_online(self, summary):
        if summary != "max_cost":
            return super()._compute_summary_online(summary)
        block = lambda xb, y_columns: jnp.max(squared_distances(xb, y_columns), axis=1)
        return jnp.max(_blocks.map_rows(block, self.x, self.y, self._batch_size))

