"""The debiased Sinkhorn divergence, from three ott-jax Sinkhorn solves.

Composed here rather than through ``ott.tools.sinkhorn_divergence``, which in ott-jax 0.6.0 fails
on float32 clouds when float64 is enabled (mismatched ``cond`` branch dtypes).
"""

import jax.numpy as jnp

from .._status import first_failure, raise_if_failed
from .._types import (
    ParticlesLike,
    ParticlesMLike,
    Scalar,
    ScalarLike,
    StatusCode,
    WeightsLike,
    WeightsMLike,
)
from ._sinkhorn import check_options, default_epsilon, prepare, sinkhorn, uniform


def sinkhorn_divergence(
    x: ParticlesLike, y: ParticlesMLike, *, a: WeightsLike | None = None,
    b: WeightsMLike | None = None, epsilon: ScalarLike | None = None,
    threshold=1e-3, max_iterations=2000, momentum=None, throw=False, return_status=False,
) -> Scalar | tuple[Scalar, StatusCode]:
    """``S(x, y) = OT_eps(x, y) - (OT_eps(x, x) + OT_eps(y, y)) / 2`` for the cost |x - y|^2.

    Non-negative, zero when the clouds are equal, and differentiable in `x`, `y` (and the
    weights). `x` `(n, d)`, `y` `(m, d)`; `a` `(n,)`, `b` `(m,)`; `epsilon` > 0 or `None`
    (1/20 of the mean cost of the cross problem, ott-jax's default), shared by the three solves;
    `threshold`, `max_iterations` and `momentum` (over-relaxation in [1, 2), `None` = off) as in
    `sinkhorn`, for each of them.

    `throw`: raise the status message when a solve fails, as in `sinkhorn`.

    **Returns:** the divergence (scalar), or `(divergence, status)` with `return_status=True`:
    the [`Status`][flowjax_lab.Status] of the first of the three solves that failed.
    """
    x, y, a, b = prepare(x, y, a, b)
    epsilon, threshold, max_iterations, momentum, _ = check_options(
        epsilon=epsilon, threshold=threshold, max_iterations=max_iterations, momentum=momentum)
    a = uniform(x.shape[0], x.dtype) if a is None else a
    b = uniform(y.shape[0], x.dtype) if b is None else b
    epsilon = default_epsilon(x, y) if epsilon is None else jnp.asarray(epsilon, x.dtype)
    solve = lambda p, q, wp, wq: sinkhorn(p, q, a=wp, b=wq, epsilon=epsilon, threshold=threshold,
                                          max_iterations=max_iterations, momentum=momentum)
    cross, own_x, own_y = solve(x, y, a, b), solve(x, x, a, a), solve(y, y, b, b)
    divergence = cross.cost - (own_x.cost + own_y.cost) / 2
    status = first_failure(cross.status, own_x.status, own_y.status)
    if throw:
        divergence = raise_if_failed(divergence, status, "sinkhorn_divergence")
    return (divergence, status) if return_status else divergence
