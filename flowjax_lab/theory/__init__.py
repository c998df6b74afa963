"""Closed forms and moment ODEs: the references simulations are checked against.

This package never imports ``simulate`` or ``fields``: a reference must not share the code it
checks.

**Time convention.** A function that evolves an initial law in time takes that law (`cov0`) at
the time ``t0``, a keyword defaulting to ``0.0`` (as in ``flowjax_lab.simulate``), and returns it
at the output times ``ts``: increasing, each ``>= t0``, with ``ts[0]`` not necessarily ``t0``
(put ``t0`` in ``ts`` to get the initial law back as the first output). Every returned time (a
blow-up time included) is on that same clock; the ODEs are autonomous, so a start at ``t0`` is the
start at 0 shifted by ``t0``. This is ``linear_network_covariance``, ``attention_covariance`` and
``attention_covariance_identity``. The closed forms of one scalar time ``t`` start at 0:
``heat_covariance(cov0, t)`` (the law N(m, cov0) at time 0), ``flow_matching_gaussian`` and
``flow_matching_map`` (the interpolation from time 0 to 1, ``t`` in [0, 1]) and
``bures_geodesic`` (its parameter ``t`` in [0, 1]).

Diffusion samplers are another object: the ``ts`` of ``diffusion_sampler_covariance``,
``diffusion_sampler_law`` and ``diffusion_errors`` is a sampler's grid, strictly decreasing from
the noise time ``ts[0]`` = T (where the sampler's initial law is given) to ``ts[-1]``, the time
``t`` of the forward process ``x_t = alpha(t) x0 + sigma(t) eps`` (data at t = 0), not an
output-time list.

**Linear networks.** ``linear_network_covariance`` (and ``fields.LinearNetworkField``) use the risk
``risk_scale * E|y - M z|^2`` with ``risk_scale = 1.0`` by default: the paper's risk and Riccati
ODE (Prop. 6.2, eq. (23) of Peyré, "Optimal and Diffusion Transports in Machine Learning");
``risk_scale=0.5`` is the ``1/2 E|y - M z|^2`` convention, the same flow at half the speed.
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
