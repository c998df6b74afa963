"""``fit``: an optax training loop run in jitted ``lax.scan`` chunks, with checkpoints that resume.

Step ``k`` draws its randomness from ``jax.random.fold_in(key, k)``, so a run resumed from a
checkpoint reproduces the numbers of an uninterrupted run.
"""

import contextlib
import contextvars
import dataclasses
import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from .. import _checks
from .._atomic import write_atomic
from .._status import HasStatus, Status

STATE_FILE = "state.eqx"
PROGRESS_FILE = "progress.json"
_QUIET = contextvars.ContextVar("flowjax_lab_quiet", default=False)


@contextlib.contextmanager
def quiet(enabled: bool = True):
    """Within this context, ``fit(progress=None)`` shows no progress bar (``flowjax-lab
    --quiet``)."""
    token = _QUIET.set(enabled)
    try:
        yield
    finally:
        _QUIET.reset(token)


@dataclasses.dataclass
class FitResult(HasStatus):
    """The outcome of ``fit``.

    **Fields:** `model` (trained), `opt_state`, `losses` (NumPy `(step,)`), `evaluations`
    (list of `(step, dict)`), `step` (steps done), `status` (a [`Status`][flowjax_lab.Status]
    code, a Python int: ``SUCCESS``, ``NONFINITE`` when a loss became NaN/inf and training
    stopped, or ``INTERRUPTED``), `seconds` (wall time of this call). `ok`, `message` and
    `raise_on_failure` read `status`.
    """

    model: object
    opt_state: object
    losses: np.ndarray
    evaluations: list
    step: int
    status: int
    seconds: float

    what = "fit"

    @property
    def interrupted(self) -> bool:
        return self.status == Status.INTERRUPTED


def _save(folder: Path, params, opt_state, step: int, losses: list, evaluations: list) -> None:
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, (params, opt_state))
    write_atomic(folder / STATE_FILE, buffer.getvalue())
    progress = {"step": step, "losses": losses, "evaluations": evaluations}
    write_atomic(folder / PROGRESS_FILE, json.dumps(progress).encode())


def _load(folder: Path, params, opt_state):
    progress = json.loads((folder / PROGRESS_FILE).read_text())
    with open(folder / STATE_FILE, "rb") as handle:
        params, opt_state = eqx.tree_deserialise_leaves(handle, (params, opt_state))
    evaluations = [(step, values) for step, values in progress["evaluations"]]
    return params, opt_state, progress["step"], list(progress["losses"]), evaluations


def _chunk(params, opt_state, first, length, key, loss, static, optimizer):
    """`length` optimizer steps from step `first` in one ``lax.scan``."""

    def body(carry, offset):
        params, opt_state = carry
        step_key = jax.random.fold_in(key, first + offset)
        value, grads = jax.value_and_grad(
            lambda p: loss(eqx.combine(p, static), step_key)
        )(params)
        with jax.numpy_dtype_promotion("standard"):  # optax mixes int32 counts with floats
            updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    (params, opt_state), values = jax.lax.scan(body, (params, opt_state), jnp.arange(length))
    return params, opt_state, values


_run_chunk = eqx.filter_jit(_chunk)


def _hashable(*trees) -> bool:
    """True when the non-array parts of `trees` can key a compilation cache."""
    try:
        for tree in trees:
            leaves, treedef = jax.tree_util.tree_flatten(
                eqx.filter(tree, eqx.is_array, inverse=True))
            hash((tuple(leaves), treedef))
    except TypeError:
        return False
    return True


