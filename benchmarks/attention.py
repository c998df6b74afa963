"""The attention field at n = 1k .. 64k tokens, d = 64: chunked (streaming log-sum-exp) vs dense.

Problem: one softmax self-attention velocity ``v_i = sum_j softmax_j(<Q x_i, K x_j>) V x_j`` on a
cloud `(n, 64)` from N(0, I), Q, K, V random `(64, 64)` / 8, float32. Rows: flowjax_lab
`Attention(chunk_size=1024)` (the baseline), flowjax_lab `Attention` dense (scores `(n, n)`, only
up to n = 16384), `jax.nn.dot_product_attention` (XLA), and where torch is installed
``torch.nn.functional.scaled_dot_product_attention`` (its fused CPU kernel, every n) and a
straightforward PyTorch ``softmax(QK^T)V`` (scores `(n, n)`, up to n = 16384). FLOPs count the
two score/value products (``4 n^2 d``) and the three projections (``6 n d^2``); `memory_bytes` is
XLA's planned footprint (arguments + outputs + temporaries) of the compiled call. Each row
reports the largest difference of its output from the chunked one.

A second group measures the default call, `Attention(chunk_size=None)`, at n = 16384 and 60000
tokens, d = 8: it chooses dense scores below the memory budget and blocks above it
(`_blocks.choose_block`), so its `memory_bytes` stays far below the `dense_memory_bytes` that the
dense scores would need (compiled, never run: 28.8 GB at n = 60000); baseline `chunk_size=1024`.
"""

import jax
import jax.numpy as jnp
import numpy as np

from flowjax_lab.fields import Attention

from . import _harness as H

D, CHUNK, DENSE_MAX = 64, 1024, 16384
DEFAULT_D = 8
DENSE = 2**62  # a memory budget no call reaches: always the dense scores


def flops(n: int) -> float:
    return 4.0 * n * n * D + 6.0 * n * D * D


TORCH_NAIVE = "torch CPU softmax(QK^T)V"
TORCH_SDPA = "torch scaled_dot_product_attention"
TORCH_SDPA_1 = "torch sdpa (1 thread)"


