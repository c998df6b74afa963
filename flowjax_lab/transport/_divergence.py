"""The debiased Sinkhorn divergence (ott-jax)."""

import equinox as eqx
from ott.geometry import pointcloud
from ott.tools import sinkhorn_divergence as ott_divergence

from .. import _checks
from .._types import Scalar
from ._ott import ott_promotion
from ._sinkhorn import prepare


def sinkhorn_divergence(x, y, *, a=None, b=None, epsilon=None, threshold=1e-3,
                        max_iterations=2000) -> Scalar:
    """``S(x, y) = OT_eps(x, y) - (OT_eps(x, x) + OT_eps(y, y)) / 2`` for the cost |x - y|^2.

    Non-negative, zero when the clouds are equal, and differentiable in `x`, `y` (and the
    weights). `x` `(n, d)`, `y` `(m, d)`; `a` `(n,)`, `b` `(m,)`; `epsilon` > 0 or `None`
    (ott-jax's default, 1/20 of the mean cost of the cross problem).
    """
    x, y, a, b = prepare(x, y, a, b)
    _checks.positive(epsilon, "epsilon")
    _checks.positive(threshold, "threshold")
    max_iterations = _checks.positive_int(max_iterations, "max_iterations")
    return _divergence(x, y, a, b, epsilon, threshold, max_iterations)


@eqx.filter_jit
def _divergence(x, y, a, b, epsilon, threshold, max_iterations):
    with ott_promotion():
        value, _ = ott_divergence.sinkhorn_divergence(
            pointcloud.PointCloud, x, y, a=a, b=b, epsilon=epsilon,
            solve_kwargs={"threshold": threshold, "max_iterations": max_iterations},
        )
    return value
