"""Attention as a vector field on a token cloud: softmax, mean and Sinkhorn normalisations.

Convention: the score of query token ``x_i`` for key token ``x_j`` is ``<Q x_i, K x_j>`` and the
velocity is ``v_i = sum_j P_ij V x_j`` (then the output projection), with ``P`` the normalised
``exp`` of the scores. With ``chunk_size`` set, or chosen because the dense scores would not fit
the memory budget (``_blocks.choose_block``), scores are evaluated block by block with a
streaming log-sum-exp (forward) and recomputed block by block in a custom backward pass
(``_blocks.softmax_attend``), so neither the forward nor the gradient ever holds an `(n, n)` array.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _blocks, _checks
from .._types import Array, Particles, ParticlesLike, ScalarLike

NORMALIZATIONS = ("softmax", "mean", "sinkhorn")
PAIR_NUMBERS = 4  # per pair and head: scores, weights and their cotangents (`attend`)


# --- the attention core: queries (n, h, k), keys (m, h, k), values (m, h, e), key bias (m, h) ---


def _dense_attend(q, k, v, bias, kind):
    n, m = q.shape[0], k.shape[0]
    mask = _blocks.pair_mask(jnp.arange(n), jnp.arange(m), n, m, kind)
    s = _blocks.attention_scores(q, k, bias, mask)
    top = jax.lax.stop_gradient(jnp.max(s, axis=-1))
    top = jnp.where(jnp.isfinite(top), top, 0)
    p = jnp.exp(s - top[..., None])  # (h, n, m)
    total = jnp.sum(p, axis=-1)
    safe = jnp.where(total > 0, total, 1)
    lse = jnp.where(total > 0, top + jnp.log(safe), -jnp.inf)
    out = jnp.einsum("hij,jhe->ihe", p / safe[..., None], v)
    return out, jnp.transpose(lse)


def attend(q, k, v, bias, *, kind=None, chunk_size=None, budget_bytes=None):
    """Normalised attention ``out_i = sum_j softmax_j(<q_i, k_j> + bias_j) v_j`` and
    ``lse_i = log sum_j exp(<q_i, k_j> + bias_j)`` over the visible pairs.

    **Arguments:** `q` `(n, h, k)`, `k` `(m, h, k)`, `v` `(m, h, e)`, `bias` `(m, h)` (``-inf``
    hides a key); `kind`: `None`, "causal" (j <= i) or "anticausal" (j >= i); `chunk_size`: a
    block size (memory `O((n + m) h)` plus a `(h, chunk_size, chunk_size)` block, for the value
    and the gradient), or `None` to choose: dense `(h, n, m)` scores while
    ``4 h n m`` numbers fit in `budget_bytes`, blocks that fit it above
    (`_blocks.choose_block`; default budget `_blocks.PAIR_BUDGET_BYTES`, 128 MiB).

    **Returns:** `out` `(n, h, e)` (zero for a query that sees no key) and `lse` `(n, h)`.
    """
    if chunk_size is None:
        chunk_size = _blocks.choose_block(q.shape[0], k.shape[0], PAIR_NUMBERS * q.shape[1],
                                          q.dtype, budget_bytes)
    if chunk_size is None:
        return _dense_attend(q, k, v, bias, kind)
    return _blocks.softmax_attend(q, k, v, bias, kind, chunk_size)


# --- parameters that may depend on depth ---


class PiecewiseConstant(eqx.Module):
    """Layer-wise parameters as a function of depth: ``theta(t) = values[l]`` on the l-th of
    ``L`` equal sub-intervals of ``[t0, t1]`` (clamped outside; a time within 1e-4 layer of a
    layer's start counts as that layer, so that ``t = t0 + l (t1 - t0) / L`` picks layer l).

    **Arguments:** `values` of shape `(L, ...)`; `t0 < t1`.
    """

    values: Array
    t0: float = eqx.field(static=True, default=0.0)
    t1: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if jnp.ndim(self.values) < 1 or jnp.shape(self.values)[0] < 1:
            raise ValueError(f"`values` must have a leading layer axis (L, ...), got shape "
                             f"{jnp.shape(self.values)}.")
        if not float(self.t1) > float(self.t0):
            raise ValueError(f"`t1` must be > `t0`, got t0={self.t0}, t1={self.t1}.")

    @property
    def layers(self) -> int:
        return self.values.shape[0]

    def __call__(self, t):
        u = (jnp.asarray(t) - self.t0) / (self.t1 - self.t0) * self.layers
        layer = jnp.clip(jnp.floor(u + 1e-4), 0, self.layers - 1).astype(jnp.int32)
        return self.values[layer]


def _value(param, t):
    return param(t) if callable(param) else param


def _shape_of(param, name: str):
    if param is None:
        return None
    if callable(param):
        try:
            out = jax.eval_shape(param, jnp.zeros(()))
        except Exception as err:
            raise TypeError(f"`{name}` must be an array or a function of t: {err}") from err
        return tuple(out.shape)
    return tuple(jnp.shape(param))


def _param(param, name: str):
    if param is None or callable(param):
        return param
    return _checks.as_float_array(param, name)


class Attention(eqx.Module):
    """The self-attention field ``v_i = O sum_j P_ij V x_j`` on a token cloud `(n, d)`.

    Scores are ``<Q x_i, K x_j>`` (an inverse temperature beta is a scale of `Q` or `K`).

    **Arguments:**
    - `Q`, `K`: shape `(k, d)` or, for `h` heads, `(h, k, d)`.
    - `V`: shape `(e, d)` or `(h, e, d)`.
    - `output`: the output projection, `(d, e)` or `(h, d, e)`; `None` means the identity
      (needs `e == d`); the heads' outputs are summed.
      Each of `Q`, `K`, `V`, `output` may instead be a function of depth ``t -> array`` (for
      example a [`PiecewiseConstant`][] over layers, or an equinox module), so that a whole
      transformer is one field.
    - `causal`: token i attends to tokens j <= i only.
    - `normalization`: "softmax" (rows of ``exp(scores)`` sum to one), "mean" (divided by the
      number of visible keys instead: the unnormalised model), or "sinkhorn" (doubly stochastic
      attention of Sinkformers: `sinkhorn_iterations` log-domain row normalisations with column
      normalisations in between; one iteration is softmax).
    - `sphere`: tokens live on the unit sphere and the velocity is projected on the tangent
      space (the layer-norm model). Off the sphere the field is extended radially: a token `x` moves
      as `x / |x|` would. A solver's stage points leave the sphere by O(h^2) and must be given a
      field (refusing them made adaptive solves with loose tolerances fail); a cloud given off the
      sphere is projected the same way, eagerly and under `jit`.
    - `mask`: optional boolean `(n,)`: the tokens that may be attended to (keys). Masked tokens
      still move, but exert no influence (padding, or queries of an in-context map).
    - `chunk_size`: a block size (memory linear in n: blocks of `(h, chunk_size, chunk_size)`
      scores, for the value and the gradient), or `None` to choose per call: dense scores
      `(h, n, n)` while their ``4 h n^2`` numbers (scores, weights and their cotangents) fit in
      `memory_budget`, blocks that fit it above, so that no default call holds `(n, n)` scores
      for large n.
    - `memory_budget`: bytes of scores a call may hold when `chunk_size` is `None`; `None`
      means `_blocks.PAIR_BUDGET_BYTES` (2^27, 128 MiB) as it is when the field is built.
    """

    Q: Array | Callable
    K: Array | Callable
    V: Array | Callable
    output: Array | Callable | None
    mask: Array | None
    causal: bool = eqx.field(static=True)
    normalization: str = eqx.field(static=True)
    sinkhorn_iterations: int = eqx.field(static=True)
    sphere: bool = eqx.field(static=True)
    chunk_size: int | None = eqx.field(static=True)
    memory_budget: int = eqx.field(static=True)
    heads: int = eqx.field(static=True)
    multihead: bool = eqx.field(static=True)

    def __init__(self, Q, K, V, *, output=None, causal=False, normalization="softmax",
                 sinkhorn_iterations=3, sphere=False, mask=None, chunk_size=None,
                 memory_budget=None):
        self.Q, self.K, self.V = _param(Q, "Q"), _param(K, "K"), _param(V, "V")
        self.output = _param(output, "output")
        self.normalization = _checks.choice(normalization, NORMALIZATIONS, "normalization")
        self.sinkhorn_iterations = _checks.positive_int(sinkhorn_iterations,
                                                        "sinkhorn_iterations")
        self.causal = bool(causal)
        self.sphere = bool(sphere)
        self.chunk_size = (None if chunk_size is None
                           else _checks.positive_int(chunk_size, "chunk_size"))
        self.memory_budget = (_blocks.PAIR_BUDGET_BYTES if memory_budget is None
                              else _checks.positive_int(memory_budget, "memory_budget"))
        shapes = {name: _shape_of(p, name) for name, p in
                  (("Q", self.Q), ("K", self.K), ("V", self.V), ("output", self.output))}
        self.multihead, self.heads = _check_shapes(shapes)
        if mask is not None:
            mask = jnp.asarray(mask)
            if mask.ndim != 1 or mask.dtype != jnp.bool_:
                raise ValueError(f"`mask` must be a boolean array of shape (n,), got "
                                 f"{mask.dtype}{tuple(mask.shape)}.")
        self.mask = mask

    @property
    def dim(self) -> int:
        """The token dimension d."""
        return _shape_of(self.Q, "Q")[-1]

    def parameters(self, t, dtype):
        """``(Q, K, V, O)`` at depth `t` with a head axis: `(h, k, d)`, `(h, k, d)`, `(h, e, d)`,
        `(h, d, e)`, cast to `dtype`."""
        params = [_value(p, t) for p in (self.Q, self.K, self.V)]
        if not self.multihead:
            params = [p[None] for p in params]
        if self.output is None:
            out = jnp.broadcast_to(jnp.eye(self.dim, dtype=dtype), (self.heads,) + (self.dim,) * 2)
        else:
            out = _value(self.output, t)
            out = out if self.multihead else out[None]
        return tuple(jnp.asarray(p).astype(dtype) for p in (*params, out))

    def _check_cloud(self, x):
        x = _checks.particles(x, "x", dim=self.dim, finite=False)
        if self.mask is not None and self.mask.shape[0] != x.shape[0]:
            raise ValueError(f"`mask` has length {self.mask.shape[0]} but the cloud `x` has "
                             f"{x.shape[0]} tokens.")
        if self.sphere:  # the radial extension: the field of x / |x| (see `sphere`)
            x = x / jnp.linalg.norm(x, axis=-1, keepdims=True)
        return x

    def __call__(self, t: ScalarLike, x: ParticlesLike, args=None) -> Particles:
        """The velocity of every token, shape `(n, d)` like `x`."""
        x = self._check_cloud(x)
        return _velocity(self, jnp.asarray(t, x.dtype), x)

    def _velocity(self, t, x):
        n, dtype = x.shape[0], x.dtype
        Q, K, V, W = self.parameters(t, dtype)
        q = jnp.einsum("nd,hkd->nhk", x, Q)
        k = jnp.einsum("nd,hkd->nhk", x, K)
        v = jnp.einsum("nd,hed->nhe", x, V)
        keys = jnp.ones((n,), bool) if self.mask is None else self.mask
        bias = jnp.broadcast_to(jnp.where(keys, 0.0, -jnp.inf).astype(dtype)[:, None],
                                (n, self.heads))
        kind = "causal" if self.causal else None
        if self.normalization == "sinkhorn":
            bias = self._sinkhorn_bias(q, k, bias, keys, kind)
        out, lse = attend(q, k, v, bias, kind=kind, chunk_size=self.chunk_size,
                          budget_bytes=self.memory_budget)
        if self.normalization == "mean":
            count = jnp.cumsum(keys) if self.causal else jnp.sum(keys) * jnp.ones((n,), int)
            log_count = jnp.log(jnp.maximum(count, 1).astype(dtype))
            out = out * jnp.exp(lse - log_count[:, None])[..., None]
        y = jnp.einsum("nhe,hde->nd", out, W)
        if self.sphere:
            y = y - jnp.sum(y * x, axis=-1, keepdims=True) * x
        return y

    def _sinkhorn_bias(self, q, k, bias, keys, kind):
        """Key potentials g `(n, h)` after the column normalisations of Sinkhorn: rows of
        ``exp(s_ij + g_j)`` normalised sum to one, columns to ``n / #keys``.

        Not ott-jax: a Sinkformer layer is a fixed, small number of normalisations (part of the
        model, not a converged solve), on masked/causal scores streamed in chunks with no (n, n)
        array; ott-jax 0.6.0's chunked (online) point clouds are broken with jax 0.10 (pyproject).
        """
        n, h = q.shape[0], q.shape[1]
        nothing = jnp.zeros((n, h, 0), q.dtype)
        log_ratio = jnp.log(jnp.asarray(n, q.dtype) / jnp.sum(keys).astype(q.dtype))

        g = bias
        for _ in range(self.sinkhorn_iterations - 1):  # static and small: unrolled
            _, lse_rows = attend(q, k, nothing, g, kind=kind, chunk_size=self.chunk_size,
                                 budget_bytes=self.memory_budget)
            f = jnp.where(jnp.isfinite(lse_rows), -lse_rows, -jnp.inf)  # blind rows: no say
            _, lse_cols = attend(k, q, nothing, f, kind=_blocks.transposed(kind),
                                 chunk_size=self.chunk_size, budget_bytes=self.memory_budget)
            g = log_ratio - lse_cols + bias
        return g


@eqx.filter_jit
def _velocity(field, t, x):
    return field._velocity(t, x)


def _check_shapes(shapes: dict) -> tuple[bool, int]:
    """Validate the shapes of Q, K, V, output; return (multihead, heads)."""
    q, k, v, o = shapes["Q"], shapes["K"], shapes["V"], shapes["output"]
    if len(q) not in (2, 3):
        raise ValueError(f"`Q` must have shape (k, d) or (h, k, d), got {q}.")
    multihead = len(q) == 3
    rank = len(q)
    for name, s in (("K", k), ("V", v)) + ((("output", o),) if o is not None else ()):
        if len(s) != rank:
            raise ValueError(f"`{name}` must have {rank} axes like `Q` {q} (a head axis on all "
                             f"or none), got {s}.")
    heads = q[0] if multihead else 1
    if multihead:
        for name, s in (("K", k), ("V", v)) + ((("output", o),) if o is not None else ()):
            if s[0] != heads:
                raise ValueError(f"head axes disagree: `Q` has {heads} heads, `{name}` has "
                                 f"{s[0]} (shape {s}).")
    d = q[-1]
    if k[-2:] != q[-2:]:
        raise ValueError(f"`K` must have the shape of `Q` (k, d) = {q[-2:]}, got {k[-2:]}.")
    if v[-1] != d:
        raise ValueError(f"`V` must map dimension d = {d} (shape (e, {d})), got {v[-2:]}.")
    e = v[-2]
    if o is None and e != d:
        raise ValueError(f"`V` has output dimension e = {e} != d = {d}: pass an `output` "
                         f"projection of shape (d, e) = ({d}, {e}).")
    if o is not None and o[-2:] != (d, e):
        raise ValueError(f"`output` must have shape (d, e) = ({d}, {e}) per head, got {o[-2:]}.")
    return multihead, heads
