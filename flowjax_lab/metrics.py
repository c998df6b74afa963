"""Measures of clouds and trajectories: moments, W2 to held-out samples, path and kinetic energy,
straightness, field evaluations to reach a W2 target, kernel discrepancies (MMD, energy
distance)."""

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp

from . import _blocks, _checks, transport
from ._simulate import simulate
from ._trajectory import Trajectory
from ._types import (
    ArrayLike,
    Matrix,
    ParticlesLike,
    ParticlesMLike,
    PathLike,
    Real,
    Scalar,
    ScalarLike,
    TimesLike,
    Weights,
)

SameShape = Real[ArrayLike, "*shape"] | list  # two of them: one shape


def covariance(x: ParticlesLike) -> Matrix:
    """Population covariance of a cloud `(n, d)`, shape `(d, d)`."""
    x = _checks.particles(x, "x")
    centred = x - jnp.mean(x, axis=0, keepdims=True)
    return centred.T @ centred / x.shape[0]


def relative_error(value: SameShape, reference: SameShape) -> Scalar:
    """Frobenius ``|value - reference| / |reference|``; `value` and `reference` of one shape."""
    value = _checks.as_float_array(value, "value")
    reference = _checks.as_float_array(reference, "reference").astype(value.dtype)
    if value.shape != reference.shape:
        raise ValueError(f"`value` and `reference` must have the same shape, got "
                         f"{tuple(value.shape)} and {tuple(reference.shape)}.")
    reference = _checks.fail_if(reference, lambda r: jnp.all(r == 0),
                                "`reference` must be non-zero for a relative error.")
    return jnp.linalg.norm(value - reference) / jnp.linalg.norm(reference)


def _saved_paths(xs, ts):
    """Saved clouds `xs` `(T, n, d)` at increasing times `ts` `(T,)`, T >= 2."""
    xs = _checks.as_float_array(xs, "xs")
    if xs.ndim != 3 or xs.shape[0] < 2:
        raise ValueError(f"`xs` must be at least two saved clouds of shape (T, n, d), got "
                         f"shape {tuple(xs.shape)}.")
    ts = _checks.times(ts, "ts", dtype=xs.dtype, min_length=2, strictly=True)
    if ts.shape != xs.shape[:1]:
        raise ValueError(f"`ts` must have shape ({xs.shape[0]},) like the saved clouds, got "
                         f"{tuple(ts.shape)}.")
    return xs, ts


def path_energy(xs: PathLike, ts: TimesLike) -> Scalar:
    """Mean kinetic energy ``E int |dx/dt|^2 dt`` of saved paths `xs` `(T, n, d)` at `ts` `(T,)`,
    by finite differences (a lower bound that is exact for straight, uniformly traversed paths)."""
    xs, ts = _saved_paths(xs, ts)
    dt = jnp.diff(ts)
    velocity = jnp.diff(xs, axis=0) / dt[:, None, None]
    return jnp.sum(jnp.mean(jnp.sum(velocity**2, axis=-1), axis=1) * dt)


def straightness(xs: PathLike, ts: TimesLike) -> Scalar:
    """``E |x(t1) - x(t0)|^2 / ((t1 - t0) E int |dx/dt|^2 dt)`` in (0, 1]; 1 for straight paths
    at constant speed. `xs` `(T, n, d)`, `ts` `(T,)`."""
    xs, ts = _saved_paths(xs, ts)
    span = ts[-1] - ts[0]
    displacement = jnp.mean(jnp.sum((xs[-1] - xs[0]) ** 2, axis=-1))
    return displacement / (span * path_energy(xs, ts))


def mean_displacement(x0: ParticlesLike, x1: ParticlesLike) -> Scalar:
    """``E |x1 - x0|^2`` over paired rows of two clouds `(n, d)`."""
    x0 = _checks.particles(x0, "x0", finite=False)
    x1 = _checks.particles(x1, "x1", finite=False).astype(x0.dtype)
    if x1.shape != x0.shape:
        raise ValueError(f"`x0` and `x1` must be paired clouds of the same shape, got "
                         f"{tuple(x0.shape)} and {tuple(x1.shape)}.")
    return jnp.mean(jnp.sum((x1 - x0) ** 2, axis=-1))


# Generative-flow metrics as the flow-matching papers report them (Tong et al., TMLR 2024).


