"""The attention field at n = 1k .. 64k tokens, d = 64: chunked (streaming log-sum-exp) vs dense.

Problem: one softmax self-attention velocity ``v_i = sum_j softmax_j(<Q x_i, K x_j>) V x_j`` on a
cloud `(n, 64)` from N(0, I), Q, K, V random `(64, 64)` / 8, float32. Rows: flowjax_lab
`Attention(chunk_size=1024)` (the baseline), flowjax_lab `Attention` dense (scores `(n, n)`, only
up to n = 16384), `jax.nn.dot_product_attention` (XLA), and a straightforward PyTorch CPU
implementation where torch is installed. FLOPs count the two score/value products
(``4 n^2 d``) and the three projections (``6 n d^2``); `memory_bytes` is XLA's planned footprint
(arguments + outputs + temporaries) of the compiled call. Each row reports the largest
difference of its output from the chunked one.
"""

import jax
import jax.numpy as jnp
import numpy as np

from flowjax_lab.fields import Attention

from . import _harness as H

D, CHUNK, DENSE_MAX = 64, 1024, 16384


def flops(n: int) -> float:
    return 4.0 * n * n * D + 6.0 * n * D * D


def _torch_row(group, sizes, x, q, k, v, reference, repeats):
    try:
        import torch
    except ImportError:
        return H.skipped(group=group, name="attention", impl="torch CPU softmax(QK^T)V",
                         sizes=sizes, dtype="float32",
                         why="torch not installed (pip install .[peers])")
    tx, tq, tk, tv = (torch.tensor(np.asarray(a)) for a in (x, q, k, v))

    def call():
        with torch.no_grad():
            scores = (tx @ tq.T) @ (tx @ tk.T).T
            return torch.softmax(scores, dim=1) @ (tx @ tv.T)

    timing, out = H.time_call(call, repeats=repeats, sync=lambda o: o)
    n = x.shape[0]
    return H.row(group=group, name="attention", impl="torch CPU softmax(QK^T)V", timing=timing,
                 sizes=sizes, dtype="float32", flops=flops(n), throughput=(n, "tokens/s"),
                 extra={"torch_threads": torch.get_num_threads(),
                        "max_abs_diff_vs_chunked": float(np.max(np.abs(out.numpy()
                                                                       - reference)))})


def rows(quick: bool, repeats: int | None = None) -> list[dict]:
    sizes_n = (256, 1024) if quick else (1024, 4096, 16384, 65536)
    chunk = 128 if quick else CHUNK
    out = []
    kx, kq, kk, kv = jax.random.split(jax.random.key(0), 4)
    q, k, v = (jax.random.normal(kk_, (D, D), jnp.float32) / np.sqrt(D) for kk_ in (kq, kk, kv))
    for n in sizes_n:
        reps = repeats or (3 if n <= 16384 else 2)
        group = f"attention n={n} d={D}"
        sizes = {"n": n, "d": D, "chunk_size": chunk}
        x = jax.random.normal(kx, (n, D), jnp.float32)
        chunked = jax.jit(Attention(q, k, v, chunk_size=chunk).__call__)
        fns = {f"flowjax_lab Attention chunked c={chunk}": (chunked, True)}
        if n <= DENSE_MAX:
            fns["flowjax_lab Attention dense"] = (jax.jit(Attention(q, k, v).__call__), False)
            fns["jax.nn.dot_product_attention"] = (jax.jit(
                lambda t, y: jax.nn.dot_product_attention(
                    (y @ q.T)[None, :, None], (y @ k.T)[None, :, None], (y @ v.T)[None, :, None],
                    scale=1.0)[0, :, 0]), False)
        t = jnp.zeros((), jnp.float32)
        reference = None
        for impl, (fn, baseline) in fns.items():
            timing, result = H.time_call(lambda fn=fn: fn(t, x), repeats=reps)
            stats = H.compiled_stats(fn, t, x)
            result = np.asarray(result)
            reference = result if reference is None else reference
            out.append(H.row(
                group=group, name="attention", impl=impl, timing=timing, sizes=sizes,
                dtype="float32", baseline=baseline, flops=flops(n), throughput=(n, "tokens/s"),
                memory_bytes=stats["memory_bytes"],
                extra={"xla_flops": stats["flops"],
                       "max_abs_diff_vs_chunked": float(np.max(np.abs(result - reference))),
                       "process_peak_rss_bytes": H.process_peak_rss_bytes()}))
        out.append(_torch_row(group, sizes, x, q, k, v, reference, reps))
    return out
