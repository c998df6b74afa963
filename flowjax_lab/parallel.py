"""Particle clouds sharded over many devices with ``jax.sharding``.

A cloud `(n, d)` is split along its particle axis over a one-axis device mesh; every other
axis stays whole. The same functions then run on the sharded cloud:

- `simulate(field, x0, mesh=...)`: `flowjax_lab.simulate` with the state kept sharded at every
  stage of the solver (XLA's SPMD partitioner inserts the communication an interacting field
  needs: an all-gather of the cloud, or the all-reduce of a mean).
- `gather_field(rule, mesh)`: an interacting field written per block of query particles against
  the whole cloud (keys and values gathered by one `all_gather` per evaluation).
- `ring_pair_sum(fn, x, mesh)`: pair sums ``sum_{j != i} w_j fn(x_i - x_j)`` where the blocks of
  the cloud travel around a ring of devices (`ppermute`), so no device ever holds more than two
  blocks: memory `O(n / p)` per device.
- `sinkhorn(x, y, mesh=...)`: ott-jax's log-domain Sinkhorn on a `ShardedPointCloud`, whose
  kernel products pass the blocks of one cloud around the ring (`ppermute`) while each device
  folds them into its own rows' log-sum-exps: no device holds the `(n, m)` cost or a whole
  cloud; the potentials come back sharded.
- `sharded_sampler(sampler, mesh)`: a batch sampler for `learn.FlowMatchingLoss` whose batch is
  split over the devices: data-parallel training with `learn.fit` and optax unchanged.

**Many processes**: start one process per host (or per GPU) running the same
program, call `initialize()` first (arguments, the ``FLOWJAX_LAB_COORDINATOR`` /
``FLOWJAX_LAB_NUM_PROCESSES`` / ``FLOWJAX_LAB_PROCESS_ID`` environment, or SLURM, Open MPI,
Cloud TPU and Kubernetes detected by JAX); it returns the mesh over every device of every
process. Build a cloud from the rows each process owns with `shard_local_rows` (or pass the same
full array on every process to `shard_particles`); every function above then runs unchanged, its
collectives crossing processes (gloo on CPU, NCCL on GPU, ICI on TPU). Read results with
`to_host`.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from ott.problems.linear import linear_problem

from . import _blocks, _checks
from ._distributed import join as _join, to_host as to_host
from ._simulate import simulate as _simulate
from ._status import raise_if_failed
from ._trajectory import Trajectory
from .transport import _sinkhorn as _transport
from .transport._ott import promoted
from .transport._sharded_geometry import ShardedPointCloud
from .transport._sinkhorn import SinkhornResult

AXIS = "particles"


def particle_mesh(devices=None, *, axis: str = AXIS) -> Mesh:
    """A one-axis mesh over `devices` (default: every device of every process).

    **Arguments:**
    - `devices`: a sequence of `jax.Device`s, an int (the first that many devices) or `None`.
    - `axis`: the mesh axis name along which particles are split.
    """
    available = jax.devices()
    if devices is None:
        devices = available
    elif isinstance(devices, int) and not isinstance(devices, bool):
        count = _checks.positive_int(devices, "devices")
        if count > len(available):
            raise ValueError(
                f"`devices` asks for {count} devices but only {len(available)} are visible."
            )
        devices = available[:count]
    devices = list(devices) if isinstance(devices, list | tuple | np.ndarray) else []
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError("`devices` must be None, a positive int or a sequence of jax.Device.")
    return Mesh(np.array(devices), (axis,))


def initialize(coordinator_address=None, num_processes=None, process_id=None, *,
               local_devices=None) -> Mesh:
    """Join this process to a multi-process JAX runtime and return the global particle mesh.

    Call it first, before any JAX computation, in every process with the same program. Each
    argument left `None` is read from ``FLOWJAX_LAB_COORDINATOR`` (``host:port`` of process
    0), ``FLOWJAX_LAB_NUM_PROCESSES`` and ``FLOWJAX_LAB_PROCESS_ID``; when none is set either,
    JAX detects the cluster itself (SLURM, Open MPI, Cloud TPU, Kubernetes). On CPU the
    processes talk through gloo collectives. `num_processes=1` needs no coordinator and starts
    nothing. Calling it again with the same (or no) arguments returns the mesh again.

    **Arguments:**
    - `coordinator_address`: ``"host:port"`` of process 0 (its port must be free there).
    - `num_processes`: number of processes `P`; `process_id`: this one's index in `0..P-1`.
    - `local_devices`: the accelerator ids this process owns (an int or a list; default all
      visible), e.g. ``local_devices=rank`` for one process per GPU of a host.

    **Returns:** `particle_mesh()`, one axis over every device of every process.
    """
    _join(coordinator_address, num_processes, process_id, local_devices=local_devices)
    return particle_mesh()


def _mesh(mesh) -> Mesh:
    if mesh is None:
        return particle_mesh()
    if not isinstance(mesh, Mesh) or len(mesh.axis_names) != 1:
        raise TypeError(f"`mesh` must be a one-axis jax.sharding.Mesh (see particle_mesh), "
                        f"got {mesh!r}.")
    return mesh


def particle_sharding(mesh=None) -> NamedSharding:
    """The sharding of a cloud `(n, d)` split along particles over `mesh`."""
    mesh = _mesh(mesh)
    return NamedSharding(mesh, P(mesh.axis_names[0], None))


def _divisible(x, mesh: Mesh, name: str) -> None:
    p = mesh.devices.size
    if x.shape[0] % p:
        raise ValueError(
            f"`{name}` has {x.shape[0]} particles, which does not split evenly over {p} "
            f"devices: use a multiple of {p} (pad with zero-weight particles if needed)."
        )


def shard_particles(x, mesh=None, *, name: str = "x"):
    """Place the cloud `x` `(n, d)` on `mesh`, split along particles (`n` divisible by the
    number of devices). Returns a global `jax.Array` with `particle_sharding(mesh)`. NaN or inf
    is refused in a concrete `x` only (a traced one is checked for its shape: an `error_if` in a
    sharded program stalls its collectives)."""
    mesh = _mesh(mesh)
    x = _checks.particles(x, name, finite=not _checks.is_traced(x))
    _divisible(x, mesh, name)
    return jax.device_put(x, particle_sharding(mesh))


def shard_local_rows(x_local, mesh=None, *, name: str = "x"):
    """The global cloud `(n, d)` whose rows are the `(n / P, d)` rows `x_local` that each of the
    `P` processes passes, in process order, split along particles over `mesh` (default: every
    device). Each process gives the same number of rows, divisible by its device count. NaN or
    inf in any process's rows is refused on every process alike (the check is collective)."""
    mesh = _mesh(mesh)
    x_local = np.asarray(_checks.particles(x_local, name, finite=False))
    local = len(mesh.local_devices)
    if x_local.shape[0] % local:
        raise ValueError(f"`{name}` has {x_local.shape[0]} local rows, which does not split "
                         f"evenly over this process's {local} devices.")
    x = jax.make_array_from_process_local_data(particle_sharding(mesh), x_local)
    _divisible(x, mesh, name)
    return _checks.check_finite(x, name)


