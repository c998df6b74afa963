"""Continuous-time learning: the cost of the trace of a Jacobian or a Hessian.

1. One CNF training step (loss and gradient of the mean negative log-likelihood of a batch, fixed
   RK4 steps, backprop through the solver) with the exact divergence (d JVPs per evaluation) vs
   Hutchinson's estimator (one JVP), over the dimension d. Baseline: exact.
2. OT-Flow's Laplacian of the potential network: the structured exact trace
   (``OTFlowPotential.gradient_and_laplacian``, which also returns the gradient and d/dt) vs
   dense autodiff (``jacfwd(grad)`` per particle, ``OTFlowPotential.autodiff_laplacian``), alone
   and with the gradient of its mean with respect to the network parameters (what a training step
   needs). Baseline: structured.
Float32; each row records the largest difference to its baseline.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import flowjax_lab as fl

from . import _harness as H


def _cnf_rows(quick, repeats):
    n, width, steps = (256, 32, 4) if quick else (1024, 64, 8)
    out = []
    for d in (2, 8) if quick else (2, 8, 32, 64):
        group = f"CNF train step d={d}"
        sizes = {"n": n, "d": d, "width": width, "rk4_steps": steps}
        key = jax.random.key(d)
        model = fl.learn.CNF(d, width=width, steps=steps, key=key, dtype=jnp.float32)
        data = jax.random.normal(jax.random.fold_in(key, 1), (n, d), jnp.float32)
        fns = {}
        for trace in ("exact", "hutchinson"):
            loss = fl.learn.LikelihoodLoss(data, batch=n, trace=trace)
            step = eqx.filter_jit(eqx.filter_value_and_grad(loss))
            fns[trace] = (lambda step=step: step(model, key))
        timed = H.time_interleaved(fns, repeats=repeats)
        base_value = float(timed["exact"][1][0])
        for trace, (timing, (value, _)) in timed.items():
            out.append(H.row(group=group, name="cnf train step", impl=f"{trace} trace",
                             timing=timing, sizes=sizes, dtype="float32",
                             baseline=trace == "exact",
                             extra={"loss": float(value),
                                    "loss_minus_exact": float(value) - base_value}))
    return out


def _trace_rows(quick, repeats):
    n, width = (256, 32) if quick else (1024, 64)
    out = []
    for d in (2, 10, 50) if quick else (2, 10, 50, 100):
        group = f"OT-Flow Laplacian d={d}"
        sizes = {"n": n, "d": d, "width": width, "layers": 2}
        key = jax.random.key(d)
        phi = fl.fields.OTFlowPotential(d, width=width, key=key, dtype=jnp.float32)
        x = jax.random.normal(jax.random.fold_in(key, 1), (n, d), jnp.float32)
        methods = {"structured exact": lambda p, x: p.gradient_and_laplacian(0.5, x)[2],
                   "autodiff jacfwd(grad)": lambda p, x: p.autodiff_laplacian(0.5, x)}
        for what in ("value", "value and parameter gradient"):
            fns = {}
            for impl, lap in methods.items():
                if what == "value":
                    fn = eqx.filter_jit(lap)
                else:  # what a training step needs: d/dtheta of the mean Laplacian
                    fn = eqx.filter_jit(eqx.filter_value_and_grad(
                        lambda p, x, lap=lap: jnp.mean(lap(p, x))))
                fns[impl] = (lambda fn=fn: fn(phi, x))
            timed = H.time_interleaved(fns, repeats=repeats)
            first = lambda out: out if what == "value" else out[0]
            base = np.asarray(first(timed["structured exact"][1]))
            for impl, (timing, res) in timed.items():
                out.append(H.row(group=f"{group} ({what})", name="Laplacian of Phi", impl=impl,
                                 timing=timing, sizes=sizes, dtype="float32",
                                 baseline=impl == "structured exact",
                                 throughput=(n, "particles/s"),
                                 extra={"max_abs_diff_vs_structured":
                                        float(np.max(np.abs(np.asarray(first(res)) - base)))}))
    return out


def rows(quick: bool, repeats: int | None = None) -> list[dict]:
    repeats = repeats or (3 if quick else 7)
    return _cnf_rows(quick, repeats) + _trace_rows(quick, repeats)
