"""Re-pair a minibatch by an optimal-transport plan (for OT flow matching)."""

import jax
import jax.numpy as jnp

from .. import _checks
from .._types import Key, Particles
from ._assignment import optimal_permutation
from ._sinkhorn import check_momentum, prepare, sinkhorn


def minibatch_coupling(x0, x1, *, epsilon=None, key=None, threshold=1e-3, max_iterations=2000,
                       momentum=None) -> tuple[Particles, Particles]:
    """Pair the rows of `x0` `(n, d)` with rows of `x1` `(n, d)` by optimal transport.

    With `epsilon=None` the pairing is the exact optimal permutation (each `x1` row used once).
    With `epsilon > 0` each `x0` row draws its partner from its row of the entropic plan
    (needs `key`), as in Schrodinger-bridge flow matching. Works inside ``jit``.

    `threshold`, `max_iterations` and `momentum` (over-relaxation in [1, 2), `None` = off) set
    the entropic solve as in `sinkhorn`; they are checked always and used only with `epsilon`.

    **Returns:** `(x0, x1_paired)`, both `(n, d)`.
    """
    x0, x1, _, _ = prepare(x0, x1, None, None, ("x0", "x1"))
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(
            f"`x0` and `x1` must hold the same number of points, got {x0.shape[0]} and "
            f"{x1.shape[0]}."
        )
    _checks.positive(threshold, "threshold")
    max_iterations = _checks.positive_int(max_iterations, "max_iterations")
    momentum = check_momentum(momentum)
    if epsilon is None:
        return x0, x1[optimal_permutation(x0, x1)]
    _checks.positive(epsilon, "epsilon")
    key = _checks.key(key)
    solve = dict(epsilon=epsilon, threshold=threshold, max_iterations=max_iterations,
                 momentum=momentum)
    return x0, x1[_sample_plan(key, x0, x1, solve)]


def _sample_plan(key: Key, x0, x1, solve: dict):
    plan = sinkhorn(x0, x1, **solve).plan()
    logits = jnp.log(jnp.maximum(plan, jnp.finfo(plan.dtype).tiny))
    return jax.random.categorical(key, jax.lax.stop_gradient(logits), axis=1)
