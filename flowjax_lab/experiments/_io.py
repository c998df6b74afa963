"""A run folder on disk: config.json, metrics.json, figures (PNG) and arrays (.npz).

Every file is written to a temporary name in the same folder and then renamed, so an interrupted
run never leaves a half-written file; ``metrics.json`` is written last and marks a finished run.
A training experiment keeps its checkpoints in the folder's ``checkpoint/``.
"""

import io
import json
import math
from pathlib import Path

import numpy as np

from .._atomic import write_atomic
from ._result import Check, Result

CHECKPOINT = "checkpoint"


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


def _number(value):
    """A number read back from JSON (non-finite floats were written as "nan", "inf")."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def write_json(path: Path, obj) -> None:
    write_atomic(path, (json.dumps(_jsonable(obj), indent=2) + "\n").encode())


def png_bytes(figure) -> bytes:
    """A matplotlib figure rendered as PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def run_config(name: str, config: dict, seeds: list[int]) -> dict:
    """What ``config.json`` holds: enough to tell whether a folder can be resumed."""
    return {"experiment": name, "seeds": list(seeds), "dtype": config.get("dtype"),
            "config": _jsonable(config)}


def save_run(result: Result, folder) -> Path:
    """Write `result` into `folder` (figures as PNG, arrays as .npz) and return the folder."""
    folder = Path(folder)
    write_json(folder / "config.json", run_config(result.name, result.config, result.seeds))
    if result.arrays:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in result.arrays.items()})
        write_atomic(folder / "arrays.npz", buffer.getvalue())
    for name, figure in result.figures.items():
        data = figure if isinstance(figure, bytes) else png_bytes(figure)
        write_atomic(folder / f"{name}.png", data)
    if result.traceback:
        write_atomic(folder / "traceback.txt", result.traceback.encode())
    else:
        (folder / "traceback.txt").unlink(missing_ok=True)
    write_json(folder / "metrics.json", {
        "experiment": result.name,
        "passed": result.passed,
        "seconds": result.seconds,
        "seeds": result.seeds,
        "error": result.error,
        "metrics": result.metrics,
        "checks": [c.as_dict() for c in result.checks],
        "figures": list(result.figures),
    })
    return folder


def _check(saved: dict) -> Check:
    """A [`Check`][] from its saved dict (``passed`` is recomputed, never trusted)."""
    numbers = {k: _number(saved[k]) for k in ("value", "reference", "tolerance")}
    error = saved.get("error")
    return Check(saved["name"], **numbers, relation=saved.get("relation", "close"),
                 kind=saved.get("kind", "theory"), against=saved.get("against", ""),
                 error=None if error is None else _number(error))


def load_run(folder) -> Result:
    """The [`Result`][] saved in `folder`, with figures as PNG bytes and arrays as NumPy."""
    folder = Path(folder)
    saved = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    result = Result(saved["experiment"], config["config"], error=saved["error"],
                    seconds=saved["seconds"], seeds=saved["seeds"])
    result.metrics = {k: _number(v) for k, v in saved["metrics"].items()}
    result.checks = [_check(c) for c in saved["checks"]]
    result.figures = {name: (folder / f"{name}.png").read_bytes() for name in saved["figures"]
                      if (folder / f"{name}.png").exists()}
    if (folder / "traceback.txt").exists():
        result.traceback = (folder / "traceback.txt").read_text()
    if (folder / "arrays.npz").exists():
        with np.load(folder / "arrays.npz") as arrays:
            result.arrays = dict(arrays)
    return result
