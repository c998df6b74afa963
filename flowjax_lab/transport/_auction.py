"""Exact linear assignment inside XLA: Bertsekas' auction algorithm with epsilon-scaling.

Minimise ``sum_i C[i, p_i]`` over permutations `p`. Persons (rows) bid for objects (columns) at
prices `q`; a person holding object `j` is `eps`-happy when ``C[i, j] + q_j <= min_k (C[i, k] +
q_k) + eps``. An auction phase ends when every person holds an object while staying `eps`-happy;
the assignment is then within ``n * eps`` of optimal, since for any permutation `s`,

    sum_i C[i, p_i] - sum_i C[i, s_i] <= sum_i slack_i =: gap,
    slack_i = C[i, p_i] + q_{p_i} - min_k (C[i, k] + q_k)  (in [0, eps]),

the duality gap of the prices (weak duality, `u_i = min_k (C[i, k] + q_k)`, `v = -q`). Phases
divide `eps` by `THETA`, keep the pairs that stay `eps`-happy and re-auction the others, down to
the float resolution of the sums ``C[i, j] + q_j`` (`KAPPA` units in the last place of the largest
price plus assigned cost), or stop earlier once the certified `gap` is below ``n`` such units.

Each round takes up to `K` unassigned persons from a stack (Jacobi bids inside the block, the
highest bid per object wins, ties to the lower block position), so a round costs ``K n``
operations plus ``O(K^2)``, and never a scatter over all `n`: the auction's long chains of
displacements late in a phase are sequential, and there a small dense step beats a full sweep.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._status import HasStatus, Status
from .._types import Array, MatrixLike, Scalar

K = 8  # persons bidding per round
THETA = 4.0  # epsilon reduction per phase
KAPPA = 4.0  # final epsilon, in units in the last place of the values compared


class AssignmentResult(HasStatus, eqx.Module):
    """An optimal assignment for a cost matrix `C` `(n, n)`.

    **Fields:** `permutation` `(n,)` int32 (row `i` goes to column ``permutation[i]``), `cost`
    (``sum_i C[i, permutation[i]]``), `gap` (certified bound: `cost` minus the optimum is at most
    `gap`, up to the rounding of the sums), `prices` `(n,)` (column duals, ``-v``), `status`
    (``NOT_CONVERGED`` when `max_iterations` ran out: `permutation` may then not be a
    permutation) and `iterations` (auction rounds).
    """

    permutation: Array
    cost: Scalar
    gap: Scalar
    prices: Array
    status: Array
    iterations: Array

    what = "linear_assignment"


def linear_assignment(cost: MatrixLike, *,
                      max_iterations: int | None = None) -> AssignmentResult:
    """Minimum-cost perfect matching of the rows and columns of `cost` `(n, n)`, in XLA.

    Exact up to the float resolution of the costs and prices (see `AssignmentResult.gap`); works
    under ``jit`` and ``vmap`` (one problem per call: ``vmap`` it over a batch) and keeps the
    dtype of `cost`. Not differentiable: gradients should treat the assignment as fixed.
    `max_iterations`: budget of auction rounds (`None`: ``100 n + 10000``).
    """
    cost = _checks.as_float_array(cost, "cost")
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1] or cost.shape[0] == 0:
        raise ValueError(f"`cost` must be a square matrix of shape (n, n) with n >= 1, got shape "
                         f"{tuple(cost.shape)}.")
    n = cost.shape[0]
    if max_iterations is None:
        max_iterations = 100 * n + 10000
    max_iterations = _checks.positive_int(max_iterations, "max_iterations")
    cost = jax.lax.stop_gradient(_checks.check_finite(cost, "cost"))
    return _auction(cost, max_iterations)


def _slack(cost, prices, owned):
    """Per-row slack of the current pairs (rows without a column: 0), and the assigned costs."""
    values = cost + prices[None, :]
    col = jnp.maximum(owned, 0)
    mine = jnp.take_along_axis(cost, col[:, None], axis=1)[:, 0]
    slack = jnp.maximum(mine + prices[col] - jnp.min(values, axis=1), 0)
    return jnp.where(owned >= 0, slack, 0), mine


def _auction(cost, max_iterations: int) -> AssignmentResult:
    n, dtype = cost.shape[0], cost.dtype
    k = min(K, n)
    inf = jnp.array(jnp.inf, dtype)
    cols = jnp.arange(n, dtype=jnp.int32)
    block = jnp.arange(k, dtype=jnp.int32)
    ulp = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny

    def bid_round(s):
        prices, owned, owner, stack, top, eps, rounds = s
        start = jnp.maximum(top - k, 0)
        rows = jax.lax.dynamic_slice(stack, (start,), (k,))
        valid = start + block < top
        # k row slices: XLA's CPU gather of whole rows is several times slower
        picked = [jax.lax.dynamic_slice_in_dim(cost, rows[i], 1) for i in range(k)]
        values = jnp.concatenate(picked) + prices[None, :]
        best = jnp.min(values, axis=1)
        # one pass over the block: first best column, and the second-best value (= best on ties)
        at_best = values == best[:, None]
        target = jnp.min(jnp.where(at_best, cols, n), axis=1)
        second = jnp.where(jnp.sum(at_best, axis=1) > 1, best,
                           jnp.min(jnp.where(at_best, inf, values), axis=1))
        old_price = prices[target]
        bid = jnp.maximum(old_price + (second - best) + eps, jnp.nextafter(old_price, inf))
        rival = (target[None, :] == target[:, None]) & valid[None, :]
        beaten = (bid[None, :] > bid[:, None]) | ((bid[None, :] == bid[:, None])
                                                  & (block[None, :] < block[:, None]))
        win = valid & ~jnp.any(rival & beaten, axis=1)
        loser = owner[target]
        to = jnp.where(win, target, n)
        prices = prices.at[to].set(bid, mode="drop")
        owner = owner.at[to].set(rows, mode="drop")
        owned = owned.at[jnp.where(win & (loser >= 0), loser, n)].set(-1, mode="drop")
        owned = owned.at[jnp.where(win, rows, n)].set(target, mode="drop")
        free = jnp.where(win, loser, rows)
        keep = valid & (free >= 0)
        slot = jnp.where(keep, jnp.cumsum(keep, dtype=jnp.int32) - 1, k)
        freed = jnp.zeros(k, jnp.int32).at[slot].set(free, mode="drop")
        stack = jax.lax.dynamic_update_slice(stack, freed, (start,))
        return prices, owned, owner, stack, start + jnp.sum(keep, dtype=jnp.int32), eps, rounds + 1

    def phase(s):
        prices, owned, owner, eps, eps_final, rounds, _ = s
        bad = owned < 0
        slot = jnp.where(bad, jnp.cumsum(bad, dtype=jnp.int32) - 1, n)
        stack = jnp.zeros(n, jnp.int32).at[slot].set(cols, mode="drop")
        inner = (prices, owned, owner, stack, jnp.sum(bad, dtype=jnp.int32), eps, rounds)
        prices, owned, owner, _, top, _, rounds = jax.lax.while_loop(
            lambda t: (t[4] > 0) & (t[6] < max_iterations), bid_round, inner)
        prices = prices - jnp.min(prices)  # prices matter up to a constant: keep them small
        slack, mine = _slack(cost, prices, owned)
        # resolution of the sums cost + price the auction compares
        eps_final = jnp.maximum(KAPPA * ulp * (jnp.max(prices) + jnp.max(jnp.abs(mine))), tiny)
        done = (top == 0) & ((eps <= eps_final) | (jnp.sum(slack) <= n * eps_final))
        eps = jnp.maximum(eps / THETA, eps_final)
        unhappy = ~done & (slack > eps)
        owner = owner.at[jnp.where(unhappy, owned, n)].set(-1, mode="drop")
        owned = jnp.where(unhappy, -1, owned)
        return prices, owned, owner, eps, eps_final, rounds, done

    span = jnp.max(cost) - jnp.min(cost)
    # epsilons stay normal numbers: a flushed subnormal would stall the bids
    eps0 = jnp.maximum(jnp.maximum(span / 64, KAPPA * ulp * jnp.max(jnp.abs(cost))), tiny)
    unassigned = jnp.full(n, -1, jnp.int32)
    start = (jnp.zeros(n, dtype), unassigned, unassigned, eps0, eps0, jnp.int32(0),
             jnp.array(False))
    prices, owned, _, _, eps_final, rounds, done = jax.lax.while_loop(
        lambda s: ~s[6] & (s[5] < max_iterations), phase, start)
    slack, mine = _slack(cost, prices, owned)
    status = jnp.where(done, Status.SUCCESS, Status.NOT_CONVERGED).astype(jnp.int32)
    return AssignmentResult(owned, jnp.sum(mine), jnp.sum(slack), prices, status, rounds)
