"""Real processes on jax.distributed (gloo over loopback, 2 CPU devices each) give the
single-process results, and a NaN in one process's rows stops every process with a clear error.

Each launch runs tests/distributed_worker.py once per process, with a free port, a deadline and
every process killed on the way out; the single-process reference is computed here meanwhile.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import distributed_worker as worker
import numpy as np
import pytest

WORKER = Path(__file__).with_name("distributed_worker.py")
NAN_ERROR = "ValueError: `x` contains NaN or inf."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(count: int, command: list[str]) -> list[subprocess.Popen]:
    """`count` processes of ``python *command`` that find each other on a free loopback port."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env.update(XLA_FLAGS="--xla_backend_optimization_level=0",  # tiny programs: compile fast
               JAX_PLATFORMS="cpu", FLOWJAX_LAB_COORDINATOR=f"127.0.0.1:{_free_port()}",
               FLOWJAX_LAB_NUM_PROCESSES=str(count))
    return [subprocess.Popen([sys.executable, *command], cwd=WORKER.parent.parent, text=True,
                             env={**env, "FLOWJAX_LAB_PROCESS_ID": str(i)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for i in range(count)]


def _finish(procs: list[subprocess.Popen], deadline: float) -> list[tuple[int, str]]:
    """Each process's exit code and output; all are killed if any outlives `deadline`."""
    try:
        outputs = [p.communicate(timeout=max(deadline - time.monotonic(), 1))[0] for p in procs]
        return [(p.returncode, output) for p, output in zip(procs, outputs, strict=True)]
    except subprocess.TimeoutExpired:
        pytest.fail("a distributed worker hung past its deadline")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()


def _check(count: int, tmp_path: Path, seconds: float, checks: str) -> None:
    procs = _start(count, [str(WORKER), str(tmp_path), checks])
    deadline = time.monotonic() + seconds
    try:
        x, y = worker.clouds(count)
        # Single process, one device, while the workers run.
        reference = worker.compute(x, y, full=checks == "full")
    finally:
        outcomes = _finish(procs, deadline)
    for i, (code, output) in enumerate(outcomes):
        # Every process stops at the NaN planted in the last one's rows, with the same error.
        assert code != 0 and output.strip().endswith(NAN_ERROR), f"process {i}:\n{output[-3000:]}"
    got = dict(np.load(tmp_path / "results.npz"))
    assert int(got.pop("devices")) == 2 * count  # the trajectory spans every process's devices
    assert int(got["steps"]) == int(reference["steps"])  # the same adaptive steps
    assert float(np.max(np.abs(reference["xs"][-1] - x))) > 0.1  # the cloud moved
    assert float(np.max(np.abs(reference["gradient_sum0"]))) > 1e-3  # training moved
    assert set(got) == set(reference) - {"devices"}
    for name, value in got.items():
        np.testing.assert_allclose(value, reference[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_two_processes_simulate_and_train_as_one(tmp_path):
    """The default run's share (its CPU time is ~25 s): simulation, training, the NaN."""
    _check(2, tmp_path, seconds=150, checks="light")


@pytest.mark.slow
@pytest.mark.parametrize("count", [2, 4])
def test_processes_equal_one_with_sinkhorn_ring_and_metric(tmp_path, count):
    _check(count, tmp_path, seconds=300, checks="full")


@pytest.mark.slow
def test_cli_distributed_run_writes_one_folder(tmp_path):
    procs = _start(2, ["-m", "flowjax_lab.cli", "run", "aggregation", "--quick", "--quiet",
                       "--distributed", "--out", str(tmp_path)])
    (code0, out0), (code1, out1) = _finish(procs, time.monotonic() + 300)
    assert code0 == 0 and code1 == 0, out0 + out1
    assert "written to" in out0 and "written to" not in out1, out1
    assert (tmp_path / "aggregation" / "metrics.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["aggregation"]