class _ShardedField(eqx.Module):
    """`field` with its output constrained to `sharding` (a Module, so that repeated calls with
    the same field hit the compilation cache)."""

    field: Callable
    sharding: NamedSharding = eqx.field(static=True)

    def __call__(self, t, x, args):
        return jax.lax.with_sharding_constraint(self.field(t, x, args), self.sharding)


def simulate(field, x0, *, mesh=None, **kwargs) -> Trajectory:
    """`flowjax_lab.simulate` of the cloud `x0` `(n, d)` split over `mesh` along particles.

    The field's output is constrained to the particle sharding, so the solver's state and stages
    stay split; interacting fields gather what they need (XLA inserts the collectives, or use
    `gather_field` / `ring_pair_sum` to say how). Keyword arguments are those of `simulate`.

    **Returns:** the `Trajectory`; `xs` `(T, n, d)` is sharded along `n`.
    """
    mesh = _mesh(mesh)
    x0 = shard_particles(x0, mesh, name="x0")
    return _simulate(_ShardedField(field, particle_sharding(mesh)), x0, **kwargs)


def gather_field(rule: Callable, mesh=None) -> Callable:
    """A field on a sharded cloud from a per-block `rule(t, x_local, x_all, args) -> dx_local`.

    `x_local` `(n / p, d)` are the particles a device owns (the queries), `x_all` `(n, d)` the
    whole cloud gathered from every device (the keys and values); the rule returns the velocity
    of its own particles `(n / p, d)`. `args` is passed whole to every device. The field is
    called as ``field(t, x, args)`` with `x` `(n, d)`, like any other field.
    """
    mesh = _mesh(mesh)
    axis = mesh.axis_names[0]

    def field(t, x, args):
        def local(t, x_local, args):
            x_all = jax.lax.all_gather(x_local, axis, tiled=True)
            return rule(t, x_local, x_all, args)

        return jax.shard_map(local, mesh=mesh, in_specs=(P(), P(axis, None), P()),
                             out_specs=P(axis, None), check_vma=False)(t, x, args)

    return field


