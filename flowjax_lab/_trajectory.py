"""The result of a simulation: saved times, particle clouds, log-densities, stats and status."""

import equinox as eqx

from ._status import HasStatus
from ._types import Array, Float, Particles, Path, Times

LogDensities = Float[Array, "T n"]


class Trajectory(HasStatus, eqx.Module):
    """A simulated particle cloud.

    **Fields:**
    - `ts`: saved times, shape `(T,)`.
    - `xs`: particles at those times, shape `(T, n, d)`.
    - `logp`: log-densities carried along the flow, shape `(T, n)`, or `None`.
    - `stats`: dict of integer arrays: `num_steps`, `num_accepted_steps`, `num_rejected_steps`,
      `num_field_evals`.
    - `status`: a [`Status`][flowjax_lab.Status] code; `ok`, `message` and `raise_on_failure`
      read it.
    """

    ts: Times
    xs: Path
    logp: LogDensities | None
    stats: dict
    status: Array

    what = "simulation"

    @property
    def x1(self) -> Particles:
        """The final cloud, shape `(n, d)`."""
        return self.xs[-1]
