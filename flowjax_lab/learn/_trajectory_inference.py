"""Trajectory inference: recover a potential whose gradient flow carries each snapshot of a
population to the next (as with single-cell snapshots), with a Sinkhorn-divergence loss
differentiated through ``simulate``."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._simulate import simulate
from .._types import Key, Particles, ParticlesLike, Scalar
from ..transport import sinkhorn_divergence


class GradientPotential(eqx.Module):
    """A scalar network ``psi: R^d -> R``; called as a field it is the velocity ``-grad psi``
    on every particle (time-homogeneous).

    **Arguments:** `dim`; `width`, `depth` of the MLP (tanh); `key`; `dtype`.
    """

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)

    def __init__(self, dim: int, *, width: int = 32, depth: int = 2, key: Key, dtype=None):
        self.dim = _checks.positive_int(dim, "dim")
        dtype = _checks.float_dtype(dtype)
        self.mlp = eqx.nn.MLP(dim, "scalar", _checks.positive_int(width, "width"),
                              _checks.positive_int(depth, "depth", minimum=0),
                              activation=jnp.tanh, key=_checks.key(key), dtype=dtype)

    def potential(self, x) -> Scalar:
        """``psi(x)`` of one point `(d,)`."""
        return self.mlp(x)

    def __call__(self, t, x, args=None) -> Particles:
        return -jax.vmap(jax.grad(self.potential))(x.astype(self.mlp.layers[0].weight.dtype))


class SnapshotLoss(eqx.Module):
    """``sum_k S_eps(Phi_{t_k -> t_{k+1}}(X_k), X_{k+1})``: each snapshot `X_k`, pushed by the
    model's flow to the next snapshot time, should match the next snapshot in Sinkhorn
    divergence. Called as ``loss(model, key)`` (a mini-batch of each snapshot is drawn from
    `key`), the shape ``learn.fit`` expects.

    **Arguments:**
    - `snapshots`: clouds `(K, n, d)` observed at `times` `(K,)` (increasing), K >= 2.
    - `batch`: particles drawn per snapshot and step (`None`: all of them).
    - `epsilon`: entropic regularisation of the Sinkhorn divergence.
    - `steps`: fixed Heun steps of ``simulate`` per transition.
    """

    snapshots: jax.Array
    times: jax.Array
    batch: int | None = eqx.field(static=True)
    epsilon: float = eqx.field(static=True)
    steps: int = eqx.field(static=True)

    def __init__(self, snapshots, times, *, batch=None, epsilon=0.05, steps=8):
        snapshots = _checks.as_float_array(snapshots, "snapshots")
        if snapshots.ndim != 3 or snapshots.shape[0] < 2:
            raise ValueError("`snapshots` must have shape (K, n, d) with K >= 2 snapshots, got "
                             f"{tuple(snapshots.shape)}.")
        self.snapshots = _checks.check_finite(snapshots, "snapshots")
        times = _checks.as_float_array(times, "times")
        if times.shape != snapshots.shape[:1]:
            raise ValueError(f"`times` must have shape ({snapshots.shape[0]},), one per "
                             f"snapshot, got {tuple(times.shape)}.")
        self.times = _checks.times(times, "times", dtype=snapshots.dtype, strictly=True)
        n = snapshots.shape[1]
        self.batch = None if batch is None else min(_checks.positive_int(batch, "batch"), n)
        _checks.positive(epsilon, "epsilon")
        self.epsilon = float(epsilon)
        self.steps = _checks.positive_int(steps, "steps")

    def __call__(self, model, key) -> Scalar:
        n = self.snapshots.shape[1]

        def transition(total, k):  # one compiled transition, scanned over the K - 1 of them
            keys = jax.random.split(jax.random.fold_in(key, k))
            x, y = self.snapshots[k], self.snapshots[k + 1]
            if self.batch is not None:
                x = x[jax.random.choice(keys[0], n, (self.batch,), replace=False)]
                y = y[jax.random.choice(keys[1], n, (self.batch,), replace=False)]
            pushed = simulate(model, x, t0=self.times[k], t1=self.times[k + 1],
                              steps=self.steps, solver="heun").x1
            return total + sinkhorn_divergence(pushed, y, epsilon=self.epsilon), None

        start = jnp.zeros((), self.snapshots.dtype)
        return jax.lax.scan(transition, start, jnp.arange(self.snapshots.shape[0] - 1))[0]


def velocity_error(field, reference, x: ParticlesLike) -> Scalar:
    """Relative error ``|v - v_ref| / |v_ref|`` (Frobenius over the cloud `x` `(n, d)`) of two
    fields ``f(t, x, args)``, evaluated at t = 0."""
    x = _checks.particles(x, "x")
    v, v_ref = field(0.0, x), reference(0.0, x)
    return jnp.linalg.norm(v - v_ref) / jnp.linalg.norm(v_ref)