def _torch_fns(n, x, q, k, v, default_threads):
    """``({impl: callable}, None)`` for the torch peers at this size, or ``({}, reason)``."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return {}, "torch not installed (pip install .[peers])"
    tx, tq, tk, tv = (torch.tensor(np.asarray(a)) for a in (x, q, k, v))

    def threads(fn, count):
        # torch's default (one thread per core) can collapse when the cores are shared, so SDPA
        # is also timed on one thread; each call sets its own count (cheap).
        def call():
            torch.set_num_threads(count)
            return fn()
        return call

    def naive():
        with torch.no_grad():
            scores = (tx @ tq.T) @ (tx @ tk.T).T
            return torch.softmax(scores, dim=1) @ (tx @ tv.T)

    def sdpa():
        # scale=1.0: the field's scores are <Q x_i, K x_j> without 1/sqrt(d).
        with torch.no_grad():
            qs, ks, vs = ((tx @ w.T)[None, None] for w in (tq, tk, tv))
            return F.scaled_dot_product_attention(qs, ks, vs, scale=1.0)[0, 0]

    fns = {TORCH_SDPA: threads(sdpa, default_threads), TORCH_SDPA_1: threads(sdpa, 1)}
    if n <= DENSE_MAX:  # the naive version holds the (n, n) scores (16 GiB at n = 65536)
        fns[TORCH_NAIVE] = threads(naive, default_threads)
    return fns, None


def _torch_default_threads():
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def rows(quick: bool, repeats: int | None = None, max_n: int | None = None) -> list[dict]:
    sizes_n = (256, 1024) if quick else (1024, 4096, 16384, 65536)
    sizes_n = tuple(n for n in sizes_n if max_n is None or n <= max_n) or sizes_n[:1]
    chunk = 128 if quick else CHUNK
    out = []
    kx, kq, kk, kv = jax.random.split(jax.random.key(0), 4)
    q, k, v = (jax.random.normal(kk_, (D, D), jnp.float32) / np.sqrt(D) for kk_ in (kq, kk, kv))
    t = jnp.zeros((), jnp.float32)
    torch_default = _torch_default_threads()
    for n in sizes_n:
        reps = repeats or (3 if n <= 16384 else 2)
        group = f"attention n={n} d={D}"
        sizes = {"n": n, "d": D, "chunk_size": chunk}
        x = jax.random.normal(kx, (n, D), jnp.float32)
        baseline = f"flowjax_lab Attention chunked c={chunk}"
        jitted = {baseline: jax.jit(Attention(q, k, v, chunk_size=chunk).__call__)}
        if n <= DENSE_MAX:
            jitted["flowjax_lab Attention dense"] = jax.jit(
                Attention(q, k, v, memory_budget=DENSE).__call__)
            jitted["jax.nn.dot_product_attention"] = jax.jit(
                lambda t, y: jax.nn.dot_product_attention(
                    (y @ q.T)[None, :, None], (y @ k.T)[None, :, None], (y @ v.T)[None, :, None],
                    scale=1.0)[0, :, 0])
        fns = {impl: (lambda fn=fn: fn(t, x)) for impl, fn in jitted.items()}
        peers, missing = _torch_fns(n, x, q, k, v, torch_default)
        fns.update(peers)
        # All implementations timed in turn (round robin), as everywhere in the suite.
        timed = H.time_interleaved(fns, repeats=reps, syncs={i: (lambda o: o) for i in peers})
        reference = np.asarray(timed[baseline][1])
        for impl, (timing, result) in timed.items():
            result = np.asarray(result.numpy() if impl in peers else result)
            extra = {"max_abs_diff_vs_chunked": float(np.max(np.abs(result - reference))),
                     "process_peak_rss_bytes": H.process_peak_rss_bytes()}
            stats = {"memory_bytes": None, "flops": None}
            if impl in jitted:
                stats = H.compiled_stats(jitted[impl], t, x)
                extra["xla_flops"] = stats["flops"]
            else:
                import torch

                extra.update(torch_version=torch.__version__,
                             torch_threads=1 if impl == TORCH_SDPA_1 else torch_default)
            out.append(H.row(
                group=group, name="attention", impl=impl, timing=timing, sizes=sizes,
                dtype="float32", baseline=impl == baseline, flops=flops(n),
                throughput=(n, "tokens/s"), memory_bytes=stats["memory_bytes"], extra=extra))
        if missing is not None:
            out.extend(H.skipped(group=group, name="attention", impl=impl, sizes=sizes,
                                 dtype="float32", why=missing)
                       for impl in (TORCH_SDPA, TORCH_SDPA_1, TORCH_NAIVE))
    if torch_default is not None:
        import torch

        torch.set_num_threads(torch_default)
    return out + default_rows(quick, repeats, max_n)


def default_rows(quick: bool, repeats: int | None = None, max_n: int | None = None) -> list[dict]:
    """The default call (``chunk_size=None``) against ``chunk_size=1024`` at d = 8, with the
    compiled memory of the dense scores it avoids."""
    sizes_n = (4096,) if quick else (16384, 60000)
    sizes_n = tuple(n for n in sizes_n if max_n is None or n <= max_n) or sizes_n[:1]
    kx, kq, kk, kv = jax.random.split(jax.random.key(1), 4)
    q, k, v = (jax.random.normal(key, (DEFAULT_D, DEFAULT_D), jnp.float32) / np.sqrt(DEFAULT_D)
               for key in (kq, kk, kv))
    t = jnp.zeros((), jnp.float32)
    out = []
    for n in sizes_n:
        group = f"attention default n={n} d={DEFAULT_D}"
        x = jax.random.normal(kx, (n, DEFAULT_D), jnp.float32)
        baseline, default = f"Attention chunk_size={CHUNK}", "Attention default (chunk_size=None)"
        jitted = {baseline: jax.jit(Attention(q, k, v, chunk_size=CHUNK).__call__),
                  default: jax.jit(Attention(q, k, v).__call__)}
        timed = H.time_interleaved({impl: (lambda fn=fn: fn(t, x)) for impl, fn in jitted.items()},
                                   repeats=repeats or 2)
        reference = np.asarray(timed[baseline][1])
        dense = H.compiled_stats(jax.jit(Attention(q, k, v, memory_budget=DENSE).__call__), t, x)
        for impl, (timing, result) in timed.items():
            stats = H.compiled_stats(jitted[impl], t, x)
            extra = {"max_abs_diff_vs_chunked": float(np.max(np.abs(np.asarray(result)
                                                                    - reference))),
                     "dense_memory_bytes": dense["memory_bytes"],
                     "process_peak_rss_bytes": H.process_peak_rss_bytes()}
            out.append(H.row(
                group=group, name="attention", impl=impl, timing=timing,
                sizes={"n": n, "d": DEFAULT_D}, dtype="float32", baseline=impl == baseline,
                flops=4.0 * n * n * DEFAULT_D + 6.0 * n * DEFAULT_D**2, throughput=(n, "tokens/s"),
                memory_bytes=stats["memory_bytes"], extra=extra))
    return out