def fit(
    loss: Callable,
    model,
    optimizer: optax.GradientTransformation,
    key,
    *,
    steps: int,
    chunk: int = 100,
    evaluate: Callable | None = None,
    eval_every: int | None = None,
    checkpoint=None,
    resume: bool = False,
    progress: bool | None = None,
) -> FitResult:
    """Minimise ``loss(model, key)`` over the inexact-array leaves of `model` with `optimizer`.

    **Arguments:**
    - `loss`: ``(model, key) -> scalar``; draw the batch inside from `key`.
    - `model`: an equinox Module or pytree; its floating-point arrays are trained.
    - `key`: step `k` uses ``fold_in(key, k)``.
    - `steps`: total number of steps; `chunk`: steps per jitted ``lax.scan`` call.
    - `evaluate`: ``model -> dict of numbers``, called every `eval_every` steps and at the end.
    - `checkpoint`: a folder; the state is saved there atomically after every chunk.
    - `resume`: continue from `checkpoint` if it holds a saved state.
    - `progress`: show a progress bar (steps/s and the last loss); `None` shows it when standard
      error is a terminal, outside a ``learn.quiet()`` block.

    Ctrl-C stops after the current chunk with a checkpoint and status ``INTERRUPTED``.

    Compilation is shared by every call whose loss and model have the same structure and static
    fields (losses are ``equinox.Module``s: their arrays are inputs, not constants) and that passes
    the same optimizer object (optax optimizers are closures: build one per setting and reuse it).
    """
    steps = _checks.positive_int(steps, "steps")
    chunk = _checks.positive_int(chunk, "chunk")
    key = _checks.key(key)
    if eval_every is not None:
        eval_every = _checks.positive_int(eval_every, "eval_every")
        chunk = math.gcd(chunk, eval_every)
    if resume and checkpoint is None:
        raise ValueError("`resume=True` needs a `checkpoint` folder.")
    folder = None if checkpoint is None else Path(checkpoint)

    params, static = eqx.partition(model, eqx.is_inexact_array)
    opt_state = optimizer.init(params)
    start, losses, evaluations = 0, [], []
    if resume and folder is not None and (folder / PROGRESS_FILE).exists():
        params, opt_state, start, losses, evaluations = _load(folder, params, opt_state)

    if _hashable(loss, static, optimizer):
        # One compilation per (loss, model structure, optimizer, chunk length), shared by every
        # call of ``fit``: the loss's arrays, the key and the parameters are inputs.
        def run_chunk(params, opt_state, first, length):
            return _run_chunk(params, opt_state, first, length, key, loss, static, optimizer)
    else:  # unhashable static parts: compile a closure for this call
        run_chunk = eqx.filter_jit(lambda params, opt_state, first, length: _chunk(
            params, opt_state, first, length, key, loss, static, optimizer))

    status, began = Status.SUCCESS, time.perf_counter()
    disable = not progress if progress is not None else (True if _QUIET.get() else None)
    bar = tqdm(total=steps, initial=start, disable=disable, desc="fit", unit="step",
               leave=False, dynamic_ncols=True)  # disable=None: shown on a terminal only
    step = start
    try:
        while step < steps:
            length = min(chunk, steps - step)
            new_params, new_opt_state, values = run_chunk(
                params, opt_state, jnp.asarray(step), length
            )
            values = np.asarray(values)
            if not np.all(np.isfinite(values)):
                losses += values[: int(np.argmax(~np.isfinite(values))) + 1].tolist()
                status = Status.NONFINITE
                break
            params, opt_state, step = new_params, new_opt_state, step + length
            losses += values.tolist()
            bar.update(length)
            bar.set_postfix(loss=f"{values[-1]:.4g}")
            if evaluate is not None and (step == steps or (eval_every and step % eval_every == 0)):
                scores = {k: float(v) for k, v in evaluate(eqx.combine(params, static)).items()}
                evaluations.append((step, scores))
            if folder is not None:
                _save(folder, params, opt_state, step, losses, evaluations)
    except KeyboardInterrupt:
        status = Status.INTERRUPTED
        if folder is not None:
            _save(folder, params, opt_state, step, losses, evaluations)
    finally:
        bar.close()
    return FitResult(eqx.combine(params, static), opt_state, np.asarray(losses), evaluations,
                     step, status, time.perf_counter() - began)
