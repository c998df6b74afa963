"""Strong and weak scaling of a sharded interacting simulation over 1, 2 and 4 devices, and the
same work split over 2 processes (jax.distributed) against 1 process.

Field: softmax self-attention of the cloud on itself minus identity, written per block with
`flowjax_lab.parallel.gather_field` (each device gathers the cloud, computes its own rows);
4 fixed RK4 steps, d = 16, float32. Strong scaling: n fixed, devices 1, 2, 4. Weak scaling:
n / devices fixed. On CPU the devices are host devices of one process
(``--xla_force_host_platform_device_count=4``, set in a child process), sharing the machine's
cores: with fewer cores than devices no speed-up is possible, and the rows show the overhead.

Across processes: one field evaluation, the 4-step simulation, a ring pair sum and a Sinkhorn
solve (`parallel.sinkhorn`, blocks passed around the ring, and the single-device
`transport.sinkhorn` on the same sharded clouds, which XLA gathers), each on 4 devices, as
1 process x 4 devices (the baseline) and as 2 processes x 2 devices talking over loopback gloo
(two child processes). Each row also gives, from the compiled
program, the bytes out of each kind of collective per device (a loop's body counted once: per
evaluation, per ring round, per Sinkhorn iteration) and XLA's memory per device. On one host of
2 cores the ratio is the cost of crossing processes, not a cluster's speed.
"""

import functools
import json
import os
import re
import socket
import subprocess
import sys

DIM, STEPS, DEVICES, PROCESSES = 16, 4, (1, 2, 4), 2
_COLLECTIVE = re.compile(r"=\s*(.*?)\s(all-gather|all-reduce|collective-permute|reduce-scatter"
                         r"|all-to-all)(?:-start)?\(")
_SHAPE = re.compile(r"\b(pred|[subf]\d+)\[([\d,]*)\]")


def _collective_bytes(hlo: str) -> dict[str, int]:
    """Bytes out of each kind of collective in the HLO text of a compiled per-device program
    (each op counted once, so an op in a loop body counts once)."""
    out: dict[str, int] = {}
    for result, kind in _COLLECTIVE.findall(hlo):
        size = 0
        for dtype, dims in _SHAPE.findall(result):
            count = 1
            for dim in filter(None, dims.split(",")):
                count *= int(dim)
            size += count * max(int(re.sub(r"\D", "", dtype) or 8), 8) // 8
        out[kind] = out.get(kind, 0) + size
    return out


