"""Blocks: the one place where pair computations are cut into blocks (ARCHITECTURE.md, rule 6).

A pair computation runs over rows ``i < n`` (particles, queries) and columns ``j < m`` (particles,
keys, data points). Cut into blocks, it never holds an `(n, m)` array:

- padding: `pad_rows`, `to_blocks`, `unblock` turn `(n, ...)` into `(n_blocks, block, ...)` and
  back; `pair_mask` says which pairs of a block count (padding, self pairs, causality).
- the driver: `fold_pairs` maps over row blocks (`lax.map`) and folds a step over column blocks
  (`lax.scan`): memory is one block pair plus the carries, and reverse-mode autodiff recomputes
  each block pair (`jax.checkpoint`) rather than keeping it.
- pair sums: `pair_sum`, ``sum_j w_j fn(x_i - y_j)``, and its one-block kernel `block_pair_sum`;
  for functions of the squared distance, `radial_pair_sum` and `radial_moment_sum` (the weighted
  differences, a velocity), evaluated on whole blocks of squared distances.
- streaming log-sum-exp: `Softmax`, `softmax_init`, `softmax_update`, `softmax_finish` keep an
  online maximum and normaliser, so softmax-weighted sums never overflow or underflow.
- attention: `softmax_attend`, the softmax-weighted average of values for the logits
  ``<q_i, k_j> + b_j``, with a custom backward that recomputes the blocks (memory linear in
  ``n + m`` for the value and the gradient).
"""

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
MASK_KINDS = (None, "causal", "anticausal", "distinct")
_TRANSPOSED = {None: None, "causal": "anticausal", "anticausal": "causal", "distinct": "distinct"}


# --- padding and masks ---


def pad_rows(a: Array, multiple: int, fill=0) -> Array:
    """`a` `(n, ...)` padded with `fill` to `(ceil(n / multiple) * multiple, ...)`."""
    pad = -a.shape[0] % multiple
    return jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1), constant_values=fill)


def to_blocks(a: Array, block: int, fill=0) -> Array:
    """`a` `(n, ...)` -> `(ceil(n / block), block, ...)`, the last block padded with `fill`."""
    a = pad_rows(a, block, fill)
    return a.reshape(a.shape[0] // block, block, *a.shape[1:])


def unblock(a: Array, n: int) -> Array:
    """`(n_blocks, block, ...)` -> `(n, ...)`: the blocks joined, the padding dropped."""
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])[:n]


