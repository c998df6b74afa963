"""Optimal transport between particle clouds and Gaussians, on ott-jax and scipy."""

from .._deprecated import aliases as _aliases
from ._assignment import optimal_permutation as optimal_permutation
from ._auction import AssignmentResult as AssignmentResult, linear_assignment as linear_assignment
from ._coupling import minibatch_coupling as minibatch_coupling
from ._divergence import sinkhorn_divergence as sinkhorn_divergence
from ._gaussian import (
    gaussian_monge_map as gaussian_monge_map,
    gaussian_w2_squared as gaussian_w2_squared,
)
from ._sinkhorn import SinkhornResult as SinkhornResult, sinkhorn as sinkhorn
from ._w2 import w2 as w2

# gaussian_w2 returned the squared distance while w2 does not: renamed to say so
__getattr__ = _aliases(globals(), {"gaussian_w2": "gaussian_w2_squared"})
