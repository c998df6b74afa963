"""Vector fields ``f(t, x, args) -> dx`` on particle clouds `(n, d)`, one family per file."""

from .._deprecated import aliases as _aliases
from ._attention import (
    Attention as Attention,
    PiecewiseConstant as PiecewiseConstant,
    attend as attend,
)
from ._exact_flow_matching import ExactFlowMatching as ExactFlowMatching
from ._gaussian_flow_matching import GaussianFlowMatching as GaussianFlowMatching
from ._interaction import Interaction as Interaction, interaction_energy as interaction_energy
from ._meanfield import (
    LinearNetworkField as LinearNetworkField,
    TwoLayerMeanField as TwoLayerMeanField,
)
from ._neural import MLPField as MLPField, OTFlowPotential as OTFlowPotential
from ._pointwise import Pointwise as Pointwise, pointwise as pointwise
from ._transformer import residual_transformer as residual_transformer
from ._unet import UNetField as UNetField


def _autodiff_laplacian(potential: OTFlowPotential, t, x):
    """Deprecated: ``potential.autodiff_laplacian(t, x)``."""
    return potential.autodiff_laplacian(t, x)


__getattr__ = _aliases(globals(), {"Potential": "OTFlowPotential"},
                       moved={"autodiff_laplacian": (_autodiff_laplacian,
                                                     "OTFlowPotential.autodiff_laplacian")})
