"""The block primitives of `flowjax_lab._blocks` against dense float64 computations: padding and
masks, pair sums, the streaming log-sum-exp (extreme and -inf logits), blockwise attention and its
recomputing backward, and the memory of jitted blockwise calls."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from flowjax_lab import _blocks

KINDS = [None, "causal", "anticausal", "distinct"]


def dense_mask(n, m, kind):
    i, j = np.arange(n)[:, None], np.arange(m)[None, :]
    return {None: np.ones((n, m), bool), "causal": j <= i, "anticausal": j >= i,
            "distinct": j != i}[kind]


def test_blocks_pad_and_join_back(getkey):
    a = jax.random.normal(getkey(), (11, 3, 2))
    blocks = _blocks.to_blocks(a, 4, fill=-7.0)
    assert blocks.shape == (3, 4, 3, 2)
    np.testing.assert_array_equal(blocks[-1, 3:], -7.0)
    np.testing.assert_array_equal(_blocks.unblock(blocks, 11), a)
    assert _blocks.pad_rows(a, 11).shape == a.shape
    empty = _blocks.to_blocks(jnp.zeros((11, 2, 0)), 4)  # no values: attention's lse only
    assert empty.shape == (3, 4, 2, 0) and _blocks.unblock(empty, 11).shape == (11, 2, 0)
    ids = _blocks.block_ids(11, 4)
    assert ids.shape == (3, 4) and ids.dtype == jnp.int32
    np.testing.assert_array_equal(_blocks.unblock(ids, 11), np.arange(11))


@pytest.mark.parametrize("kind", KINDS)
def test_pair_mask_is_the_dense_mask_without_padding(kind):
    rows, cols = jnp.arange(3, 9), jnp.arange(4, 12)  # a block pair crossing the diagonal
    mask = _blocks.pair_mask(rows, cols, 7, 10, kind)
    expected = dense_mask(12, 12, kind)[3:9, 4:12] & (np.arange(3, 9) < 7)[:, None]
    np.testing.assert_array_equal(mask, expected & (np.arange(4, 12) < 10)[None, :])
    assert _blocks.transposed(_blocks.transposed(kind)) == kind
    np.testing.assert_array_equal(_blocks.pair_mask(cols, rows, 10, 7, _blocks.transposed(kind)),
                                  mask.T)


def dense_pair_sum(fn, x, y, w, kind):
    ok = jnp.asarray(dense_mask(x.shape[0], y.shape[0], kind))
    z = jnp.where(ok[..., None], x[:, None, :] - y[None, :, :], 1)
    value = jax.vmap(jax.vmap(fn))(z)
    value = jnp.where(ok.reshape(ok.shape + (1,) * (value.ndim - 2)), value, 0)
    return jnp.einsum("ij...,j->i...", value, w)


def riesz(z):
    return 1 / jnp.sqrt(jnp.sum(z**2))  # singular at 0: masked self pairs must never reach it


def riesz_profile(r2):
    return r2**-0.5  # riesz as a function of the squared distance, elementwise


def riesz_moment(z):
    return riesz_profile(jnp.sum(z**2)) * z


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("n", "m", "block"), [(23, 23, 5), (17, 9, (4, 6)), (6, 13, 20)])
def test_pair_sum_equals_the_dense_sum(kind, n, m, block, getkey):
    if kind is not None and n != m:
        m = n  # masks tied to the diagonal need one cloud
    x = jax.random.normal(getkey(), (n, 3))
    y = x if kind == "distinct" else jax.random.normal(getkey(), (m, 3))
    w = jax.random.uniform(getkey(), (m,), jnp.float64, 0.1, 1.0)
    values = (riesz, jax.grad(riesz)) + ((jax.hessian(riesz),) if n == 23 else ())
    for fn in values:  # scalar, vector and matrix values
        blockwise = _blocks.pair_sum(fn, x, y, w, block, kind=kind)
        expected = dense_pair_sum(fn, x, y, w, kind)
        assert blockwise.shape == expected.shape and blockwise.dtype == jnp.float64
        np.testing.assert_allclose(blockwise, expected, rtol=1e-12, atol=1e-12)
    radial = (_blocks.radial_pair_sum(riesz_profile, x, y, w, block, kind=kind),
              _blocks.radial_moment_sum(riesz_profile, x, y, w, block, kind=kind))
    for blockwise, fn in zip(radial, (riesz, riesz_moment), strict=True):
        expected = dense_pair_sum(fn, x, y, w, kind)
        assert blockwise.shape == expected.shape and blockwise.dtype == jnp.float64
        np.testing.assert_allclose(blockwise, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("route", ["pair_sum", "radial_pair_sum", "radial_moment_sum"])
def test_pair_sum_gradient_equals_the_dense_gradient(route, getkey):
    x = jax.random.normal(getkey(), (19, 2))
    w = jax.random.uniform(getkey(), (19,), jnp.float64, 0.1, 1.0)
    r = jax.random.normal(getkey(), (19, 2))  # a cotangent for the (n, d) moment
    fn, dense_fn = {"pair_sum": (riesz, riesz), "radial_pair_sum": (riesz_profile, riesz),
                    "radial_moment_sum": (riesz_profile, riesz_moment)}[route]
    project = lambda out: jnp.sum(out * r) if out.ndim == 2 else jnp.sum(out)
    blockwise = jax.grad(lambda x, w: project(getattr(_blocks, route)(fn, x, x, w, 4,
                                                                      kind="distinct")),
                         (0, 1))(x, w)
    dense = jax.grad(lambda x, w: project(dense_pair_sum(dense_fn, x, x, w, "distinct")),
                     (0, 1))(x, w)
    for a, b in zip(blockwise, dense, strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def stream(logits, values, block):
    """`softmax_finish` after folding the columns of `logits` `(n, m)` in blocks of `block`."""
    n, e = logits.shape[0], values.shape[1]
    state = _blocks.softmax_init((n,), jnp.zeros((n, e), logits.dtype), logits.dtype)
    for start in range(0, logits.shape[1], block):
        part = values[start:start + block]
        state = _blocks.softmax_update(state, logits[:, start:start + block], lambda p: p @ part)
    return _blocks.softmax_finish(state)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_streaming_logsumexp_survives_extreme_and_infinite_logits(dtype, getkey):
    n, m = 9, 22
    big = 1e4 if dtype == jnp.float64 else 1e3  # exp overflows at ~709 (f64) and ~88 (f32)
    logits = np.asarray(jax.random.normal(getkey(), (n, m), jnp.float64)) * 30
    logits[0] += big  # a row far above the overflow threshold
    logits[1] -= big  # one far below the underflow threshold
    logits[2, :] = -np.inf  # a row with no finite logit
    logits[3, :15] = -np.inf  # -inf up to the last block (the max first appears late)
    logits[4, 5:] = -np.inf  # -inf after the first block
    logits[5, ::2] = -np.inf
    values = np.asarray(jax.random.normal(getkey(), (m, 4), jnp.float64))
    average, lse = stream(jnp.asarray(logits, dtype), jnp.asarray(values, dtype), 5)
    assert average.dtype == dtype and lse.dtype == dtype
    expected_lse = logsumexp(logits, axis=1)
    with np.errstate(invalid="ignore"):
        weights = np.exp(logits - expected_lse[:, None])
    weights[2] = 0
    expected = weights @ values
    tol = {jnp.float64: 1e-12, jnp.float32: 2e-5}[dtype]
    np.testing.assert_allclose(lse, expected_lse, rtol=tol)
    np.testing.assert_allclose(average, expected, rtol=tol * 10, atol=tol * 10)
    assert np.all(np.isfinite(average)) and lse[2] == -np.inf


def dense_attention(q, k, v, bias, kind):
    s = jnp.einsum("ihk,jhk->hij", q, k) + jnp.transpose(bias)[:, None, :]
    s = jnp.where(jnp.asarray(dense_mask(q.shape[0], k.shape[0], kind))[None], s, -jnp.inf)
    lse = jax.scipy.special.logsumexp(s, axis=-1)
    p = jnp.exp(s - jnp.where(jnp.isfinite(lse), lse, 0)[..., None])
    return jnp.einsum("hij,jhe->ihe", p, v), jnp.transpose(lse)


def attention_inputs(key, n, m, h=2):
    kq, kk, kv, kb = jax.random.split(key, 4)
    return (jax.random.normal(kq, (n, h, 3)), jax.random.normal(kk, (m, h, 3)),
            jax.random.normal(kv, (m, h, 4)), jax.random.normal(kb, (m, h)))


@pytest.mark.parametrize("kind", [None, "causal", "anticausal"])
@pytest.mark.parametrize(("n", "m", "block"), [(13, 13, 4), (7, 7, 7), (10, 10, 16)])
def test_softmax_attend_equals_dense_attention(kind, n, m, block, getkey):
    q, k, v, bias = attention_inputs(getkey(), n, m)
    bias = bias.at[::3].set(-jnp.inf)  # hidden (padding) keys
    out, lse = _blocks.softmax_attend(q, k, v, bias, kind, block)
    ref_out, ref_lse = dense_attention(q, k, v, bias, kind)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(lse, ref_lse, rtol=1e-12)


def test_softmax_attend_of_a_query_that_sees_no_key_is_zero(getkey):
    q, k, v, bias = attention_inputs(getkey(), 9, 6)
    bias = bias.at[:, 0].set(-jnp.inf)  # head 0 sees no key at all
    out, lse = _blocks.softmax_attend(q, k, v, bias, None, 4)
    np.testing.assert_array_equal(out[:, 0], 0)
    np.testing.assert_array_equal(lse[:, 0], -jnp.inf)
    np.testing.assert_allclose(out[:, 1], dense_attention(q, k, v, bias, None)[0][:, 1],
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", [None, "causal", "anticausal"])
def test_softmax_attend_gradient_equals_the_dense_gradient(kind, getkey):
    n, m = (11, 11) if kind else (11, 8)
    q, k, v, bias = attention_inputs(getkey(), n, m)
    bias = bias.at[1].set(-jnp.inf)
    r_out = jax.random.normal(getkey(), (n, 2, 4))
    r_lse = jax.random.normal(getkey(), (n, 2))

    def loss(attention):
        def value(q, k, v, bias):
            out, lse = attention(q, k, v, bias)
            return jnp.sum(out * r_out) + jnp.sum(jnp.where(jnp.isfinite(lse), lse, 0) * r_lse)
        return jax.grad(value, argnums=(0, 1, 2, 3))(q, k, v, bias)

    blockwise = loss(lambda *a: _blocks.softmax_attend(*a, kind, 3))
    dense = loss(lambda *a: dense_attention(*a, kind))
    for a, b in zip(blockwise, dense, strict=True):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def temp_bytes(fn, *args):
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_jitted_blockwise_calls_never_hold_an_n_by_n_array():
    n, block = 2048, 128
    square = n * n * 4  # one (n, n) float32 array
    x, w = jnp.zeros((n, 2), jnp.float32), jnp.ones((n,), jnp.float32)
    kernel = lambda z: jnp.exp(-jnp.sum(z**2))
    assert temp_bytes(lambda x, w: _blocks.pair_sum(kernel, x, x, w, block, kind="distinct"),
                      x, w) < square / 8
    assert temp_bytes(lambda x, w: dense_pair_sum(kernel, x, x, w, "distinct"), x, w) >= square

    q = jnp.zeros((n, 1, 8), jnp.float32)
    bias = jnp.zeros((n, 1), jnp.float32)

    def attention_gradient(attention):
        loss = lambda q, k: jnp.sum(attention(q, k, k, bias)[0] ** 2)
        return jax.grad(loss, argnums=(0, 1))

    blockwise = attention_gradient(lambda *a: _blocks.softmax_attend(*a, "causal", block))
    dense = attention_gradient(lambda *a: dense_attention(*a, "causal"))
    assert temp_bytes(blockwise, q, q) < square / 8
    assert temp_bytes(dense, q, q) >= square


def test_pair_sum_gradient_needs_memory_linear_in_n():
    # XLA's memory analysis of the compiled gradient: the blocks are recomputed, not kept, so
    # quadrupling n leaves the temporaries about where they were (16x, ~n^2 d floats, when
    # fold_pairs kept every block pair's residuals). The radial sums: tests/test_interaction.py.
    kernel = lambda z: jnp.exp(-jnp.sum(z**2))
    loss = lambda x, w: jnp.sum(_blocks.pair_sum(kernel, x, x, w, 128, kind="distinct") ** 2)
    temps = [temp_bytes(jax.grad(loss, argnums=(0, 1)), jnp.zeros((n, 3), jnp.float32),
                        jnp.ones((n,), jnp.float32)) for n in (512, 2048)]
    assert temps[1] < 2 * temps[0], temps  # linear growth would allow 4x, quadratic 16x
    assert temps[1] < 2048 * 2048 * 4 / 8, temps