def ring_pair_sum(fn: Callable, x, mesh=None, weights=None):
    """``out_i = sum_{j != i} w_j fn(x_i - x_j)`` with the cloud's blocks passed around a ring.

    Each device keeps its own rows and receives one block of columns per round from its
    neighbour (`p` rounds of `lax.ppermute`), so it never holds the whole cloud.

    **Arguments:**
    - `fn`: function of one difference `(d,)` returning an array (the self pair is masked out
      before `fn` sees it).
    - `x`: particles `(n, d)`, `n` divisible by the number of devices (sharded or not); NaN or
      inf is refused in a concrete `x` only, not in a traced one (see the note in the code).
    - `weights`: `(n,)` weights `w_j` (uniform `1/n` if `None`).

    **Returns:** `(n, *fn_shape)`, sharded along `n`.
    """
    mesh = _mesh(mesh)
    axis = mesh.axis_names[0]
    p = mesh.devices.size
    # Not traced: an `error_if` raising inside a program sharded over devices stalls its
    # collectives (XLA aborts), so a traced cloud is checked for its shape only.
    x = _checks.particles(x, "x", finite=not _checks.is_traced(x))
    _divisible(x, mesh, "x")
    n = x.shape[0]
    if weights is None:
        weights = jnp.full((n,), 1 / n, x.dtype)
    else:
        weights = _checks.weights(weights, n, "weights", dtype=x.dtype)
    block = n // p
    ring = [(i, (i + 1) % p) for i in range(p)]

    def local(x_local, w_local):
        me = jax.lax.axis_index(axis).astype(jnp.int32)
        rows = me * block + jnp.arange(block, dtype=jnp.int32)
        out_shape = jax.eval_shape(fn, x_local[0]).shape

        def step(carry, k):
            acc, xj, wj = carry
            owner = (me - k) % p
            cols = owner * block + jnp.arange(block, dtype=jnp.int32)
            mask = _blocks.pair_mask(rows, cols, n, n, "distinct")
            acc = acc + _blocks.block_pair_sum(fn, x_local, xj, wj, mask)
            xj, wj = jax.lax.ppermute((xj, wj), axis, ring)
            return (acc, xj, wj), None

        acc0 = jnp.zeros((block, *out_shape), x_local.dtype)
        (acc, _, _), _ = jax.lax.scan(step, (acc0, x_local, w_local),
                                       jnp.arange(p, dtype=jnp.int32))
        return acc

    return jax.shard_map(local, mesh=mesh, in_specs=(P(axis, None), P(axis)),
                         out_specs=P(axis), check_vma=False)(x, weights)


def sinkhorn(x, y, *, mesh=None, a=None, b=None, epsilon=None, threshold=1e-3,
             max_iterations=2000, momentum=None, lse_mode=None, block_size=None,
             throw=False) -> SinkhornResult:
    """Entropic OT between clouds split over `mesh`: ott-jax's log-domain Sinkhorn on a ring.

    `x` `(n, d)` and `y` `(m, d)` are both split along particles (`n`, `m` divisible by the
    number of devices). ott-jax's own Sinkhorn loop runs on `ShardedPointCloud`, whose kernel
    products pass the blocks of one cloud around the ring of devices (`ppermute`) while each
    device folds them into the log-sum-exps of its own rows: no device holds the `(n, m)` cost
    nor the other cloud whole, memory ``O((n + m) d / p + rows * max(n, m) / p)`` per device.
    Results equal `transport.sinkhorn(..., lse_mode=True)` up to the order of sums.

    **Arguments:** those of `transport.sinkhorn`: `a`, `b` `(n,)`, `(m,)` weights, `epsilon`,
    `threshold`, `max_iterations`, `momentum`, `throw`; `lse_mode`: `None` or `True` (the solve
    is always in the log domain); `block_size`: rows of a device's block processed at a time
    (default: as `transport.sinkhorn` chooses for one device's `(n / p, m / p)` share).

    **Returns:** the `SinkhornResult`; `f`, `g` come back sharded. Its `transport_cost`,
    `barycentric_map` and `plan` run on the gathered clouds (one device's computation).
    """
    mesh = _mesh(mesh)
    # Values of traced arrays are not checked (an `error_if` stalls a sharded program's
    # collectives, see `ring_pair_sum`), their shapes are.
    x = _checks.particles(x, "x", finite=not _checks.is_traced(x))
    y = _checks.particles(y, "y", finite=not _checks.is_traced(y)).astype(x.dtype)
    _checks.same_dimension(x, y)
    a, b = (None if w is None else _sharded_weights(w, len(z), name, x.dtype)
            for w, z, name in ((a, x, "a"), (b, y, "b")))
    epsilon, threshold, max_iterations, momentum, lse_mode = _transport.check_options(
        epsilon=epsilon, threshold=threshold, max_iterations=max_iterations, momentum=momentum,
        lse_mode=lse_mode)
    if lse_mode is False:
        raise ValueError("`lse_mode` must be None or True: the sharded solve runs in the log "
                         "domain (kernel mode would need the kernel whole).")
    p = mesh.devices.size
    _divisible(x, mesh, "x")
    _divisible(y, mesh, "y")
    n, m = x.shape[0] // p, y.shape[0] // p
    if block_size is None:
        block_size = _blocks.row_block(min(n, m), max(n, m), x.dtype)
    block_size = _checks.positive_int(block_size, "block_size")
    a = _transport.uniform(x.shape[0], x.dtype) if a is None else a
    b = _transport.uniform(y.shape[0], x.dtype) if b is None else b
    epsilon = (_transport.default_epsilon(x, y) if epsilon is None
               else jnp.asarray(epsilon, x.dtype))
    rows = particle_sharding(mesh)
    weights = NamedSharding(mesh, P(mesh.axis_names[0]))
    x, y = jax.device_put(x, rows), jax.device_put(y, rows)
    a, b = jax.device_put(a, weights), jax.device_put(b, weights)
    result = _ring_solve(x, y, a, b, epsilon, threshold, max_iterations, momentum, mesh,
                         block_size)
    return raise_if_failed(result, result.status, "sinkhorn") if throw else result


