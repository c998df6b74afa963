"""flowjax_lab: particle clouds moved by vector fields, checked against theory.

The public surface; ARCHITECTURE.md describes the data flow and the layers.
"""

from . import (
    clustering as clustering,
    datasets as datasets,
    diffusion as diffusion,
    experiments as experiments,
    fields as fields,
    flows as flows,
    learn as learn,
    metrics as metrics,
    parallel as parallel,
    theory as theory,
    transport as transport,
)
from ._reproduce import reproduce as reproduce
from ._simulate import simulate as simulate
from ._simulate_sde import simulate_sde as simulate_sde
from ._status import Status as Status
from ._trajectory import Trajectory as Trajectory
from .measures import Empirical as Empirical, Gaussian as Gaussian

__version__ = "0.1.0"