def sample_w2(generated: ParticlesLike, held_out: ParticlesLike) -> Scalar:
    """Exact W2 between generated samples and held-out data, equal sizes `(n, d)` (optimal
    assignment; 1000-2000 points is the papers' setting)."""
    generated = _checks.particles(generated, "generated")
    held_out = _checks.particles(held_out, "held_out", dim=generated.shape[1])
    if held_out.shape[0] != generated.shape[0]:
        raise ValueError(
            f"`generated` and `held_out` must hold the same number of points, got "
            f"{generated.shape[0]} and {held_out.shape[0]}."
        )
    return transport.w2(generated, held_out.astype(generated.dtype), method="exact")


class _WithEnergy(eqx.Module):
    """The field on ``[x, e]`` with ``de/dt = |v(t, x)|^2``."""

    field: object

    def __call__(self, t, y, args=None):
        v = self.field(t, y[:, :-1], args)
        return jnp.concatenate([v, jnp.sum(v**2, axis=1, keepdims=True)], axis=1)


def kinetic_energy(field, x0: ParticlesLike, *, steps=None, solver=None, rtol=1e-5, atol=1e-5,
                   args=None, saveat=None, per_particle: bool = False
                   ) -> tuple[Scalar | Weights, Trajectory]:
    """``E int_0^1 |v_t(x_t)|^2 dt`` along the flow of `field` from `x0` `(n, d)`, integrated
    during the solve (with fixed Euler `steps` it is the Riemann sum the papers log).

    **Returns:** `(energy, trajectory)`: the mean over the particles, or with `per_particle`
    each particle's ``int_0^1 |v_t(x_t)|^2 dt`` `(n,)` (their spread gives the mean's sampling
    error); the trajectory holds the particles only.
    """
    x0 = _checks.particles(x0, "x0")
    solver = solver or ("tsit5" if steps is None else "euler")
    y0 = jnp.concatenate([x0, jnp.zeros((x0.shape[0], 1), x0.dtype)], axis=1)
    traj = simulate(_WithEnergy(field), y0, steps=steps, solver=solver, rtol=rtol, atol=atol,
                    args=args, saveat=saveat)
    energies = traj.xs[-1, :, -1]
    energy = energies if per_particle else jnp.mean(energies)
    return energy, eqx.tree_at(lambda tr: tr.xs, traj, traj.xs[..., :-1])


def normalized_path_energy(energy: ScalarLike, w2: ScalarLike) -> Scalar:
    """``|energy - W2^2| / W2^2``: 0 when the flow's kinetic energy is the optimal one."""
    _checks.positive(w2, "w2")
    w2_sq = jnp.asarray(w2) ** 2
    return jnp.abs(jnp.asarray(energy) - w2_sq) / w2_sq


def nfe_for_w2(field, x0: ParticlesLike, held_out: ParticlesLike, target_w2, *,
               steps=(1, 2, 4, 8, 16, 32, 64, 128), solver="euler", args=None) -> dict:
    """The fewest field evaluations whose fixed-step samples reach ``W2 <= target_w2``.

    Runs `solver` with each number of `steps` from `x0` and measures [`sample_w2`][] to
    `held_out`. **Returns:** ``{"nfe": int or None, "nfes": [...], "w2": [...]}``.
    """
    _checks.positive(target_w2, "target_w2")
    x0 = _checks.particles(x0, "x0")
    held_out = _checks.particles(held_out, "held_out", dim=x0.shape[1])  # before any solve
    steps = tuple(steps)
    if not steps:
        raise ValueError("`steps` must be a non-empty sequence of step counts.")
    nfes, values = [], []
    for count in steps:
        traj = simulate(field, x0, steps=_checks.positive_int(count, "steps"), solver=solver,
                        args=args)
        nfes.append(int(traj.stats["num_field_evals"]))
        values.append(float(sample_w2(traj.x1, held_out)))
    reached = [nfe for nfe, value in zip(nfes, values, strict=True) if value <= target_w2]
    return {"nfe": reached[0] if reached else None, "nfes": nfes, "w2": values}


# Kernel discrepancies between samples (no assignment, any sizes), in blocks of at most
# chunk_size x chunk_size pairs; their gradients recompute the blocks (memory linear in n + m).