def block_ids(n: int, block: int) -> Array:
    """The global index of every slot of `to_blocks` of `n` rows, `(n_blocks, block)` int32."""
    return jnp.arange(-(-n // block) * block, dtype=jnp.int32).reshape(-1, block)


def transposed(kind: str | None) -> str | None:
    """The mask kind of the transposed pairs (columns as rows): causal <-> anticausal."""
    return _TRANSPOSED[kind]


def pair_mask(rows: Array, cols: Array, n_rows: int, n_cols: int, kind: str | None = None):
    """Which pairs of a block count, `(len(rows), len(cols))` bool.

    `rows`, `cols`: global indices of the block's rows and columns; indices at or past `n_rows`,
    `n_cols` are padding and never count. `kind`: `None` (every pair), "causal" (j <= i),
    "anticausal" (j >= i) or "distinct" (j != i, no self pairs).
    """
    ok = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    if kind == "causal":
        ok = ok & (cols[None, :] <= rows[:, None])
    elif kind == "anticausal":
        ok = ok & (cols[None, :] >= rows[:, None])
    elif kind == "distinct":
        ok = ok & (cols[None, :] != rows[:, None])
    return ok


# --- the driver ---


def fold_pairs(step: Callable, init: Callable, rows, cols, block: int | tuple[int, int], *,
               kind: str | None = None, finish: Callable | None = None):
    """For each block of rows, fold `step` over the blocks of columns.

    **Arguments:**
    - `rows`, `cols`: pytrees of arrays with leading axes `n` and `m` (zero-padded to blocks).
    - `block`: the block edge, or `(row_block, col_block)`.
    - `init(row_block) -> carry`: the carry of one block of rows.
    - `step(carry, row_block, col_block, mask) -> carry`, with `mask` `(row_block, col_block)`
      from `pair_mask` with `kind` (padded rows and columns are always masked).
    - `finish(carry, row_block) -> out`: the per-row outputs of a block, leading axis
      `row_block` (default: the carry itself).

    **Returns:** the outputs of every row block joined, leading axis `n`. The value holds one
    block pair and the carries at a time. Each block pair's step is rematerialised
    (`jax.checkpoint`): reverse-mode autodiff recomputes it and keeps only the inputs and the
    carries that the step's derivative reads, so the gradient of a sum (a carry that only
    accumulates) holds one block pair at a time too; a step whose derivative reads its carry
    (a streaming softmax) keeps one carry per block pair, hence `softmax_attend`'s custom VJP.
    """
    row_block, col_block = block if isinstance(block, tuple) else (block, block)
    n = jax.tree.leaves(rows)[0].shape[0]
    m = jax.tree.leaves(cols)[0].shape[0]
    row_blocks = jax.tree.map(lambda a: to_blocks(a, row_block), rows)
    col_blocks = jax.tree.map(lambda a: to_blocks(a, col_block), cols)
    col_ids = block_ids(m, col_block)

    # The mask is built inside the checkpoint: a residual mask would be (n, m) booleans.
    @partial(jax.checkpoint, prevent_cse=False)  # inside a scan, CSE is no concern
    def pair(carry, row_data, row_ids, col_data, ids):
        return step(carry, row_data, col_data, pair_mask(row_ids, ids, n, m, kind))

    def one_row_block(inputs):
        row_data, row_ids = inputs

        def fold(carry, col_inputs):
            return pair(carry, row_data, row_ids, *col_inputs), None

        carry, _ = jax.lax.scan(fold, init(row_data), (col_blocks, col_ids))
        return carry if finish is None else finish(carry, row_data)

    out = jax.lax.map(one_row_block, (row_blocks, block_ids(n, row_block)))
    return jax.tree.map(lambda a: unblock(a, n), out)


# --- pair sums ---


def block_pair_sum(fn: Callable, xi: Array, yj: Array, wj: Array, mask: Array) -> Array:
    """``sum_j mask_ij w_j fn(x_i - y_j)`` over one block pair, shape `(ci, *fn_shape)`.

    `xi` `(ci, d)`, `yj` `(cj, d)`, `wj` `(cj,)`, `mask` `(ci, cj)`; `fn` maps one difference
    `(d,)` to an array. A masked pair gives `fn` the difference ``(1, ..., 1)`` (a singular kernel
    never sees 0) and adds exactly zero, with a zero gradient.
    """
    z = jnp.where(mask[..., None], xi[:, None, :] - yj[None, :, :], 1)
    value = jax.vmap(jax.vmap(fn))(z)
    value = jnp.where(mask.reshape(mask.shape + (1,) * (value.ndim - 2)), value, 0)
    return jnp.einsum("ij...,j->i...", value, wj.astype(value.dtype))


def pair_sum(fn: Callable, x: Array, y: Array, w: Array, block: int | tuple[int, int], *,
             kind: str | None = None) -> Array:
    """``out_i = sum_j w_j fn(x_i - y_j)`` over the pairs that `kind` keeps, `(n, *fn_shape)`.

    `x` `(n, d)`, `y` `(m, d)`, `w` `(m,)`; `block` as in `fold_pairs`; `kind` as in `pair_mask`
    ("distinct" with ``y = x`` leaves out the self pairs). The value and its reverse-mode
    gradient hold one `(ci, cj, d)` block at a time (`fold_pairs` recomputes the blocks).
    """
    out_shape = jax.eval_shape(fn, x[0]).shape

    def step(acc, xi, col_data, mask):
        return acc + block_pair_sum(fn, xi, *col_data, mask)

    init = lambda xi: jnp.zeros((xi.shape[0], *out_shape), x.dtype)
    return fold_pairs(step, init, x, (y, w), block, kind=kind)


def radial_pair_sum(profile: Callable, x: Array, y: Array, w: Array,
                    block: int | tuple[int, int], *, kind: str | None = None) -> Array:
    """``out_i = sum_j w_j profile(|x_i - y_j|^2)`` over the pairs that `kind` keeps, `(n,)`.

    The pair sum of `pair_sum` for a function of the squared distance: `profile` maps an array
    of squared distances elementwise (a whole `(ci, cj)` block at once, no per-pair `vmap`), so a
    block costs a few fused elementwise passes. `x` `(n, d)`, `y` `(m, d)`, `w` `(m,)`; `block`,
    `kind` as in `pair_sum`. A masked pair gives `profile` the squared distance 1 (a singular
    profile never sees 0) and adds exactly zero, with a zero gradient.
    """
    return _radial_sum(profile, x, y, w, block, kind, moment=False)


def radial_moment_sum(profile: Callable, x: Array, y: Array, w: Array,
                      block: int | tuple[int, int], *, kind: str | None = None) -> Array:
    """``out_i = sum_j w_j profile(|x_i - y_j|^2) (x_i - y_j)``, `(n, d)`, as `radial_pair_sum`.

    With ``profile = W'`` this is half the gradient sum ``sum_j w_j grad_z W(|z|^2)`` at
    ``z = x_i - y_j``: the velocity of an interaction whose kernel is a function of ``|z|^2``.
    """
    return _radial_sum(profile, x, y, w, block, kind, moment=True)


def _radial_sum(profile, x, y, w, block, kind, moment):
    # The coordinates travel as d vectors: a block's differences x_ik - y_jk are then (ci, cj)
    # broadcasts of contiguous vectors that XLA fuses into one loop (a (ci, cj, d) broadcast
    # reduced over its short last axis ran ~20x slower on CPU). The squared distance is summed
    # from the exact differences, not from |x|^2 + |y|^2 - 2 <x, y>: no cancellation, so close
    # pairs under a singular kernel keep float32 accuracy and a collision is an exact 0.
    d = x.shape[1]

    def step(acc, xi, col_data, mask):
        yj, wj = col_data
        diffs = [a[:, None] - b[None, :] for a, b in zip(xi, yj, strict=True)]
        r2 = sum(z * z for z in diffs)
        f = jnp.where(mask, profile(jnp.where(mask, r2, 1)).astype(x.dtype), 0) * wj[None, :]
        if moment:
            return acc + jnp.stack([jnp.sum(f * z, axis=1) for z in diffs], axis=1)
        return acc + jnp.sum(f, axis=1)

    init = lambda xi: jnp.zeros((xi[0].shape[0],) + ((d,) if moment else ()), x.dtype)
    return fold_pairs(step, init, tuple(x.T), (tuple(y.T), w.astype(x.dtype)), block, kind=kind)


# --- streaming log-sum-exp ---


class Softmax(NamedTuple):
    """State of a streaming log-sum-exp over logits ``L_ij`` seen one block of columns at a time.

    `top` `(*rows)`: the running maximum over j (``-inf`` until a finite logit is seen);
    `mass` `(*rows)`: ``sum_j exp(L_ij - top)``; `sums`: a pytree of leaves `(*rows, ...)`, each
    ``sum_j exp(L_ij - top) u_ij`` for some values `u`.
    """

    top: Array
    mass: Array
    sums: Any


def _expand(a: Array, like: Array) -> Array:
    """`a` `(*rows)` with trailing unit axes up to the rank of `like`."""
    return a.reshape(a.shape + (1,) * (like.ndim - a.ndim))


def softmax_init(rows: tuple[int, ...], sums, dtype) -> Softmax:
    """The empty state for rows of shape `rows`; `sums`: the zero sums (a pytree)."""
    return Softmax(jnp.full(rows, -jnp.inf, dtype), jnp.zeros(rows, dtype), sums)


def softmax_update(state: Softmax, logits: Array, weighted: Callable) -> Softmax:
    """Fold one block of logits `(*rows, c)` into `state`.

    `weighted(p)` returns the block's sums ``sum_j p_ij u_ij`` (the pytree structure of
    `state.sums`) from the weights ``p = exp(logits - top)`` `(*rows, c)`. Logits of ``-inf``
    (masked) weigh zero; the old sums are rescaled to the new maximum, so nothing overflows.
    """
    top = jnp.maximum(state.top, jnp.max(logits, axis=-1))
    safe = jnp.where(jnp.isfinite(top), top, 0)
    scale = jnp.exp(state.top - safe)
    p = jnp.exp(logits - safe[..., None])
    sums = jax.tree.map(lambda old, new: old * _expand(scale, old) + new, state.sums, weighted(p))
    return Softmax(top, state.mass * scale + jnp.sum(p, axis=-1), sums)


def softmax_finish(state: Softmax):
    """The softmax-weighted averages ``sums / mass`` (zero for a row with no finite logit) and
    ``lse = log sum_j exp(L_ij)`` `(*rows)` (``-inf`` for such a row)."""
    seen = state.mass > 0
    safe = jnp.where(seen, state.mass, 1)
    lse = jnp.where(seen, state.top + jnp.log(safe), -jnp.inf)
    return jax.tree.map(lambda s: s / _expand(safe, s), state.sums), lse


# --- attention: softmax averages of bilinear logits, with a memory-linear backward ---


def attention_scores(q: Array, k: Array, bias: Array, mask: Array) -> Array:
    """Scores ``<q_i, k_j> + bias_j`` per head, ``-inf`` where `mask` is False, `(h, n, m)`.

    `q` `(n, h, k)`, `k` `(m, h, k)`, `bias` `(m, h)`, `mask` `(n, m)`.
    """
    s = jnp.einsum("ihk,jhk->hij", q, k) + jnp.transpose(bias)[:, None, :]
    return jnp.where(mask[None], s, -jnp.inf)


def _attend_forward(q, k, v, bias, kind, block):
    h, e = q.shape[1], v.shape[2]

    def init(qb):
        return softmax_init((h, qb.shape[0]), jnp.zeros((h, qb.shape[0], e), q.dtype), q.dtype)

    def step(state, qb, keys, mask):
        kb, vb, bb = keys
        scores = attention_scores(qb, kb, bb, mask)
        return softmax_update(state, scores, lambda p: jnp.einsum("hij,jhe->hie", p, vb))

    def finish(state, qb):
        out, lse = softmax_finish(state)
        return jnp.transpose(out, (1, 0, 2)), jnp.transpose(lse)

    return fold_pairs(step, init, q, (k, v, bias), block, kind=kind, finish=finish)


def _attend_fwd(q, k, v, bias, kind, block):
    out, lse = _attend_forward(q, k, v, bias, kind, block)
    return (out, lse), (q, k, v, bias, out, lse)


def _attend_backward(kind, block, residuals, cotangents):
    """Gradients by recomputing each block pair's softmax from the saved `lse`: a pass over
    query blocks for `dq`, one over key blocks for `dk`, `dv`, `dbias`."""
    q, k, v, bias, out, lse = residuals
    dout, dlse = cotangents
    delta = jnp.sum(dout * out, axis=-1) - dlse  # (n, h)
    lse = jnp.where(jnp.isfinite(lse), lse, 0)
    queries, keys = (q, dout, delta, lse), (k, v, bias)

    def pair(query_data, key_data, mask):
        """Probabilities `p` and score cotangents `ds` of one block pair, `(h, cq, ck)`."""
        qb, gb, db, lb = query_data
        kb, vb, bb = key_data
        p = jnp.exp(attention_scores(qb, kb, bb, mask) - jnp.transpose(lb)[..., None])
        dp = jnp.einsum("ihe,jhe->hij", gb, vb)
        return p, p * (dp - jnp.transpose(db)[..., None])

    def dq_step(acc, query_data, key_data, mask):
        _, ds = pair(query_data, key_data, mask)
        return acc + jnp.einsum("hij,jhk->ihk", ds, key_data[0])

    def dkv_step(acc, key_data, query_data, mask):
        p, ds = pair(query_data, key_data, jnp.transpose(mask))
        dk, dv, db = acc
        return (dk + jnp.einsum("hij,ihk->jhk", ds, query_data[0]),
                dv + jnp.einsum("hij,ihe->jhe", p, query_data[1]),
                db + jnp.transpose(jnp.sum(ds, axis=1)))

    dq = fold_pairs(dq_step, lambda qd: jnp.zeros_like(qd[0]), queries, keys, block, kind=kind)
    dk, dv, db = fold_pairs(dkv_step, lambda kd: tuple(jnp.zeros_like(a) for a in kd), keys,
                            queries, block, kind=transposed(kind))
    return dq, dk, dv, db


@partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def softmax_attend(q, k, v, bias, kind, block):
    """Blockwise ``out_i = sum_j softmax_j(<q_i, k_j> + bias_j) v_j`` and
    ``lse_i = log sum_j exp(<q_i, k_j> + bias_j)`` over the pairs `kind` keeps.

    `q` `(n, h, k)`, `k` `(m, h, k)`, `v` `(m, h, e)`, `bias` `(m, h)` (``-inf`` hides a key);
    `kind` as in `pair_mask`; `block` the block edge (both positional).

    **Returns:** `out` `(n, h, e)` (zero for a query that sees no key) and `lse` `(n, h)`. The
    value and the gradient hold one `(h, block, block)` block of scores at a time (the backward
    recomputes them).
    """
    return _attend_forward(q, k, v, bias, kind, block)


softmax_attend.defvjp(_attend_fwd, _attend_backward)


# --- choosing between dense and blocked ---

PAIR_BUDGET_BYTES = 2**27
"""Bytes of pair arrays (scores and the like) that a call may hold at once, 128 MiB: the default
budget of `choose_block`, read when a field is built (fields take a `memory_budget` to override
it)."""
MAX_BLOCK = 1024
"""The largest block edge `choose_block` picks: larger blocks fit a large budget but run slower
on CPU (1.8x at n = 60000, d = 8 with edges of about 2800, benchmarks/attention.py)."""


def choose_block(n_rows: int, n_cols: int, numbers_per_pair: int, dtype,
                 budget_bytes: int | None = None) -> int | None:
    """The block edge of a pair computation over `n_rows` x `n_cols` pairs, or `None` for dense.

    Dense (every pair at once) when ``n_rows * n_cols * numbers_per_pair`` numbers of `dtype`
    fit in `budget_bytes` (default `PAIR_BUDGET_BYTES`); otherwise the edge `c` of square blocks
    with ``c * c * numbers_per_pair`` numbers within the budget, as large as that allows up to
    `MAX_BLOCK`, then evened out so that ``max(n_rows, n_cols)`` is cut into equal blocks (little
    padding).
    `numbers_per_pair`: the arrays that the computation and its gradient hold per pair (for
    attention, about 4 per head: scores, weights and their cotangents).
    """
    budget = PAIR_BUDGET_BYTES if budget_bytes is None else budget_bytes
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ValueError(f"`budget_bytes` must be a positive integer (bytes), got {budget!r}.")
    per_pair = numbers_per_pair * jnp.dtype(dtype).itemsize
    if n_rows * n_cols * per_pair <= budget:
        return None
    widest = min(max(int((budget // per_pair) ** 0.5), 1), MAX_BLOCK)
    longest = max(n_rows, n_cols)
    return -(-longest // -(-longest // widest))


def map_rows(fn, rows, columns: Array, block: int):
    """``fn(row_block, y_columns)`` for each block of `block` rows of the pytree `rows` (leading
    axis `n`), joined to leading axis `n`.

    `columns` `(m, d)` is handed to `fn` transposed, `(d, m)`; `fn` returns a pytree of arrays with
    leading axis `block`. The last block is zero-padded and its padded rows dropped. Each block is
    rematerialised in reverse mode (``jax.checkpoint``).
    """
    n = jax.tree.leaves(rows)[0].shape[0]
    block = min(block, n)
    blocks = jax.tree.map(lambda a: to_blocks(a, block), rows)
    one = jax.checkpoint(fn, prevent_cse=False)  # inside a scan, CSE is no concern
    y_columns = jnp.transpose(columns)
    out = jax.lax.map(lambda b: one(b, y_columns), blocks)
    return jax.tree.map(lambda a: unblock(a, n), out)


def row_block(n: int, m: int, dtype, numbers_per_pair: int = 4,
              budget_bytes: int | None = None) -> int:
    """Rows per block over `m` columns: ``rows * m * numbers_per_pair`` numbers of `dtype` within
    the budget (default `PAIR_BUDGET_BYTES`) and ``rows * m`` within
    ``MAX_BLOCK ** 2`` pairs (a block that stays in cache: on CPU, 1.8 ns per pair with
    4 to 32 rows of 40 000 columns, 5 ns with 209 rows), at least 1, at most `n`, evened out so
    that `n` is cut into equal blocks (little padding). `n` when the whole computation fits."""
    budget = PAIR_BUDGET_BYTES if budget_bytes is None else budget_bytes
    rows = min(n, budget // (m * numbers_per_pair * jnp.dtype(dtype).itemsize),
               MAX_BLOCK**2 // m)
    rows = max(1, rows)
    return -(-n // -(-n // rows))
