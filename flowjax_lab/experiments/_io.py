"""A run folder on disk: config.json, metrics.json, figures (PNG) and arrays (.npz).

Every file is written to a temporary name in the same folder and then renamed, so an interrupted
run never leaves a half-written file.
"""

import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from ._result import Result


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic | np.ndarray) or hasattr(value, "__array__"):
        array = np.asarray(value)
        return _jsonable(array.tolist()) if array.ndim else _jsonable(array.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def write_json(path: Path, obj) -> None:
    write_atomic(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def save_run(result: Result, folder) -> Path:
    """Write `result` into `folder` and return the folder's path."""
    folder = Path(folder)
    write_json(folder / "config.json", {"experiment": result.name, **result.config})
    write_json(
        folder / "metrics.json",
        {
            "experiment": result.name,
            "passed": result.passed,
            "seconds": result.seconds,
            "error": result.error,
            "metrics": result.metrics,
            "checks": [c.as_dict() for c in result.checks],
        },
    )
    if result.traceback:
        write_atomic(folder / "traceback.txt", result.traceback.encode())
    for name, figure in result.figures.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        write_atomic(folder / f"{name}.png", buffer.getvalue())
    if result.arrays:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in result.arrays.items()})
        write_atomic(folder / "arrays.npz", buffer.getvalue())
    return folder
