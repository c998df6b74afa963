"""The Wasserstein-2 distance between particle clouds: exact when possible, entropic otherwise."""

import jax.numpy as jnp

from .. import _checks
from .._status import Status
from .._types import (
    ParticlesLike,
    ParticlesMLike,
    Scalar,
    ScalarLike,
    StatusCode,
    WeightsLike,
    WeightsMLike,
)
from ._assignment import optimal_permutation
from ._divergence import sinkhorn_divergence
from ._sinkhorn import check_options, prepare

METHODS = ("auto", "exact", "sinkhorn")


def _exact_possible(x, y, a, b) -> bool:
    return x.shape[0] == y.shape[0] and a is None and b is None


def w2(
    x: ParticlesLike, y: ParticlesMLike, *, a: WeightsLike | None = None,
    b: WeightsMLike | None = None, method="auto", epsilon: ScalarLike | None = None,
    momentum=None, return_method=False, throw=False, return_status=False,
) -> Scalar | tuple[Scalar, str] | tuple[Scalar, StatusCode] | tuple[Scalar, str, StatusCode]:
    """W2 (not squared) between clouds `x` `(n, d)` and `y` `(m, d)`.

    **Arguments:**
    - `method`: "exact" (optimal assignment, scipy; equal sizes and uniform weights only),
      "sinkhorn" (square root of the debiased Sinkhorn divergence, any sizes and weights), or
      "auto": exact when possible, else sinkhorn.
    - `epsilon`: regularisation for the sinkhorn method.
    - `momentum`: over-relaxation in [1, 2) for the sinkhorn method's solves (`None` = off; see
      `sinkhorn`). Checked always, used by the sinkhorn method only.
    - `return_method`: also return the name of the method used.
    - `throw`: raise the status message when a Sinkhorn solve fails, as in `sinkhorn`.
    - `return_status`: also return a [`Status`][flowjax_lab.Status] code (the Sinkhorn
      divergence's; always ``SUCCESS`` for the exact method).

    Differentiable in `x` and `y` (with the exact method, the assignment is held fixed).

    **Returns:** `value`, then the method if `return_method`, then the status if `return_status`.
    """
    x, y, a, b = prepare(x, y, a, b)
    method = _checks.choice(method, METHODS, "method")
    epsilon, _, _, momentum, _ = check_options(epsilon=epsilon, momentum=momentum)
    if method == "auto":
        method = "exact" if _exact_possible(x, y, a, b) else "sinkhorn"
    if method == "exact":
        if not _exact_possible(x, y, a, b):
            raise ValueError(
                "method='exact' needs clouds of equal size with uniform weights (a=b=None); "
                f"got n={x.shape[0]}, m={y.shape[0]}. Use method='sinkhorn'."
            )
        value, status = _exact_w2(x, y), jnp.asarray(Status.SUCCESS, jnp.int32)
    else:
        divergence, status = sinkhorn_divergence(x, y, a=a, b=b, epsilon=epsilon,
                                                 momentum=momentum, throw=throw,
                                                 return_status=True)
        value = jnp.sqrt(jnp.maximum(divergence, 0))
    extras = ((method,) if return_method else ()) + ((status,) if return_status else ())
    return (value, *extras) if extras else value


def _exact_w2(x, y) -> Scalar:
    perm = optimal_permutation(x, y)
    squared = jnp.mean(jnp.sum((x - y[perm]) ** 2, axis=1))
    # sqrt has an infinite derivative at 0: give identical clouds a zero gradient instead.
    safe = jnp.where(squared > 0, squared, 1)
    return jnp.where(squared > 0, jnp.sqrt(safe), 0)
