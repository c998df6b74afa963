"""Closed forms and moment ODEs: the references simulations are checked against.

This package never imports ``simulate`` or ``fields``: a reference must not share the code it
checks.
"""

from ._attention import (
    AttentionCovariance as AttentionCovariance,
    attention_covariance as attention_covariance,
    attention_covariance_identity as attention_covariance_identity,
    attention_velocity_matrix as attention_velocity_matrix,
)
from ._bures import (
    bures_geodesic as bures_geodesic,
    bures_monge_map as bures_monge_map,
    bures_w2_squared as bures_w2_squared,
)
from ._diffusion import (
    DIFFUSION_SAMPLERS as DIFFUSION_SAMPLERS,
    diffusion_covariance as diffusion_covariance,
    diffusion_sampler_covariance as diffusion_sampler_covariance,
    gaussian_mixture_score as gaussian_mixture_score,
    gaussian_score as gaussian_score,
)
from ._diffusion_errors import (
    DiffusionErrors as DiffusionErrors,
    diffusion_errors as diffusion_errors,
    diffusion_sampler_law as diffusion_sampler_law,
)
from ._flow_matching import (
    flow_matching_gaussian as flow_matching_gaussian,
    flow_matching_map as flow_matching_map,
)
from ._heat import heat_covariance as heat_covariance
from ._linear_network import linear_network_covariance as linear_network_covariance
from ._mmd import gaussian_mmd_squared as gaussian_mmd_squared
