"""``Status``: how every solver run ended, one integer code with one message per failure.

In the manner of diffrax's ``RESULTS``, but plain integers (int32 arrays under ``jit``/``vmap``),
so that codes compare with ``==``, convert with ``int`` and store in JSON. (diffrax's
``equinox.internal.Enumeration`` items compare only with items of the same enumeration and live
in a namespace without stability guarantees.)
"""

import diffrax as dfx
import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._checks import is_traced
from ._types import Array


class Status:
    """Codes of how a run ended; ``Status.message(code)`` says what went wrong."""

    SUCCESS = 0
    MAX_STEPS_REACHED = 1
    NONFINITE = 2
    SOLVER_FAILURE = 3
    NOT_CONVERGED = 4
    INTERRUPTED = 5

    MESSAGES = {
        SUCCESS: "success",
        MAX_STEPS_REACHED: "the maximum number of solver steps was reached; raise `max_steps`",
        NONFINITE: "the state became NaN or inf (the flow blew up or particles collided)",
        SOLVER_FAILURE: "the solver failed (step size collapsed or another diffrax error)",
        NOT_CONVERGED: "the iterative solver did not converge within its iteration budget; "
                       "raise `max_iterations`/`max_steps` or loosen the tolerance",
        INTERRUPTED: "the run was interrupted (Ctrl-C) before it finished",
    }

    @classmethod
    def message(cls, code) -> str:
        """The message of a concrete scalar code."""
        return cls.MESSAGES[int(code)]


def from_diffrax(result) -> Array:
    """A diffrax (or optimistix) ``RESULTS`` item as a ``Status`` code, int32 (batched like it).

    A diffrax solve out of steps is ``MAX_STEPS_REACHED``; an optimiser out of steps is
    ``NOT_CONVERGED``.
    """
    if not isinstance(result, dfx.RESULTS):
        result = dfx.RESULTS.promote(result)
    codes = [
        (dfx.RESULTS.successful, Status.SUCCESS),
        (dfx.RESULTS.event_occurred, Status.SUCCESS),
        (dfx.RESULTS.max_steps_reached, Status.MAX_STEPS_REACHED),
        (dfx.RESULTS.nonlinear_max_steps_reached, Status.NOT_CONVERGED),
        (dfx.RESULTS.nonfinite, Status.NONFINITE),
    ]
    status = jnp.asarray(Status.SOLVER_FAILURE, jnp.int32)
    for item, code in codes:
        status = jnp.where(result == item, jnp.int32(code), status)
    return status


def finite_status(status, *arrays) -> Array:
    """Turn a success into ``NONFINITE`` when any of `arrays` (`None` skipped) holds NaN or inf."""
    finite = jnp.array(True)
    for a in arrays:
        if a is not None:
            finite = finite & jnp.all(jnp.isfinite(a))
    return jnp.where((status == Status.SUCCESS) & ~finite, jnp.int32(Status.NONFINITE),
                     jnp.asarray(status, jnp.int32))


def first_failure(*statuses) -> Array:
    """The first of `statuses` that is not a success (``SUCCESS`` if none), int32."""
    out = jnp.asarray(Status.SUCCESS, jnp.int32)
    for status in reversed(statuses):
        out = jnp.where(status == Status.SUCCESS, out, jnp.asarray(status, jnp.int32))
    return out


def raise_if_failed(token, status, what: str):
    """`token` unchanged when `status` is ``SUCCESS``; else ``"{what} failed: {message}"`` is
    raised: a ``RuntimeError`` when `status` is concrete, an ``equinox`` runtime error (also a
    ``RuntimeError``) under ``jit``/``vmap``."""
    if is_traced(status):
        messages = [f"{what} failed: {message}" for message in Status.MESSAGES.values()]
        return eqx.branched_error_if(token, status != Status.SUCCESS, status, messages)
    failed = np.asarray(status).ravel()
    failed = failed[failed != Status.SUCCESS]
    if failed.size:
        raise RuntimeError(f"{what} failed: {Status.message(failed[0])}")
    return token


class HasStatus:
    """``ok``, ``message`` and ``raise_on_failure`` of a result with a ``status`` code.

    Subclasses set ``what``, the name of the run in error messages.
    """

    what = "run"

    @property
    def ok(self):
        """Did the run succeed? (a boolean array when `status` is an array)."""
        return self.status == Status.SUCCESS

    @property
    def message(self) -> str:
        """Human-readable status (needs a concrete scalar status)."""
        return Status.message(self.status)

    def raise_on_failure(self):
        """Self, or ``RuntimeError`` naming the failure (an ``error_if`` under ``jit``)."""
        return raise_if_failed(self, self.status, self.what)
