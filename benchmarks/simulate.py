"""ODE solve of an MLP field over a particle cloud: flowjax_lab.simulate vs torchdiffeq.

Problem: n particles in d = 2 from N(0, I), field v(t, x) = MLP([x, t]) with two hidden layers
of width 64 and tanh (random weights, the same numbers in JAX and in torch), integrated from
t = 0 to 1 by Dopri5 with rtol = atol = 1e-5 (both libraries use an RMS norm over the whole
state), float32. Each row reports its number of steps and the largest difference of its final
cloud from ours, so that equal tolerance can be checked.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import flowjax_lab as fl

from . import _harness as H

DIM, WIDTH, DEPTH = 2, 64, 2
RTOL = ATOL = 1e-5


class MLPField(eqx.Module):
    """v(t, x) = MLP([x, t]) applied to every particle; `x` `(n, d)`."""

    weights: list
    biases: list

    def __init__(self, key):
        sizes = [DIM + 1] + [WIDTH] * DEPTH + [DIM]
        keys = jax.random.split(key, len(sizes) - 1)
        self.weights = [jax.random.normal(k, (i, o), jnp.float32) / float(np.sqrt(i))
                        for k, i, o in zip(keys, sizes[:-1], sizes[1:], strict=True)]
        self.biases = [jnp.full((o,), 0.1, jnp.float32) for o in sizes[1:]]

    def __call__(self, t, x, args):
        h = jnp.concatenate([x, jnp.full((x.shape[0], 1), t, x.dtype)], axis=1)
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = jnp.tanh(h @ w + b[None, :])
        return h @ self.weights[-1] + self.biases[-1][None, :]


def flops_per_eval(n: int) -> float:
    sizes = [DIM + 1] + [WIDTH] * DEPTH + [DIM]
    return 2.0 * n * sum(i * o for i, o in zip(sizes[:-1], sizes[1:], strict=True))


def _torch_solvers(field, x0):
    """``({impl: (solve, threads)}, counter, None)`` for torchdiffeq, or ``({}, None, reason)``."""
    try:
        import torch
        import torchdiffeq
    except ImportError:
        return {}, None, "torch/torchdiffeq not installed (pip install .[peers])"
    ws = [torch.tensor(np.asarray(w)) for w in field.weights]
    bs = [torch.tensor(np.asarray(b)) for b in field.biases]
    counter = {"evals": 0}

    class TorchMLP(torch.nn.Module):
        def forward(self, t, x):
            counter["evals"] += 1
            h = torch.cat([x, t.expand(x.shape[0], 1)], dim=1)
            for w, b in zip(ws[:-1], bs[:-1], strict=True):
                h = torch.tanh(h @ w + b)
            return h @ ws[-1] + bs[-1]

    func = TorchMLP()
    x = torch.tensor(np.asarray(x0))
    ts = torch.tensor([0.0, 1.0])

    def solver(threads):
        def solve():
            torch.set_num_threads(threads)
            counter["evals"] = 0
            with torch.no_grad():
                return torchdiffeq.odeint(func, x, ts, method="dopri5", rtol=RTOL, atol=ATOL)
        return solve

    # torch's default (one thread per core) collapses when the cores are shared with other
    # processes; one thread is measured too, and the faster is the fair comparison.
    return ({f"torchdiffeq dopri5 ({t} thread(s))": (solver(t), t)
             for t in sorted({1, torch.get_num_threads()})}, counter, None)


def rows(quick: bool, repeats: int | None = None) -> list[dict]:
    n = 500 if quick else 10_000
    repeats = repeats or (3 if quick else 7)
    group = f"simulate MLP n={n}"
    sizes = {"n": n, "d": DIM, "width": WIDTH, "depth": DEPTH, "rtol": RTOL, "atol": ATOL}
    field = MLPField(jax.random.key(1))
    x0 = jax.random.normal(jax.random.key(0), (n, DIM), jnp.float32)

    def ours(solver):
        return lambda: fl.simulate(field, x0, solver=solver, rtol=RTOL, atol=ATOL)

    torch_solvers, counter, missing = _torch_solvers(field, x0)
    default_threads = None
    if missing is None:
        import torch

        default_threads = torch.get_num_threads()
    fns = {"flowjax_lab simulate dopri5": ours("dopri5"),
           "flowjax_lab simulate tsit5": ours("tsit5")}
    fns.update({impl: solve for impl, (solve, _) in torch_solvers.items()})
    # All implementations timed in turn (round robin), torch's included.
    timed = H.time_interleaved(fns, repeats=repeats,
                               syncs={impl: (lambda o: o) for impl in torch_solvers})
    out, ours_final = [], None
    for impl, (timing, traj) in timed.items():
        if impl in torch_solvers:
            continue
        evals = int(traj.stats["num_field_evals"])
        final = np.asarray(traj.xs[-1])
        if ours_final is None:
            ours_final = final
        out.append(H.row(
            group=group, name="simulate", impl=impl, timing=timing, sizes=sizes,
            dtype="float32", baseline=impl.endswith("dopri5"), flops=flops_per_eval(n) * evals,
            throughput=(n * evals, "particle-evals/s"),
            extra={"num_steps": int(traj.stats["num_steps"]), "num_field_evals": evals,
                   "status": int(traj.status),
                   "max_abs_diff_vs_ours": float(np.max(np.abs(final - ours_final)))},
        ))
    for impl, (_, threads) in torch_solvers.items():
        timing, final = timed[impl]
        # Each solve makes the same number of evaluations; count them on one more call.
        torch_solvers[impl][0]()
        evals = counter["evals"]
        out.append(H.row(
            group=group, name="simulate", impl=impl, timing=timing, sizes=sizes, dtype="float32",
            flops=flops_per_eval(n) * evals, throughput=(n * evals, "particle-evals/s"),
            extra={"num_field_evals": evals, "torch_version": torch.__version__,
                   "torch_threads": threads,
                   "max_abs_diff_vs_ours": float(np.max(np.abs(final[-1].numpy()
                                                               - ours_final)))}))
    if default_threads is not None:
        torch.set_num_threads(default_threads)
    if missing is not None:
        out.append(H.skipped(group=group, name="simulate", impl="torchdiffeq odeint dopri5",
                             sizes=sizes, dtype="float32", why=missing))
    return out
