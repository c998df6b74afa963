"""Small helpers shared by the training experiments (``learn.fit`` callers)."""

import functools
from pathlib import Path

import optax


@functools.cache
def adam(learning_rate: float) -> optax.GradientTransformation:
    """``optax.adam(learning_rate)``, one object per rate: ``fit`` keys its compilation on the
    optimizer object, so the runs, seeds and arms of an experiment that share a rate share one
    compiled training step."""
    return optax.adam(learning_rate)


def chunk_size(steps: int, most: int = 100) -> int:
    """The largest divisor of `steps` that is at most `most`.

    ``fit`` compiles one ``lax.scan`` per chunk length, so a chunk that divides `steps` compiles
    once; chunks shorter than `steps` let Ctrl-C stop a long run with a checkpoint.
    """
    return max(c for c in range(1, min(steps, most) + 1) if steps % c == 0)


def sub_folder(checkpoint, *parts) -> Path | None:
    """`checkpoint / part / ...` (one folder per ``fit`` call), or ``None`` without checkpoint."""
    if checkpoint is None:
        return None
    folder = Path(checkpoint)
    for part in parts:
        folder = folder / str(part).replace("->", "_to_").replace(" ", "_")
    return folder
