"""One process of a multi-process run started by tests/test_distributed.py.

``python tests/distributed_worker.py OUT [full|light]``, with ``FLOWJAX_LAB_COORDINATOR`` (a
loopback address), ``FLOWJAX_LAB_NUM_PROCESSES`` and ``FLOWJAX_LAB_PROCESS_ID`` set: joins the
others with 2 CPU devices of its own, builds the clouds from its own rows, runs a sharded
interacting simulation and a few data-parallel training steps (plain SGD: the parameters move
by the summed gradients), with ``full`` also a ring pair sum, a metric and a Sinkhorn solve,
and (process 0) saves the results to OUT/results.npz. Then the last process plants a NaN in
its rows of a new cloud: every process must stop with the same ValueError (a check on one
process alone would leave the others waiting in a collective). The test imports `clouds` and
`compute` for the single-process reference.
"""

import sys

import numpy as np

N, M, DIM, BATCH, STEPS, LR = 16, 8, 3, 16, 3, 0.5


def rows(process: int, count: int, n: int, seed: int):
    """The rows `(n / count, DIM)` that process `process` of `count` owns."""
    return np.random.default_rng([seed, process]).normal(size=(n // count, DIM))


def clouds(count: int):
    """The whole clouds x `(N, DIM)`, y `(M, DIM)` as the processes together own them."""
    x = np.concatenate([rows(i, count, N, 0) for i in range(count)])
    y = np.concatenate([rows(i, count, M, 1) for i in range(count)]) + 1.0
    return x, y


def attention_rule(t, x_local, x_all, args):
    import jax

    return jax.nn.softmax(x_local @ x_all.T, axis=1) @ x_all - x_local


def kernel(z):
    return z / (1.0 + (z @ z)) ** 1.5


def problem(source_wrap=lambda s: s):
    """The model, loss and key of the training check (samplers wrapped by `source_wrap`)."""
    import jax

    import flowjax_lab as fl

    data = clouds(1)[1]
    model = fl.fields.MLPField(DIM, width=8, depth=1, key=jax.random.key(3))
    gaussian = lambda key, n: jax.random.normal(key, (n, DIM))
    loss = fl.learn.FlowMatchingLoss(source_wrap(gaussian), source_wrap(data),
                                     batch_size=BATCH)
    return model, loss, jax.random.key(4)


def compute(x, y, mesh=None, *, full: bool = True):
    """Every checked result; sharded over `mesh` when given, else the single-device run.
    Without `full`: the simulation and the training only."""
    import equinox as eqx
    import jax
    import optax

    import flowjax_lab as fl
    from flowjax_lab import parallel

    out = {}
    if mesh is None:
        dense = lambda t, x, args: attention_rule(t, x, x, args)
        trajectory = fl.simulate(dense, x, rtol=1e-7, atol=1e-7)
        model, loss, key = problem()
    else:
        field = parallel.gather_field(attention_rule, mesh)
        trajectory = parallel.simulate(field, x, mesh=mesh, rtol=1e-7, atol=1e-7)
        model, loss, key = problem(lambda s: parallel.sharded_sampler(s, mesh))
    if full and mesh is None:
        diff = x[:, None, :] - x[None, :, :]
        out["pairs"] = np.einsum("ijk,j->ik", np.asarray(jax.vmap(jax.vmap(kernel))(diff)),
                                 np.full(N, 1 / N))
        ot = fl.transport.sinkhorn(x, y, epsilon=1.0, threshold=1e-9, lse_mode=True)
    elif full:
        out["pairs"] = parallel.ring_pair_sum(kernel, x, mesh)
        ot = parallel.sinkhorn(x, y, mesh=mesh, epsilon=1.0, threshold=1e-9)
    if full:
        out.update(energy=fl.metrics.energy_distance(x, y), cost=ot.cost, f=ot.f, g=ot.g,
                   iterations=ot.iterations)
    fitted = fl.learn.fit(loss, model, optax.sgd(LR), key, steps=STEPS, chunk=STEPS,
                          progress=False)
    out.update(xs=trajectory.xs, steps=trajectory.stats["num_steps"], losses=fitted.losses,
               devices=len(trajectory.xs.sharding.device_set))
    start, end = (jax.tree.leaves(eqx.filter(m, eqx.is_inexact_array))
                  for m in (model, fitted.model))
    for i, (a, b) in enumerate(zip(start, end, strict=True)):
        out[f"gradient_sum{i}"] = (a - b) / LR  # the gradients of the STEPS steps, summed
    return out


def main(out: str, checks: str = "full") -> None:
    import jax

    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_num_cpu_devices", 2)
    jax.config.update("jax_enable_x64", True)  # as in tests/conftest.py
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    from flowjax_lab import parallel

    mesh = parallel.initialize()  # from the FLOWJAX_LAB_* environment
    process, count = jax.process_index(), jax.process_count()
    assert len(mesh.devices) == 2 * count and len(mesh.local_devices) == 2
    assert parallel.initialize() == mesh  # a second call joins nothing new
    x_local, y_local = rows(process, count, N, 0), rows(process, count, M, 1) + 1.0
    x = parallel.shard_local_rows(x_local, mesh)
    y = parallel.shard_local_rows(y_local, mesh, name="y")
    results = parallel.to_host(compute(x, y, mesh, full=checks == "full"))
    if process == 0:
        np.savez(f"{out}/results.npz", **results)
    if process == count - 1:
        x_local[0, 0] = np.nan
    parallel.to_host(parallel.shard_local_rows(x_local, mesh))  # raises on every process


if __name__ == "__main__":
    main(*sys.argv[1:])
