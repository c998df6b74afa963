"""A squared-Euclidean point cloud for ott-jax whose kernel products run over a ring of devices.

`ShardedPointCloud` is `BlockPointCloud` (`_block_geometry`) split over a one-axis device mesh:
`x` `(n, d)` and `y` `(m, d)` are both split along their rows, and every kernel product is a
`jax.shard_map` in which each device keeps its own rows (and their potential) and sees the other
cloud's blocks (with their potential and vector) one at a time, passed around the ring of devices
by `lax.ppermute` (`p - 1` hops), folding each visiting block into a streaming log-sum-exp
(`_blocks.softmax_update`) or a sum. A sum over columns (``axis=1``) is thus computed on the device
that owns the rows of `x`, a sum over rows (``axis=0``) on the device that owns the rows of `y`
(the blocks of `x` travel). No device holds the `(n, m)` cost, nor more than one block of the
other cloud: memory per device ``O((n + m) d / p + rows * max(n, m) / p)``, with `rows` the
`batch_size` rows of the device's block processed at a time (`_blocks.map_rows`).

ott-jax's Sinkhorn loop, its error check, ``reg_ot_cost`` and its implicit backward pass run
unchanged on this geometry (they reach the pairs only through the methods replaced here).
"""

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec as P
from ott.geometry import pointcloud

from .. import _blocks
from ._block_geometry import squared_distances


def _rows_spec(axis: str, tree):
    """The spec of each leaf of `tree` split along its leading axis."""
    return jax.tree.map(lambda a: P(axis, *([None] * (a.ndim - 1))), tree)


def ring_fold(mesh: Mesh, block: int, step, init, finish, rows, columns, extra, consts):
    """Fold every block of columns into per-row states, the column blocks travelling a ring.

    **Arguments:**
    - `rows`: pytree of arrays with leading axis `n` (split over `mesh`), kept where they are.
    - `columns` `(m, d)` and `extra` (pytree, leading axis `m`): split over `mesh` and passed
      from device to device (`p - 1` hops of `lax.ppermute`).
    - `consts`: pytree of replicated arrays (scalars).
    - `init(rows, consts) -> state` (leading axis `n / p`); `step(state, rows, y_columns, extra,
      consts) -> state` for a block of `block` rows, `y_columns` `(d, m / p)` the visiting block
      transposed; `finish(state, rows, consts) -> out` (leading axis `n / p`).

    **Returns:** `out` joined over the devices, leading axis `n`, split over `mesh`.
    """
    axis = mesh.axis_names[0]
    p = mesh.devices.size
    ring = [(i, (i + 1) % p) for i in range(p)]

    def local(rows, columns, extra, consts):
        def visit(state, travelling):
            y_block, extra_block = travelling

            def one(data, y_columns):
                rows_block, state_block = data
                return step(state_block, rows_block, y_columns, extra_block, consts)

            return _blocks.map_rows(one, (rows, state), y_block, block)

        travelling = (columns, extra)
        state = visit(init(rows, consts), travelling)

        def hop(carry, _):
            state, travelling = carry
            travelling = jax.lax.ppermute(travelling, axis, ring)
            return (visit(state, travelling), travelling), None

        (state, _), _ = jax.lax.scan(hop, (state, travelling), None, length=p - 1)
        return finish(state, rows, consts)

    in_specs = (_rows_spec(axis, rows), P(axis, None), _rows_spec(axis, extra),
                jax.tree.map(lambda _: P(), consts))
    return jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=P(axis),
                         check_vma=False)(rows, columns, extra, consts)


def _lse_step(state, rows, y_columns, extra, consts):
    xb, hb = rows
    there, *vec = extra  # `vec` absent or one (m / p,) block
    eps, scale = consts
    logits = (hb[:, None] + there[None, :] - scale * squared_distances(xb, y_columns)) / eps
    return _blocks.softmax_update(state, logits, lambda p: p @ vec[0] if vec else ())


