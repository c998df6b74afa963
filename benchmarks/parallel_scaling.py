"""Strong and weak scaling of a sharded interacting simulation over 1, 2 and 4 devices.

Field: softmax self-attention of the cloud on itself minus identity, written per block with
`flowjax_lab.parallel.gather_field` (each device gathers the cloud, computes its own rows);
4 fixed RK4 steps, d = 16, float32. Strong scaling: n fixed, devices 1, 2, 4. Weak scaling:
n / devices fixed. On CPU the devices are host devices of one process
(``--xla_force_host_platform_device_count=4``, set in a child process), sharing the machine's
cores: with fewer cores than devices no speed-up is possible, and the rows show the overhead.
"""

import json
import os
import subprocess
import sys

DIM, STEPS, DEVICES = 16, 4, (1, 2, 4)


def _child(quick: bool, repeats: int) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from flowjax_lab import parallel

    from . import _harness as H

    def rule(t, x_local, x_all, args):
        scores = (x_local @ x_all.T) / float(DIM) ** 0.5
        return jax.nn.softmax(scores, axis=1) @ x_all - x_local

    base = 1024 if quick else 4096
    rows = []
    for kind in ("strong", "weak"):
        for p in DEVICES:
            if p > jax.device_count():
                continue
            n = base if kind == "strong" else base // 4 * p
            mesh = parallel.particle_mesh(p)
            field = parallel.gather_field(rule, mesh)
            x0 = jax.random.normal(jax.random.key(0), (n, DIM), jnp.float32)
            timing, _ = H.time_call(
                lambda: parallel.simulate(field, x0, mesh=mesh, steps=STEPS, solver="rk4").xs,
                repeats=repeats)
            evals = 4 * STEPS
            rows.append(H.row(
                group=f"parallel {kind}" + (f" n={n}" if kind == "strong" else f" n/p={n // p}"),
                name="parallel_simulate", impl=f"gather_field attention, {p} device(s)",
                timing=timing, sizes={"n": n, "d": DIM, "devices": p, "steps": STEPS},
                dtype="float32", baseline=p == 1, flops=4.0 * n * n * DIM * evals,
                throughput=(n * evals, "particle-evals/s")))
    return rows


def rows(quick: bool, repeats: int | None = None) -> list[dict]:
    repeats = repeats or (2 if quick else 5)
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count="
                        f"{max(DEVICES)}").strip()
    env.setdefault("JAX_PLATFORMS", "cpu")
    code = (f"import json, {__name__} as m; "
            f"print('ROWS' + json.dumps(m._child({quick!r}, {repeats})))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, text=True,
                          capture_output=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("ROWS")]
    if proc.returncode or not lines:
        raise RuntimeError(f"scaling child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][4:])
