"""Diffusion models: forward processes, denoising score matching, samplers, the exact empirical
score, and the time change to flow matching.

Convention: data at t = 0, noise at t = 1, ``x_t = alpha(t) x0 + sigma(t) eps``. A model is a
callable ``model(t, x) -> (n, d)`` with a declared prediction kind ("eps", "x0", "v", "score" or
"velocity"). The closed forms these are checked against live in ``theory``.
"""

from ._ddim import ddim as ddim
from ._dpm_solver import dpm_solver_2 as dpm_solver_2
from ._empirical import EmpiricalScore as EmpiricalScore
from ._grid import SPACINGS as SPACINGS, time_grid as time_grid
from ._heun_edm import heun_edm as heun_edm
from ._loss import WEIGHTINGS as WEIGHTINGS, DenoisingScoreMatching as DenoisingScoreMatching
from ._predictions import PREDICTIONS as PREDICTIONS, convert_prediction as convert_prediction
from ._probability_flow import (
    ProbabilityFlow as ProbabilityFlow,
    log_likelihood as log_likelihood,
    sample_probability_flow as sample_probability_flow,
)
from ._process import (
    VE as VE,
    VP as VP,
    AbstractProcess as AbstractProcess,
    FlowMatchingPath as FlowMatchingPath,
)
from ._reverse_sde import METHODS as METHODS, sample_reverse_sde as sample_reverse_sde
from ._samples import Samples as Samples
from ._time_change import (
    FlowMatchingVelocity as FlowMatchingVelocity,
    to_flow_matching as to_flow_matching,
)
