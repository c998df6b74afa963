"""Re-pair a minibatch by an optimal-transport plan (for OT flow matching)."""

import jax
import jax.numpy as jnp

from .. import _checks
from .._status import Status
from .._types import Key, Pairwise, Particles, ParticlesLike, Permutation, ScalarLike, StatusCode
from ._assignment import check_solver, optimal_permutation
from ._sinkhorn import check_options, prepare, sinkhorn


def minibatch_coupling(
    x0: ParticlesLike, x1: ParticlesLike, *, epsilon: ScalarLike | None = None,
    key: Key | None = None, threshold=1e-3, max_iterations=2000, momentum=None, throw=False,
    return_status=False, solver: str = "network_simplex",
) -> tuple[Particles, Particles] | tuple[Particles, Particles, StatusCode]:
    """Pair the rows of `x0` `(n, d)` with rows of `x1` `(n, d)` by optimal transport.

    With `epsilon=None` the pairing is the exact optimal permutation (each `x1` row used once;
    `solver` as in `optimal_permutation`).
    With `epsilon > 0` each `x0` row draws its partner from its row of the entropic plan
    (needs `key`), as in Schrodinger-bridge flow matching. Works inside ``jit``.

    `threshold`, `max_iterations`, `momentum` (over-relaxation in [1, 2), `None` = off) and
    `throw` (raise the status message when the solve fails) set the entropic solve as in
    `sinkhorn`; they are checked always and used only with `epsilon`.

    **Returns:** `(x0, x1_paired)`, both `(n, d)`, then with `return_status=True` the
    [`Status`][flowjax_lab.Status] of the entropic solve (always ``SUCCESS`` for the exact
    pairing).
    """
    x0, x1, _, _ = prepare(x0, x1, None, None, ("x0", "x1"))
    if x0.shape[0] != x1.shape[0]:
        raise ValueError(
            f"`x0` and `x1` must hold the same number of points, got {x0.shape[0]} and "
            f"{x1.shape[0]}."
        )
    epsilon, threshold, max_iterations, momentum, _ = check_options(
        epsilon=epsilon, threshold=threshold, max_iterations=max_iterations, momentum=momentum)
    check_solver(solver)
    if epsilon is None:
        partners = optimal_permutation(x0, x1, solver=solver)
        status = jnp.asarray(Status.SUCCESS, jnp.int32)
    else:
        key = _checks.key(key)
        result = sinkhorn(x0, x1, epsilon=epsilon, threshold=threshold,
                          max_iterations=max_iterations, momentum=momentum, throw=throw)
        partners, status = _sample_plan(key, result.plan()), result.status
    paired = x0, x1[partners]
    return (*paired, status) if return_status else paired


def _sample_plan(key: Key, plan: Pairwise) -> Permutation:
    """One column index per row of `plan` `(n, m)`, drawn in proportion to the row: `(n,)`."""
    logits = jnp.log(jnp.maximum(plan, jnp.finfo(plan.dtype).tiny))
    return jax.random.categorical(key, jax.lax.stop_gradient(logits), axis=1)
