"""Entropic optimal transport between particle clouds, solved by ott-jax.

Decisions recorded here (ott-jax 0.6.0 with jax 0.10):
- ``SinkhornOutput.primal_cost`` is avoided: it costs several times the whole solve on CPU. The
  transport cost ``<P, C>`` is computed by ``SinkhornResult.transport_cost`` from the potentials.
- Online point clouds (``PointCloud(batch_size=...)``) are not used here; see the benchmark note.
- Momentum (over-relaxation) is ott-jax's constant ``acceleration.Momentum(start=0, value=w)``.
  `w` is a static Python number (it configures the solver, so each value compiles once), handed
  to ott-jax as a NumPy scalar in the data dtype: a value built with ``jnp`` inside the jitted
  solve is staged as a tracer, which ott-jax keeps in the solver's static pytree data and which
  then breaks its implicit-differentiation backward pass.
- Kernel mode (``lse_mode=False``, and the first try of the default ``lse_mode=None``) runs
  ott-jax's own Sinkhorn loop on a dense ``Geometry(kernel_matrix=K)`` whose ``apply_kernel`` is
  a plain matrix-vector product (`_DenseKernel`). ott-jax's ``Geometry.apply_kernel`` raises the
  whole kernel to the power ``epsilon / eps`` on every call (for epsilon schedules), an ``n m``
  ``pow`` per half-iteration that made its kernel mode slower than the log domain (measured
  3-6x at n = 4000); a ``PointCloud`` in kernel mode re-evaluates ``exp(-C / eps)`` on every call.
  With the kernel computed once, an iteration is two matrix-vector products, as in POT.
- Kernel mode is only trusted when checked: `_DenseKernel.update_scaling` divides without
  ott-jax's "0 -> 1" mask, so an underflowed ``K v`` becomes inf and stops the loop at the next
  error check instead of silently dropping a row's mass; the result must then have finite
  potentials and both marginals of its plan, recomputed stably from the potentials and the cost
  (``exp((f_i + g_j - C_ij) / eps)``, no underflowed kernel), within `threshold` (L1). Otherwise
  the default mode solves again in the log domain (a ``lax.cond``; under ``vmap`` it becomes a
  ``select`` and both solves run). The kernel route is skipped up front when some point's nearest
  cost exceeds half the dtype's exponent range times epsilon (its kernel row would be ~0), and
  when one ``(n, m)`` matrix would exceed `KERNEL_MAX_BYTES`.
- Above `KERNEL_MAX_BYTES` (or with `block_size`), the log domain runs on `BlockPointCloud`
  (`_block_geometry`): ott-jax's own loop, error check and implicit backward pass, with kernel
  products computed a block of rows at a time, so no `(n, m)` array exists. ott-jax's online
  ``PointCloud(batch_size=...)`` would do this but is broken with jax >= 0.9 (ott-jax issue 700).
  `SinkhornResult.transport_cost` and `barycentric_map` are block-wise too; `plan` and
  `cost_matrix` refuse past `KERNEL_MAX_BYTES` instead of allocating.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from ott.geometry import geometry, pointcloud
from ott.problems.linear import linear_problem
from ott.solvers.linear import acceleration, sinkhorn as ott_sinkhorn

from .. import _blocks, _checks
from .._status import HasStatus, Status, finite_status, raise_if_failed
from .._types import (
    Array,
    Pairwise,
    Particles,
    ParticlesLike,
    ParticlesM,
    ParticlesMLike,
    Scalar,
    ScalarLike,
    Weights,
    WeightsLike,
    WeightsM,
    WeightsMLike,
)
from ._block_geometry import BlockPointCloud, squared_distances
from ._ott import promoted

# Largest (n, m) matrix (bytes) for which the default mode tries the kernel route: it holds the
# cost and the kernel (2 n m entries) for the whole solve. 512 MiB: n = m = 11585 in float32.
# Above it the log domain runs on blocks of rows, and `SinkhornResult.plan` refuses.
KERNEL_MAX_BYTES = 2**29


def prepare(x, y, a, b, names=("x", "y")):
    """Checked clouds `(n, d)`, `(m, d)` and weights `(n,)`, `(m,)` (uniform when None)."""
    x = _checks.particles(x, names[0])
    y = _checks.particles(y, names[1]).astype(x.dtype)
    _checks.same_dimension(x, y, names)
    a = None if a is None else _checks.weights(a, x.shape[0], "a", dtype=x.dtype)
    b = None if b is None else _checks.weights(b, y.shape[0], "b", dtype=x.dtype)
    return x, y, a, b


def uniform(n: int, dtype) -> Array:
    return jnp.full((n,), 1 / n, dtype)


def default_epsilon(x, y) -> Scalar:
    """ott-jax's default regularisation, 1/20 of the mean of |x_i - y_j|^2 over all pairs, in the
    dtype of `x`.

    Computed in closed form, no (n, m) matrix: the mean over pairs is
    ``var(x) + var(y) + |mean(x) - mean(y)|^2`` (each variance the mean squared distance to the
    cloud's mean), the centred form of ``mean|x|^2 + mean|y|^2 - 2 <mean x, mean y>``, which does
    not cancel in float32 for clouds far from the origin. ott-jax's own default is float64 under
    x64 even for float32 clouds, which breaks its solver.
    """
    mx, my = jnp.mean(x, axis=0, keepdims=True), jnp.mean(y, axis=0, keepdims=True)
    mean_cost = (jnp.mean(jnp.sum((x - mx) ** 2, axis=1)) + jnp.mean(jnp.sum((y - my) ** 2, axis=1))
                 + jnp.sum((mx - my) ** 2))
    return (0.05 * mean_cost).astype(x.dtype)


def check_momentum(momentum, name: str = "momentum") -> float | None:
    """`None` (off) or a concrete number in [1, 2), returned as a Python float.

    Over-relaxation ``u <- (1 - w) u + w T(u)`` converges for 0 < w < 2 and only speeds Sinkhorn
    up for w >= 1; w = 1 is plain Sinkhorn.
    """
    if momentum is None:
        return None
    if _checks.is_traced(momentum):
        raise TypeError(
            f"`{name}` must be a concrete number (it configures the solver), got a traced "
            "array; pass it as a Python float, outside `jit`/`grad`."
        )
    if isinstance(momentum, bool | np.bool_) or isinstance(momentum, str):
        raise TypeError(f"`{name}` must be a number in [1, 2) or None, got {momentum!r}.")
    try:
        value = np.asarray(momentum, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a number in [1, 2) or None, got {momentum!r}.") from err
    if value.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar in [1, 2), got shape {value.shape}.")
    value = float(value)
    if not (np.isfinite(value) and 1.0 <= value < 2.0):
        raise ValueError(
            f"`{name}` must be in [1, 2) (over-relaxation weight; None turns it off), got "
            f"{momentum!r}."
        )
    return value


def check_options(*, epsilon=None, threshold=None, max_iterations=None, momentum=None,
                  lse_mode=None):
    """The Sinkhorn options shared by every transport function, checked once, in one place.

    `epsilon`, `threshold`: `None` or > 0 (a Python number is checked now, an array by
    ``error_if``); `max_iterations`: `None` or an integer >= 1; `momentum`: see
    `check_momentum`; `lse_mode`: `None` (automatic), `True` or `False`. Errors name the
    argument. Returns them checked, in this order.
    """
    epsilon = _checks.positive(epsilon, "epsilon")
    threshold = _checks.positive(threshold, "threshold")
    if max_iterations is not None:
        max_iterations = _checks.positive_int(max_iterations, "max_iterations")
    momentum = check_momentum(momentum)
    if lse_mode is not None and not isinstance(lse_mode, bool | np.bool_):
        raise TypeError(f"`lse_mode` must be None (automatic), True or False, got {lse_mode!r}.")
    lse_mode = None if lse_mode is None else bool(lse_mode)
    return epsilon, threshold, max_iterations, momentum, lse_mode


class SinkhornResult(HasStatus, eqx.Module):
    """Solution of entropic OT between `x` `(n, d)` and `y` `(m, d)` for the cost |x - y|^2.

    **Fields:** `cost` (entropic OT cost, scalar), `f` `(n,)` and `g` `(m,)` dual potentials,
    `status` (a [`Status`][flowjax_lab.Status] code: ``NOT_CONVERGED`` when the iteration budget
    ran out, ``NONFINITE`` when the iteration diverged), `iterations` (int), `epsilon` (the
    regularisation used), and the inputs. `converged`, `ok`, `message` and `raise_on_failure`
    read `status`.
    """

    cost: Scalar
    f: Weights
    g: WeightsM
    status: Array
    iterations: Array
    epsilon: Scalar
    x: Particles
    y: ParticlesM
    a: Weights
    b: WeightsM

    what = "sinkhorn"

    @property
    def converged(self) -> Array:
        """Boolean array: did the solve converge to a finite solution?"""
        return self.ok

    def cost_matrix(self, *, max_bytes: int | None = None) -> Pairwise:
        """|x_i - y_j|^2, shape `(n, m)`; refused (``ValueError``) when it would take more than
        `max_bytes` (default `KERNEL_MAX_BYTES`, 512 MiB)."""
        _check_dense(self.x, self.y, "cost_matrix", max_bytes)
        return self._dense_cost()

    def plan(self, *, max_bytes: int | None = None) -> Pairwise:
        """The entropic plan ``P_ij = exp((f_i + g_j - C_ij) / eps)``, shape `(n, m)`.

        (ott-jax's potentials absorb the weights: the plan's marginals are `a` and `b`.) Refused
        (``ValueError``) when the `(n, m)` array would take more than `max_bytes` (default
        `KERNEL_MAX_BYTES`, 512 MiB, n = m = 11585 in float32): `transport_cost` and
        `barycentric_map` compute what is usually wanted from it block by block.
        """
        _check_dense(self.x, self.y, "plan", max_bytes)
        return jnp.exp((self.f[:, None] + self.g[None, :] - self._dense_cost()) / self.epsilon)

    def transport_cost(self) -> Scalar:
        """``<P, C>``, the unregularised cost of the entropic plan, summed a block of rows at a
        time (no `(n, m)` array past `_blocks.PAIR_BUDGET_BYTES`)."""
        g, eps = self.g, self.epsilon

        def block(data, y_columns):
            xb, fb = data
            cost = squared_distances(xb, y_columns)
            return jnp.sum(jnp.exp((fb[:, None] + g[None, :] - cost) / eps) * cost, axis=1)

        return jnp.sum(_blocks.map_rows(block, (self.x, self.f), self.y, self._rows()))

    def barycentric_map(self) -> Particles:
        """The barycentric projection ``T(x_i) = sum_j P_ij y_j / sum_j P_ij``, `(n, d)`: the
        entropic transport map at the points `x`, computed a block of rows at a time.

        The plan's row sums are `a` once the solve has converged (its last update fits them), so
        this is ``sum_j P_ij y_j / a_i``; as a softmax over `j` of ``(g_j - C_ij) / eps`` it is a
        convex combination of the `y_j` (defined even where ``a_i = 0``).
        """
        g, eps = self.g, self.epsilon

        def block(xb, y_columns):
            weights = jax.nn.softmax((g[None, :] - squared_distances(xb, y_columns)) / eps, axis=1)
            return jnp.einsum("ij,kj->ik", weights, y_columns)

        return _blocks.map_rows(block, self.x, self.y, self._rows())

    def _dense_cost(self) -> Array:
        return jnp.sum((self.x[:, None, :] - self.y[None, :, :]) ** 2, axis=-1)

    def _rows(self) -> int:
        n, m = self.x.shape[0], self.y.shape[0]
        return _blocks.row_block(n, m, self.x.dtype)


def _check_dense(x, y, what: str, max_bytes) -> None:
    """Refuse an `(n, m)` array of `x`'s dtype larger than `max_bytes` (default
    `KERNEL_MAX_BYTES`), naming its size and the block-wise alternatives."""
    limit = KERNEL_MAX_BYTES if max_bytes is None else _checks.positive_int(max_bytes,
                                                                              "max_bytes")
    n, m = x.shape[0], y.shape[0]
    size = n * m * jnp.dtype(x.dtype).itemsize
    if size > limit:
        raise ValueError(
            f"`{what}()` would allocate an (n, m) = ({n}, {m}) array of {jnp.dtype(x.dtype).name}, "
            f"{_in_units(size)}, above `max_bytes` = {_in_units(limit)}. Use `transport_cost()` or "
            "`barycentric_map()` (block-wise), or pass a larger `max_bytes`."
        )


def _in_units(size: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def sinkhorn(
    x: ParticlesLike, y: ParticlesMLike, *, a: WeightsLike | None = None,
    b: WeightsMLike | None = None, epsilon: ScalarLike | None = None,
    threshold=1e-3, max_iterations=2000, momentum=None, lse_mode=None, block_size=None,
    throw=False,
) -> SinkhornResult:
    """Entropic OT between clouds `x` `(n, d)` and `y` `(m, d)` by Sinkhorn's algorithm (ott-jax).

    **Arguments:**
    - `a`, `b`: weights `(n,)`, `(m,)` (uniform if `None`).
    - `epsilon`: entropic regularisation (> 0); `None` uses 1/20 of the mean cost (ott-jax's
      default).
    - `threshold`: stopping tolerance on the L1 error of the plan's column marginal (checked
      every 10 iterations, ott-jax's default); `max_iterations`: iteration budget.
    - `momentum`: over-relaxation weight `w` in [1, 2) applied from the first iteration
      (ott-jax's constant ``Momentum``): each update is ``(1 - w) old + w new``. Same fixed point,
      so the same solution to the threshold, usually in fewer iterations (about 2.5x fewer at
      w = 1.5 on the benchmark problem); `None` (default) or 1 is plain Sinkhorn. Near 2 the
      iteration can oscillate or diverge (seen from 1.7 at n = 4000 in kernel mode and from
      about 1.85 at small epsilon in the log domain), which is reported in `status`. A Python
      number (static: each value compiles once).
    - `lse_mode`: `None` (default): kernel mode (the Gibbs kernel computed once, two
      matrix-vector products per iteration, as POT's ``ot.sinkhorn``) when epsilon allows it,
      its result checked (finite potentials, both marginals within `threshold`, recomputed in
      the log domain) and, when the check fails, solved again in the log domain: the speed of
      the kernel, the stability of the log domain. Costs a dense `(n, m)` kernel while the
      solve runs (above `KERNEL_MAX_BYTES` the log domain runs on blocks, see `block_size`),
      and compiles both solves; under ``vmap`` the choice becomes a ``select`` and both solves
      run (pass `lse_mode=True` or `False` there). `True`: log-sum-exp updates only (stable for any
      epsilon, no `(n, m)` array held across iterations). `False`: kernel mode only, failures
      reported in `status` (a dense kernel at any size).
    - `block_size`: `None` (default) chooses: above `KERNEL_MAX_BYTES` per `(n, m)` array the
      log domain runs on blocks of rows (`BlockPointCloud`: each kernel product recomputes the
      costs of one block of rows at a time, memory ``O((n + m) d + rows * max(n, m))`` with rows
      fitting `_blocks.PAIR_BUDGET_BYTES` and a cache-sized block), for the solve and its
      gradient; below it, as above. An integer >= 1 forces the log domain on blocks of that
      many rows at any size (not with `lse_mode=False`).
    - `throw`: raise the status message when the solve fails (``RuntimeError``; an ``error_if``
      under ``jit``) instead of only reporting it in `status`.
    """
    x, y, a, b = prepare(x, y, a, b)
    epsilon, threshold, max_iterations, momentum, lse_mode = check_options(
        epsilon=epsilon, threshold=threshold, max_iterations=max_iterations, momentum=momentum,
        lse_mode=lse_mode)
    if block_size is not None:
        block_size = _checks.positive_int(block_size, "block_size")
        if lse_mode is False:
            raise ValueError("`block_size` runs the log domain on blocks; it cannot be combined "
                             "with lse_mode=False (kernel mode).")
    a = uniform(x.shape[0], x.dtype) if a is None else a
    b = uniform(y.shape[0], x.dtype) if b is None else b
    epsilon = default_epsilon(x, y) if epsilon is None else jnp.asarray(epsilon, x.dtype)
    mode, block = _mode(lse_mode, block_size, x.shape[0], y.shape[0], x.dtype)
    result = _solve(x, y, a, b, epsilon, threshold, max_iterations, momentum, mode, block)
    return raise_if_failed(result, result.status, "sinkhorn") if throw else result


def _mode(lse_mode, block_size, n: int, m: int, dtype) -> tuple[str, int | None]:
    """The route and its rows per block: "log", "kernel", "auto" (kernel, checked, log as the
    fallback) with `None`, or "block" (log domain on `BlockPointCloud`) with the rows."""
    if block_size is not None:
        return "block", block_size
    if lse_mode is False:
        return "kernel", None
    if n * m * jnp.dtype(dtype).itemsize <= KERNEL_MAX_BYTES:
        return ("log" if lse_mode else "auto"), None
    return "block", _blocks.row_block(min(n, m), max(n, m), dtype)


@jax.tree_util.register_pytree_node_class
class _DenseKernel(geometry.Geometry):
    """A ``Geometry(kernel_matrix=K, epsilon=eps)`` whose kernel products are plain products.

    ott-jax's ``apply_kernel`` raises `K` to ``epsilon / eps`` on each call (for epsilon
    schedules, unused here) and its ``update_scaling`` turns a zero ``K v`` into 1, which hides
    an underflowed row; here ``K v`` and ``u K`` are matrix-vector products and a zero divides to
    inf, which ott-jax's loop reads as divergence.
    """

    def apply_kernel(self, vec, eps=None, axis=0):
        kernel = self.kernel_matrix
        return kernel @ vec if axis == 1 else vec @ kernel

    def update_scaling(self, scaling, marginal, iteration=None, axis=0):
        return marginal / self.apply_kernel(scaling, axis=axis)


def _cost_matrix(x, y) -> Array:
    """|x_i - y_j|^2 `(n, m)` (by the expansion ott-jax's ``SqEuclidean`` uses), >= 0."""
    cost = jnp.sum(x**2, axis=1)[:, None] + jnp.sum(y**2, axis=1)[None, :] - 2 * x @ y.T
    return jnp.maximum(cost, 0)


def _ott_status(out):
    """SUCCESS / NOT_CONVERGED / NONFINITE from an ott-jax output, int32."""
    # ott-jax stops as soon as the marginal error is inf and then reads the last, unfilled
    # slot of its error log (-1 < threshold) as convergence; a diverged run (too much
    # momentum, underflow in kernel mode) is NONFINITE, not a success.
    converged = jnp.where(out.converged, jnp.int32(Status.SUCCESS),
                          jnp.int32(Status.NOT_CONVERGED))
    diverged = ~(jnp.all(jnp.isfinite(out.errors)) & jnp.isfinite(out.reg_ot_cost))
    status = jnp.where(diverged, jnp.int32(Status.NONFINITE), converged)
    return finite_status(status, out.f, out.g)


def ott_solver(lse_mode: bool, threshold, max_iterations, momentum, dtype):
    """ott-jax's Sinkhorn with these options; `momentum` (or `None`) weighs every iteration
    from the first (no adaptive schedule)."""
    extra = {}
    if momentum is not None:
        value = np.asarray(momentum, dtype=dtype)
        extra["momentum"] = acceleration.Momentum(start=0, value=value)
    return ott_sinkhorn.Sinkhorn(lse_mode=lse_mode, threshold=threshold,
                                 max_iterations=max_iterations, **extra)


def pack(out, epsilon, dtype) -> tuple:
    """`SinkhornResult`'s fields before its inputs (cost, f, g, status, iterations, epsilon)
    from an ott-jax output."""
    return (out.reg_ot_cost, out.f, out.g, _ott_status(out),
            jnp.asarray(out.n_iters, jnp.int32), jnp.asarray(epsilon, dtype))


@eqx.filter_jit
def _solve(x, y, a, b, epsilon, threshold, max_iterations, momentum, mode, block):
    solver = lambda lse_mode: ott_solver(lse_mode, threshold, max_iterations, momentum, x.dtype)

    def log_solve(x, y, a, b, epsilon):
        geom = pointcloud.PointCloud(x, y, epsilon=epsilon)
        return pack(solver(True)(linear_problem.LinearProblem(geom, a=a, b=b)), geom.epsilon,
                    x.dtype)

    def block_solve(x, y, a, b, epsilon):
        geom = BlockPointCloud(x, y, epsilon=epsilon, batch_size=block)
        return pack(solver(True)(linear_problem.LinearProblem(geom, a=a, b=b)), geom.epsilon,
                    x.dtype)

    def kernel_solve(x, y, a, b, epsilon):
        cost = _cost_matrix(x, y)
        geom = _DenseKernel(kernel_matrix=jnp.exp(-cost / epsilon), epsilon=epsilon)
        out = pack(solver(False)(linear_problem.LinearProblem(geom, a=a, b=b)), epsilon, x.dtype)
        # Check the solution against the problem itself: both marginals of the plan, computed
        # stably from the potentials and the cost (no underflowed kernel entry), within threshold.
        reg_cost, f, g, status, iterations, eps = out
        plan = jnp.exp((jax.lax.stop_gradient(f)[:, None] + jax.lax.stop_gradient(g)[None, :]
                        - jax.lax.stop_gradient(cost)) / jax.lax.stop_gradient(epsilon))
        error = jnp.maximum(jnp.sum(jnp.abs(jnp.sum(plan, axis=1) - a)),
                            jnp.sum(jnp.abs(jnp.sum(plan, axis=0) - b)))
        bad = (status == Status.SUCCESS) & ~(error <= threshold)
        status = jnp.where(bad, jnp.int32(Status.NOT_CONVERGED), status)
        # Worth a log-domain solve: a kernel that broke down (inf/NaN) or a "converged" kernel
        # solve whose plan misses the marginals (underflowed kernel entries). A finite run out of
        # iterations is not: the log domain runs the same iterates, it would run out too.
        retry = bad | (status == Status.NONFINITE)
        return (reg_cost, f, g, status, iterations, eps), retry

    def auto_solve(x, y, a, b, epsilon):
        args = (x, y, a, b, epsilon)
        # Skip the kernel when some point's nearest cost is beyond half the exponent range: its
        # kernel row would be (near) zero, so the kernel solve would only fail.
        cost = jax.lax.stop_gradient(_cost_matrix(x, y) / epsilon)
        reach = jnp.maximum(jnp.max(jnp.min(cost, axis=1)), jnp.max(jnp.min(cost, axis=0)))
        limit = -0.5 * np.log(np.finfo(x.dtype).tiny)

        def skipped(*args):
            zeros = lambda v: jnp.zeros_like(v)
            return (jnp.zeros((), x.dtype), zeros(a), zeros(b), jnp.int32(Status.NONFINITE),
                    jnp.int32(0), jnp.asarray(epsilon, x.dtype)), jnp.array(True)

        kernel, retry = jax.lax.cond(reach < limit, kernel_solve, skipped, *args)
        return jax.lax.cond(retry, log_solve, lambda *_: kernel, *args)

    solve = {"log": log_solve, "kernel": lambda *args: kernel_solve(*args)[0],
             "auto": auto_solve, "block": block_solve}[mode]
    return SinkhornResult(*promoted(solve)(x, y, a, b, epsilon), x, y, a, b)