def _process_rows(mesh, label: str, quick: bool, repeats: int) -> list[dict]:
    """The four workloads on the 4-device `mesh`; `label` says how the devices are held."""
    import jax
    import jax.numpy as jnp

    from flowjax_lab import parallel, transport

    from . import _harness as H

    def rule(t, x_local, x_all, args):
        scores = (x_local @ x_all.T) / float(DIM) ** 0.5
        return jax.nn.softmax(scores, axis=1) @ x_all - x_local

    kernel = lambda z: z / (1.0 + z @ z) ** 1.5
    n = 1024 if quick else 4096
    rows_per_process = n // jax.process_count()
    start = jax.process_index() * rows_per_process  # the same cloud however it is split
    x_local = jax.random.normal(jax.random.key(0), (n, DIM), jnp.float32)[
        start:start + rows_per_process]
    x = parallel.shard_local_rows(x_local, mesh)
    y = parallel.shard_local_rows(x_local + 1.0, mesh, name="y")
    field = parallel.gather_field(rule, mesh)
    solve = lambda x, y: parallel.sinkhorn(x, y, mesh=mesh, epsilon=1.0, threshold=1e-3)
    # What parallel.sinkhorn did before the ring: the partitioner gathers both clouds.
    gathered = lambda x, y: transport.sinkhorn(x, y, epsilon=1.0, threshold=1e-3, lse_mode=True)
    simulate = lambda x: parallel.simulate(field, x, mesh=mesh, steps=STEPS, solver="rk4").xs
    work = {  # name: (function, arguments, jitted here: its program is inspected)
        "attention field, one evaluation": (jax.jit(field), (0.0, x, None), True),
        f"simulate, {STEPS} RK4 steps": (simulate, (x,), False),  # jitted inside
        "ring_pair_sum, one call": (jax.jit(lambda x: parallel.ring_pair_sum(kernel, x, mesh)),
                                    (x,), True),
        "sinkhorn, eps = 1, tolerance 1e-3": (jax.jit(solve), (x, y), True),
        "sinkhorn gathered (transport.sinkhorn, lse_mode=True, on the sharded clouds)": (
            jax.jit(gathered), (x, y), True),
    }
    rows = []
    for name, (fn, args, inspect) in work.items():
        extra = {"processes": jax.process_count(), "devices": mesh.devices.size}
        if inspect:
            compiled = fn.lower(*args).compile()
            memory = compiled.memory_analysis()
            extra["collective_bytes_per_device"] = _collective_bytes(compiled.as_text())
            extra["memory_per_device_bytes"] = (memory.argument_size_in_bytes
                                                + memory.output_size_in_bytes
                                                + memory.temp_size_in_bytes)
        timing, out = H.time_call(functools.partial(fn, *args), repeats=repeats)
        if name.startswith("sinkhorn"):
            extra["iterations"] = int(out.iterations)
        rows.append(H.row(group=f"parallel processes n={n}: {name}", name="parallel_processes",
                          impl=label, timing=timing, baseline=jax.process_count() == 1,
                          sizes={"n": n, "d": DIM}, dtype="float32", extra=extra))
    return rows


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
    return rows + _process_rows(parallel.particle_mesh(4), "1 process x 4 devices", quick,
                                repeats)


def _child_process(quick: bool, repeats: int) -> list[dict]:
    """One of PROCESSES processes of 2 devices each (FLOWJAX_LAB_* set by `rows`)."""
    import jax

    jax.config.update("jax_num_cpu_devices", 4 // PROCESSES)
    from flowjax_lab import parallel

    mesh = parallel.initialize()
    return _process_rows(mesh, f"{PROCESSES} processes x {4 // PROCESSES} devices", quick,
                         repeats)


def _run(code: str, env: dict, count: int = 1) -> list[dict]:
    """Run `code` in `count` child processes; the rows printed by the first."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=root, text=True,
                              env={**env, "FLOWJAX_LAB_PROCESS_ID": str(i)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(count)]
    try:
        outputs = [p.communicate(timeout=3600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    lines = [ln for ln in outputs[0][0].splitlines() if ln.startswith("ROWS")]
    if any(p.returncode for p in procs) or not lines:
        raise RuntimeError(f"scaling child failed ({[p.returncode for p in procs]}):\n"
                           + "\n".join(err[-3000:] for _, err in outputs))
    return json.loads(lines[-1][4:])


def rows(quick: bool, repeats: int | None = None) -> list[dict]:
    repeats = repeats or (2 if quick else 5)
    env = dict(os.environ)
    env.setdefault("JAX_PLATFORMS", "cpu")
    single = dict(env, XLA_FLAGS=(env.get("XLA_FLAGS", "") + " --xla_force_host_platform_"
                                  f"device_count={max(DEVICES)}").strip())
    out = _run(f"import json, {__name__} as m; "
               f"print('ROWS' + json.dumps(m._child({quick!r}, {repeats})))", single)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    many = dict(env, FLOWJAX_LAB_COORDINATOR=f"127.0.0.1:{port}",
                FLOWJAX_LAB_NUM_PROCESSES=str(PROCESSES))
    return out + _run(f"import json, {__name__} as m; "
                      f"print('ROWS' + json.dumps(m._child_process({quick!r}, {repeats})))",
                      many, PROCESSES)
