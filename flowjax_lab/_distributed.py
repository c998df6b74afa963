"""Many processes, one runtime: `jax.distributed` joined from arguments or the environment.

Every process runs the same program. `join` starts the multi-process runtime (then
``jax.devices()`` lists every device of every process; `parallel.initialize` calls it and
returns the mesh over them); `to_host` reads global results back as NumPy arrays on every
process.
"""

import os
import re

import jax
import numpy as np
from jax.experimental import multihost_utils

from . import _checks

ENV_COORDINATOR = "FLOWJAX_LAB_COORDINATOR"
ENV_NUM_PROCESSES = "FLOWJAX_LAB_NUM_PROCESSES"
ENV_PROCESS_ID = "FLOWJAX_LAB_PROCESS_ID"
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_NO_CLUSTER = (
    "no cluster found: pass `coordinator_address`, `num_processes` and `process_id`, set "
    f"{ENV_COORDINATOR}=host:port, {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID}, or launch under "
    "a scheduler JAX detects (SLURM srun, Open MPI mpirun, a Cloud TPU pod, Kubernetes)")


def _address(value, name: str):
    if value is None:
        return None
    match = _ADDRESS.match(value) if isinstance(value, str) else None
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"`{name}` must be 'host:port' with a port in 1..65535, "
                         f"got {value!r}.")
    return value


def _integer(value, name: str, minimum: int):
    if value is None:
        return None
    if isinstance(value, str):  # from the environment
        try:
            value = int(value)
        except ValueError as err:
            raise ValueError(f"`{name}` must be an integer, got {value!r}.") from err
    return _checks.positive_int(value, name, minimum=minimum)


def _setting(value, name: str, env_name: str, parse):
    """`value` checked by `parse`, or else the environment variable `env_name` (or `None`)."""
    if value is not None:
        return parse(value, name)
    return parse(os.environ.get(env_name), env_name)


def _resolve(coordinator_address, num_processes, process_id):
    """Arguments first, then the FLOWJAX_LAB_* environment variables, checked."""
    address = _setting(coordinator_address, "coordinator_address", ENV_COORDINATOR, _address)
    count = _setting(num_processes, "num_processes", ENV_NUM_PROCESSES,
                     lambda v, name: _integer(v, name, 1))
    index = _setting(process_id, "process_id", ENV_PROCESS_ID,
                     lambda v, name: _integer(v, name, 0))
    if count is not None and index is not None and index >= count:
        raise ValueError(f"`process_id` {index} must be < `num_processes` {count}.")
    return address, count, index


def _local_devices(local_devices):
    if local_devices is None:
        return None
    ids = [local_devices] if isinstance(local_devices, int | np.integer) else local_devices
    if not isinstance(ids, list | tuple) or not ids:
        raise TypeError(f"`local_devices` must be a device id or a non-empty list of ids, "
                        f"got {local_devices!r}.")
    return [_checks.positive_int(i, "local_devices", minimum=0) for i in ids]


def join(coordinator_address=None, num_processes=None, process_id=None, *,
         local_devices=None) -> None:
    """Start JAX's multi-process runtime once (see `parallel.initialize` for the arguments);
    nothing to do for one process or when already started with the same settings."""
    address, count, index = _resolve(coordinator_address, num_processes, process_id)
    device_ids = _local_devices(local_devices)
    if jax.distributed.is_initialized():
        have = jax.process_count(), jax.process_index()
        if (count is not None and count != have[0]) or (index is not None and index != have[1]):
            raise ValueError(f"already initialised as process {have[1]} of {have[0]}; got "
                             f"`num_processes`={count}, `process_id`={index}.")
        return
    if count == 1:
        return
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(address, count, index, local_device_ids=device_ids)
    except ValueError as err:
        if address is None or count is None or index is None:
            raise ValueError(f"{_NO_CLUSTER} ({err}).") from err
        raise
    except RuntimeError as err:
        if "before" in str(err):
            raise RuntimeError("call `parallel.initialize` before any JAX computation: JAX's "
                               f"backend has already started ({err}).") from err
        raise


def _host(leaf):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
    if not isinstance(leaf, jax.Array | np.ndarray | np.generic | int | float | complex):
        raise TypeError(f"`tree` must hold arrays and numbers only, got a "
                        f"{type(leaf).__name__}.")
    return np.asarray(leaf)


def to_host(tree):
    """Every leaf of `tree` (arrays and numbers) as a NumPy array holding its whole value, on
    every process; a leaf split over processes is gathered (a collective: call it on all of
    them alike)."""
    return jax.tree.map(_host, tree)
