"""Measures of clouds and trajectories: moments, W2 to held-out samples, path and kinetic energy,
straightness, field evaluations to reach a W2 target."""

import equinox as eqx
import jax.numpy as jnp

from . import _checks, transport
from ._simulate import simulate
from ._trajectory import Trajectory
from ._types import Array, Matrix, Particles, Scalar


def covariance(x) -> Matrix:
    """Population covariance of a cloud `(n, d)`, shape `(d, d)`."""
    x = _checks.particles(x, "x")
    centred = x - jnp.mean(x, axis=0, keepdims=True)
    return centred.T @ centred / x.shape[0]


def relative_error(value, reference) -> Scalar:
    """Frobenius ``|value - reference| / |reference|``."""
    value, reference = jnp.asarray(value), jnp.asarray(reference)
    return jnp.linalg.norm(value - reference) / jnp.linalg.norm(reference)


def path_energy(xs, ts) -> Scalar:
    """Mean kinetic energy ``E int |dx/dt|^2 dt`` of saved paths `xs` `(T, n, d)` at `ts` `(T,)`,
    by finite differences (a lower bound that is exact for straight, uniformly traversed paths)."""
    xs = jnp.asarray(xs)
    dt = jnp.diff(jnp.asarray(ts, xs.dtype))
    velocity = jnp.diff(xs, axis=0) / dt[:, None, None]
    return jnp.sum(jnp.mean(jnp.sum(velocity**2, axis=-1), axis=1) * dt)


def straightness(xs, ts) -> Scalar:
    """``E |x(t1) - x(t0)|^2 / ((t1 - t0) E int |dx/dt|^2 dt)`` in (0, 1]; 1 for straight paths
    at constant speed. `xs` `(T, n, d)`, `ts` `(T,)`."""
    xs = jnp.asarray(xs)
    span = jnp.asarray(ts[-1] - ts[0], xs.dtype)
    displacement = jnp.mean(jnp.sum((xs[-1] - xs[0]) ** 2, axis=-1))
    return displacement / (span * path_energy(xs, ts))


def mean_displacement(x0: Particles, x1: Particles) -> Array:
    """``E |x1 - x0|^2`` over paired rows."""
    return jnp.mean(jnp.sum((jnp.asarray(x1) - jnp.asarray(x0)) ** 2, axis=-1))


# Generative-flow metrics as the flow-matching papers report them (Tong et al., TMLR 2024).


def sample_w2(generated, held_out) -> Scalar:
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


def kinetic_energy(field, x0, *, steps=None, solver=None, rtol=1e-5, atol=1e-5, args=None,
                   saveat=None) -> tuple[Scalar, Trajectory]:
    """``E int_0^1 |v_t(x_t)|^2 dt`` along the flow of `field` from `x0` `(n, d)`, integrated
    during the solve (with fixed Euler `steps` it is the Riemann sum the papers log).

    **Returns:** `(energy, trajectory)`; the trajectory holds the particles only.
    """
    x0 = _checks.particles(x0, "x0")
    solver = solver or ("tsit5" if steps is None else "euler")
    y0 = jnp.concatenate([x0, jnp.zeros((x0.shape[0], 1), x0.dtype)], axis=1)
    traj = simulate(_WithEnergy(field), y0, steps=steps, solver=solver, rtol=rtol, atol=atol,
                    args=args, saveat=saveat)
    energy = jnp.mean(traj.xs[-1, :, -1])
    return energy, eqx.tree_at(lambda tr: tr.xs, traj, traj.xs[..., :-1])


def normalized_path_energy(energy, w2) -> Scalar:
    """``|energy - W2^2| / W2^2``: 0 when the flow's kinetic energy is the optimal one."""
    w2_sq = jnp.asarray(w2) ** 2
    return jnp.abs(jnp.asarray(energy) - w2_sq) / w2_sq


def nfe_for_w2(field, x0, held_out, target_w2, *, steps=(1, 2, 4, 8, 16, 32, 64, 128),
               solver="euler", args=None) -> dict:
    """The fewest field evaluations whose fixed-step samples reach ``W2 <= target_w2``.

    Runs `solver` with each number of `steps` from `x0` and measures [`sample_w2`][] to
    `held_out`. **Returns:** ``{"nfe": int or None, "nfes": [...], "w2": [...]}``.
    """
    _checks.positive(target_w2, "target_w2")
    nfes, values = [], []
    for count in steps:
        traj = simulate(field, x0, steps=_checks.positive_int(count, "steps"), solver=solver,
                        args=args)
        nfes.append(int(traj.stats["num_field_evals"]))
        values.append(float(sample_w2(traj.x1, held_out)))
    reached = [nfe for nfe, value in zip(nfes, values, strict=True) if value <= target_w2]
    return {"nfe": reached[0] if reached else None, "nfes": nfes, "w2": values}
