"""The result of a simulation: saved times, particle clouds, log-densities, stats and status."""

import equinox as eqx
import jax.numpy as jnp

from ._types import Array, Particles, Times


class Status:
    """Integer codes of how a simulation ended (usable inside ``jit``)."""

    SUCCESS = 0
    MAX_STEPS_REACHED = 1
    NONFINITE = 2
    SOLVER_FAILURE = 3

    MESSAGES = {
        SUCCESS: "success",
        MAX_STEPS_REACHED: "the maximum number of solver steps was reached; raise `max_steps`",
        NONFINITE: "the state became NaN or inf (the flow blew up or particles collided)",
        SOLVER_FAILURE: "the ODE solver failed (step size collapsed or another diffrax error)",
    }

    @classmethod
    def message(cls, code) -> str:
        return cls.MESSAGES[int(code)]


class Trajectory(eqx.Module):
    """A simulated particle cloud.

    **Fields:**
    - `ts`: saved times, shape `(T,)`.
    - `xs`: particles at those times, shape `(T, n, d)`.
    - `logp`: log-densities carried along the flow, shape `(T, n)`, or `None`.
    - `stats`: dict of integer arrays: `num_steps`, `num_accepted_steps`, `num_rejected_steps`,
      `num_field_evals`.
    - `status`: integer code, see [`Status`][]; `0` is success.
    """

    ts: Times
    xs: Array
    logp: Array | None
    stats: dict
    status: Array

    @property
    def x1(self) -> Particles:
        """The final cloud, shape `(n, d)`."""
        return self.xs[-1]

    @property
    def ok(self) -> Array:
        """Boolean array: did the run succeed?"""
        return self.status == Status.SUCCESS

    @property
    def message(self) -> str:
        """Human-readable status (needs a concrete status)."""
        return Status.message(self.status)

    def raise_on_failure(self) -> "Trajectory":
        """Raise ``RuntimeError`` if the run did not succeed (outside ``jit``); else return self."""
        if int(self.status) != Status.SUCCESS:
            raise RuntimeError(f"simulation failed: {self.message}")
        return self


def finite_status(status: Array, *arrays) -> Array:
    """Turn a success into ``NONFINITE`` when any of ``arrays`` holds NaN or inf."""
    finite = jnp.array(True)
    for a in arrays:
        if a is not None:
            finite = finite & jnp.all(jnp.isfinite(a))
    return jnp.where((status == Status.SUCCESS) & ~finite, Status.NONFINITE, status)