def _sharded_weights(w, n: int, name: str, dtype):
    """Weights `(n,)` of `dtype`: checked in full when concrete, for their shape when traced."""
    if not _checks.is_traced(w):
        return _checks.weights(w, n, name, dtype=dtype)
    w = _checks.as_float_array(w, name).astype(dtype)
    if w.shape != (n,):
        raise ValueError(f"`{name}` must have shape ({n},), got {tuple(w.shape)}.")
    return w


@eqx.filter_jit
def _ring_solve(x, y, a, b, epsilon, threshold, max_iterations, momentum, mesh, block):
    solver = _transport.ott_solver(True, threshold, max_iterations, momentum, x.dtype)
    potentials = NamedSharding(mesh, P(mesh.axis_names[0]))

    def solve(x, y, a, b, epsilon):
        geom = ShardedPointCloud(x, y, epsilon=epsilon, batch_size=block, mesh=mesh)
        out = solver(linear_problem.LinearProblem(geom, a=a, b=b))
        cost, f, g, *rest = _transport.pack(out, geom.epsilon, x.dtype)
        return (cost, *(jax.lax.with_sharding_constraint(v, potentials) for v in (f, g)), *rest)

    return SinkhornResult(*promoted(solve)(x, y, a, b, epsilon), x, y, a, b)


class _ShardedSampler(eqx.Module):
    source: object  # a sampler (key, n) -> (n, d) or a data array (m, d)
    sharding: NamedSharding = eqx.field(static=True)

    def __call__(self, key, n: int):
        p = self.sharding.mesh.devices.size
        if n % p:
            raise ValueError(f"the batch of {n} rows does not split evenly over {p} devices: "
                             f"use a `batch_size` that is a multiple of {p}.")
        if callable(self.source):
            batch = self.source(key, n)
        else:
            batch = self.source[jax.random.randint(key, (n,), 0, self.source.shape[0])]
        return jax.lax.with_sharding_constraint(batch, self.sharding)


def sharded_sampler(sampler, mesh=None) -> Callable:
    """A sampler ``(key, n) -> (n, d)`` whose batch is split along its rows over `mesh`.

    `sampler` is a sampler ``(key, n) -> (n, d)`` or a data array `(m, d)` (rows drawn
    uniformly with replacement, as `learn.FlowMatchingLoss` draws them). Given as the loss's
    `source` and `target`, it makes `learn.fit` data-parallel: under `jit` each device draws and
    scores its own rows of the same batch, the loss's mean and the gradient are summed across
    devices and processes, and optax updates the replicated parameters as before. The numbers
    equal those of the plain sampler up to the order of floating-point sums.
    """
    mesh = _mesh(mesh)
    if not callable(sampler):
        sampler = _checks.particles(sampler, "sampler")
    return _ShardedSampler(sampler, particle_sharding(mesh))