@jax.tree_util.register_pytree_node_class
class ShardedPointCloud(pointcloud.PointCloud):
    """``PointCloud(x, y)`` with the squared Euclidean cost, both clouds split over `mesh`, whose
    kernel products (``apply_lse_kernel``, ``apply_kernel``, the non-linear ``apply_cost`` and
    the ``max_cost`` summary) run over the ring of devices (`ring_fold`).

    `x` `(n, d)`, `y` `(m, d)`, `n` and `m` divisible by the devices of `mesh` (a one-axis
    `jax.sharding.Mesh`); `batch_size`: rows of a device's block processed at a time. As with
    `BlockPointCloud`, ``cost_matrix``, ``kernel_matrix`` and ``transport_from_potentials`` stay
    dense (they are the `(n, m)` arrays).
    """

    def __init__(self, x, y=None, cost_fn=None, batch_size=None, mesh=None, **kwargs):
        super().__init__(x, y, cost_fn=cost_fn, batch_size=batch_size, **kwargs)
        if not self.is_squared_euclidean:
            raise TypeError(f"ShardedPointCloud computes squared Euclidean costs only, got "
                            f"{type(self.cost_fn).__name__}.")
        if batch_size is None or not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
            raise ValueError("ShardedPointCloud needs `batch_size` (rows per block) and `mesh` "
                             "(a one-axis jax.sharding.Mesh).")
        self.mesh = mesh

    def tree_flatten(self):  # noqa: D102
        children, aux = super().tree_flatten()
        return children, {**aux, "mesh": self.mesh}

    def _sides(self, axis: int):
        """(rows, columns) of the sum: rows of `x` for ``axis=1``, of `y` for 0."""
        return (self.x, self.y) if axis == 1 else (self.y, self.x)

    def _fold(self, step, init, finish, rows, columns, extra, consts):
        return ring_fold(self.mesh, self._batch_size, step, init, finish, rows, columns, extra,
                         consts)

    def apply_lse_kernel(self, f, g, eps, vec=None, axis=0):
        """``eps * log sum_j vec_j exp((f_i + g_j - C_ij) / eps) - f_i`` over ``j`` for
        ``axis=1`` (`(n,)`), over ``i`` minus `g_j` for ``axis=0`` (`(m,)`), with its sign."""
        rows, columns = self._sides(axis)
        here, there = (f, g) if axis == 1 else (g, f)
        dtype = here.dtype

        def init(rows, consts):
            count = rows[1].shape[0]
            return _blocks.softmax_init((count,), () if vec is None else jnp.zeros(count, dtype),
                                        dtype)

        def finish(state, rows, consts):
            if vec is None:
                return _blocks.softmax_finish(state)[1], jnp.ones_like(state.top)
            top = jnp.where(jnp.isfinite(state.top), state.top, 0)
            return top + jnp.log(jnp.abs(state.sums)), jnp.sign(state.sums)

        consts = (jnp.asarray(eps, dtype), jnp.asarray(self.inv_scale_cost, dtype))
        extra = (there,) if vec is None else (there, vec)
        lse, sign = self._fold(_lse_step, init, finish, (rows, here), columns, extra, consts)
        out = consts[0] * lse - jnp.where(jnp.isfinite(here), here, 0)
        # ott-jax's dense geometry answers the sign 1 when there is no `vec`.
        return out, (jnp.ones((1,), out.dtype) if vec is None else sign)

    def _matvec(self, pair_fn, vec, axis, consts):
        """``sum_j pair_fn(C_ij, consts) vec_j`` over the ring, for ``axis`` as above."""
        rows, columns = self._sides(axis)

        def init(rows, consts):
            return jnp.zeros((rows.shape[0], *vec.shape[1:]), vec.dtype)

        def step(acc, xb, y_columns, vec_block, consts):
            return acc + pair_fn(squared_distances(xb, y_columns), consts) @ vec_block

        return self._fold(step, init, lambda acc, *_: acc, rows, columns, vec, consts)

    def apply_kernel(self, vec, eps=None, axis=0):
        """``exp(-C / eps) vec`` (``axis=1``, `(n,)`) or ``exp(-C / eps)^T vec`` (``axis=0``)."""
        eps = self.epsilon if eps is None else eps
        consts = (jnp.asarray(eps, vec.dtype), jnp.asarray(self.inv_scale_cost, vec.dtype))
        return self._matvec(lambda c, k: jnp.exp(-k[1] * c / k[0]), vec, axis, consts)

    def _apply_cost_to_vec(self, vec, axis=0, fn=None, is_linear=False, scale_cost=None):
        # A linear `fn` of the squared Euclidean cost has ott-jax's closed form in O((n + m) d).
        if fn is None or is_linear:
            return super()._apply_cost_to_vec(vec, axis, fn, is_linear, scale_cost)
        scale = self.inv_scale_cost if scale_cost is None else scale_cost
        consts = jnp.asarray(scale, vec.dtype)
        return self._matvec(lambda c, k: fn(k * c), vec, axis, consts)

    def _compute_summary_online(self, summary):
        if summary != "max_cost":
            return super()._compute_summary_online(summary)

        def step(top, xb, y_columns, extra, consts):
            return jnp.maximum(top, jnp.max(squared_distances(xb, y_columns), axis=1))

        init = lambda rows, consts: jnp.zeros(rows.shape[0], rows.dtype)
        top = self._fold(step, init, lambda top, *_: top, self.x, self.y, (), ())
        return jnp.max(top)