def _pair_sum(kernel, x, y, chunk_size: int) -> Scalar:
    """``sum_{i,j} kernel(|x_i - y_j|^2)`` over `x` `(n, d)`, `y` `(m, d)`; `kernel` maps an
    array of squared distances elementwise."""
    block = (min(chunk_size, x.shape[0]), min(chunk_size, y.shape[0]))
    ones = jnp.ones(y.shape[:1], x.dtype)
    return jnp.sum(_blocks.radial_pair_sum(kernel, x, y, ones, block))


def _distance(squared):
    """``sqrt`` with a zero gradient at 0 (the diagonal of a cloud against itself)."""
    positive = squared > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, squared, 1)), 0)


def _two_clouds(x, y, chunk_size):
    x = _checks.particles(x, "x")
    y = _checks.particles(y, "y", dim=x.shape[1]).astype(x.dtype)
    return x, y, _checks.positive_int(chunk_size, "chunk_size")


def median_bandwidth(x: ParticlesLike, y: ParticlesMLike, *,
                     max_points: int = 1000) -> Scalar:
    """The median heuristic: the median distance between distinct points of the pooled sample
    (its first `max_points` rows, half from each cloud). `x` `(n, d)`, `y` `(m, d)`."""
    x, y, _ = _two_clouds(x, y, 1)
    half = _checks.positive_int(max_points, "max_points", minimum=2) // 2
    return _median_distance(jnp.concatenate([x[:half], y[:half]]))


@jax.jit
def _median_distance(pooled):
    squared = jnp.sum((pooled[:, None, :] - pooled[None, :, :]) ** 2, axis=-1)
    upper = jnp.triu_indices(pooled.shape[0], k=1)
    return jnp.sqrt(jnp.median(squared[upper]))


def mmd_squared(x: ParticlesLike, y: ParticlesMLike, *, bandwidth: ScalarLike | str = 1.0,
                unbiased: bool = True, chunk_size: int = 1024) -> Scalar:
    """Squared maximum mean discrepancy for the Gaussian kernel
    ``exp(-|x - y|^2 / (2 bandwidth^2))`` between clouds `x` `(n, d)` and `y` `(m, d)`.

    `bandwidth`: a positive number or ``"median"`` ([`median_bandwidth`][]). `unbiased`: the
    U-statistic (self-pairs left out; unbiased, may be slightly negative) or the V-statistic
    (the MMD between the two empirical measures, >= 0). Compare with
    [`theory.gaussian_mmd_squared`][].
    """
    x, y, chunk_size = _two_clouds(x, y, chunk_size)
    if isinstance(bandwidth, str):
        _checks.choice(bandwidth, ["median"], "bandwidth")
        h = median_bandwidth(x, y)
    else:
        h = jnp.asarray(_checks.positive(bandwidth, "bandwidth"), x.dtype)
    n, m = x.shape[0], y.shape[0]
    if unbiased and min(n, m) < 2:
        raise ValueError(f"the unbiased MMD needs two points per cloud, got n = {n}, m = {m}.")
    return _mmd_squared(x, y, h, int(unbiased), chunk_size)


@partial(jax.jit, static_argnums=(3, 4))
def _mmd_squared(x, y, h, self_pairs, chunk_size):
    kernel = lambda squared: jnp.exp(-squared / (2 * h**2))
    n, m = x.shape[0], y.shape[0]  # k(0) = 1: self_pairs = 1 removes each diagonal
    xx = (_pair_sum(kernel, x, x, chunk_size) - self_pairs * n) / (n * (n - self_pairs))
    yy = (_pair_sum(kernel, y, y, chunk_size) - self_pairs * m) / (m * (m - self_pairs))
    return xx + yy - 2 * _pair_sum(kernel, x, y, chunk_size) / (n * m)


def energy_distance(x: ParticlesLike, y: ParticlesMLike, *, chunk_size: int = 1024) -> Scalar:
    """Squared energy distance ``2 E|X - Y| - E|X - X'| - E|Y - Y'|`` between the empirical
    measures of `x` `(n, d)` and `y` `(m, d)`: >= 0, zero exactly when the measures are equal,
    and the MMD of the kernel ``-|x - y|``, with no bandwidth to choose."""
    return _energy_distance(*_two_clouds(x, y, chunk_size))


@partial(jax.jit, static_argnums=2)
def _energy_distance(x, y, chunk_size):
    n, m = x.shape[0], y.shape[0]
    return (2 * _pair_sum(_distance, x, y, chunk_size) / (n * m)
            - _pair_sum(_distance, x, x, chunk_size) / n**2
            - _pair_sum(_distance, y, y, chunk_size) / m**2)
