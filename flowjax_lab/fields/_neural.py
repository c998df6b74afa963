"""Learned fields: a time-conditioned MLP, and OT-Flow's potential network with its exact trace.

``MLPField`` is the velocity ``v(t, x_i) = MLP([x_i, t])`` applied to every particle.
``OTFlowPotential`` is the scalar network of OT-Flow (Onken et al., AAAI 2021) and of the neural MFG
solver (Ruthotto et al., PNAS 2020),

    Phi(s) = w^T N(s) + 1/2 s^T A^T A s + c^T s + b,   s = [x, t],

with ``N`` a residual network ``u_0 = sigma(K_0 s + b_0)``, ``u_i = u_{i-1} + h sigma(K_i u_{i-1}
+ b_i)``, ``h = 1 / (layers - 1)``, and ``sigma(a) = log(2 cosh a)`` (so ``sigma' = tanh``). As a
field it is the velocity ``-grad_x Phi``. ``OTFlowPotential.gradient_and_laplacian`` returns
``grad_x Phi``, ``d Phi / dt`` and ``tr(grad_x^2 Phi)`` together from one forward and one backward
sweep, with the trace accumulated layer by layer in O(n m^2 d), as in OT-Flow's ``trHess``.
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._types import Array, Key, Particles, ParticlesArray, ScalarLike, Weights


def _with_time(t, x):
    """``[x, t]`` for every particle, shape `(n, d + 1)`."""
    return jnp.concatenate([x, jnp.full((x.shape[0], 1), t, x.dtype)], axis=1)


class MLPField(eqx.Module):
    """The field ``v(t, x_i) = MLP([x_i, t])`` on a cloud `(n, dim)`.

    **Arguments:**
    - `dim`: particle dimension d.
    - `width`, `depth`: hidden width and number of hidden layers of the MLP.
    - `activation`: smooth activation (default `tanh`; a smooth field keeps adaptive solvers cheap).
    - `zero_last`: start the last layer at zero, so that the initial flow is the identity.
    - `key`: PRNG key; `dtype`: parameter dtype (the default float if `None`).
    """

    mlp: eqx.nn.MLP
    dim: int = eqx.field(static=True)

    def __init__(self, dim: int, *, width: int = 32, depth: int = 2,
                 activation: Callable = jnp.tanh, zero_last: bool = False, key: Key, dtype=None):
        self.dim = _checks.positive_int(dim, "dim")
        mlp = eqx.nn.MLP(dim + 1, dim, _checks.positive_int(width, "width"),
                         _checks.positive_int(depth, "depth", minimum=0), activation=activation,
                         key=_checks.key(key), dtype=_checks.float_dtype(dtype))
        if zero_last:
            mlp = eqx.tree_at(lambda m: (m.layers[-1].weight, m.layers[-1].bias), mlp,
                              replace_fn=jnp.zeros_like)
        self.mlp = mlp

    def __call__(self, t: ScalarLike, x: ParticlesArray, args=None) -> Particles:
        return jax.vmap(self.mlp)(_with_time(jnp.asarray(t, x.dtype), x))


def _sigma(a):
    """``log(2 cosh a)``, computed stably."""
    return jnp.abs(a) + jnp.log1p(jnp.exp(-2 * jnp.abs(a)))


class OTFlowPotential(eqx.Module):
    """OT-Flow's potential ``Phi(x, t)``; called as a field it is the velocity ``-grad_x Phi``.

    **Arguments:**
    - `dim`: particle dimension d.
    - `width`: hidden width m of the residual network.
    - `layers`: number of residual-network layers (OT-Flow's nTh, at least 2).
    - `rank`: rank of the quadratic term ``A^T A`` (capped at d + 1; OT-Flow uses 10).
    - `key`: PRNG key; `dtype`: parameter dtype.

    Initialisation follows OT-Flow: ``K_i, b_i`` uniform in ``+-1/sqrt(fan_in)``, ``w = 1``,
    ``A`` Xavier-uniform, ``c = 0``, ``b = 0``.
    """

    K0: Array  # (m, d + 1)
    b0: Array  # (m,)
    K: Array  # (layers - 1, m, m)
    bK: Array  # (layers - 1, m)
    w: Array  # (m,)
    A: Array  # (r, d + 1)
    c: Array  # (d + 1,)
    b: Array  # ()
    dim: int = eqx.field(static=True)

    def __init__(self, dim: int, *, width: int = 32, layers: int = 2, rank: int = 10, key: Key,
                 dtype=None):
        dim = self.dim = _checks.positive_int(dim, "dim")
        m = _checks.positive_int(width, "width")
        layers = _checks.positive_int(layers, "layers", minimum=2)
        r = min(_checks.positive_int(rank, "rank"), dim + 1)
        dtype = _checks.float_dtype(dtype)
        k0, kb0, kk, kbk, ka = jax.random.split(_checks.key(key), 5)
        uniform = lambda k, shape, bound: jax.random.uniform(k, shape, dtype, -bound, bound)
        self.K0 = uniform(k0, (m, dim + 1), 1 / math.sqrt(dim + 1))
        self.b0 = uniform(kb0, (m,), 1 / math.sqrt(dim + 1))
        self.K = uniform(kk, (layers - 1, m, m), 1 / math.sqrt(m))
        self.bK = uniform(kbk, (layers - 1, m), 1 / math.sqrt(m))
        self.w = jnp.ones(m, dtype)
        self.A = uniform(ka, (r, dim + 1), math.sqrt(6 / (r + dim + 1)))
        self.c = jnp.zeros(dim + 1, dtype)
        self.b = jnp.zeros((), dtype)

    @property
    def step(self) -> float:
        return 1 / self.K.shape[0]

    def _check(self, x):
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"`x` must have shape (n, {self.dim}) for this potential, got {tuple(x.shape)}."
            )

    def value(self, t, x) -> Array:
        """``Phi(x_i, t)`` for every particle, shape `(n,)`."""
        self._check(x)
        s = _with_time(jnp.asarray(t, x.dtype), x)
        u = _sigma(s @ self.K0.T + self.b0[None])
        for i in range(self.K.shape[0]):
            u = u + self.step * _sigma(u @ self.K[i].T + self.bK[i][None])
        quad = 0.5 * jnp.sum((s @ self.A.T) ** 2, axis=1)
        return u @ self.w + quad + s @ self.c + self.b

    def gradient_and_laplacian(self, t, x) -> tuple[Array, Array, Array]:
        """``grad_x Phi`` `(n, d)`, ``d Phi / dt`` `(n,)` and ``tr(grad_x^2 Phi)`` `(n,)`, exactly.

        One forward sweep stores the pre-activations; the backward sweep gives the gradients
        ``z_i = d Phi / d u_i``; the trace adds, layer by layer,
        ``h sum_j sigma''(a_i)_j z_ij |(K_i J_{i-1})_j|^2`` where ``J_i = d u_i / d x`` is carried
        forward (shape `(n, m, d)`).
        """
        self._check(x)
        d, h = self.dim, self.step
        s = _with_time(jnp.asarray(t, x.dtype), x)
        pre = [s @ self.K0.T + self.b0[None]]  # a_0 (n, m)
        u = _sigma(pre[0])
        for i in range(self.K.shape[0]):
            pre.append(u @ self.K[i].T + self.bK[i][None])
            u = u + h * _sigma(pre[-1])
        # Backward sweep: z_i = d Phi / d u_i, from z_last = w.
        z = [jnp.broadcast_to(self.w[None], pre[0].shape)]
        for i in reversed(range(self.K.shape[0])):
            z.insert(0, z[0] + h * (jnp.tanh(pre[i + 1]) * z[0]) @ self.K[i])
        AtA = self.A.T @ self.A
        grad_s = (jnp.tanh(pre[0]) * z[0]) @ self.K0 + s @ AtA + self.c[None]
        # Forward sweep of the trace.
        curvature = lambda a: 1 - jnp.tanh(a) ** 2  # sigma''
        K0x = self.K0[:, :d]
        trace = (curvature(pre[0]) * z[0]) @ jnp.sum(K0x**2, axis=1)
        jac = jnp.tanh(pre[0])[:, :, None] * K0x[None]  # J_0 (n, m, d)
        for i in range(self.K.shape[0]):
            kj = jnp.einsum("jk,nkd->njd", self.K[i], jac)
            trace = trace + h * jnp.sum(curvature(pre[i + 1]) * z[i + 1] * jnp.sum(kj**2, axis=2),
                                        axis=1)
            jac = jac + h * jnp.tanh(pre[i + 1])[:, :, None] * kj
        trace = trace + jnp.trace(AtA[:d, :d])
        return grad_s[:, :d], grad_s[:, d], trace

    def autodiff_laplacian(self, t, x) -> Array:
        """``tr(grad_x^2 Phi)`` by dense autodiff (``jacfwd(grad)`` per particle), shape `(n,)`:
        the reference for ``gradient_and_laplacian`` and its benchmark peer."""
        self._check(x)
        phi = lambda xi: self.value(t, xi[None])[0]
        return jax.vmap(lambda xi: jnp.trace(jax.jacfwd(jax.grad(phi))(xi)))(x)

    def __call__(self, t: ScalarLike, x: ParticlesArray, args=None) -> Particles:
        return -self.gradient_and_laplacian(t, x)[0]

    def divergence(self, t: ScalarLike, x: ParticlesArray, args=None) -> Weights:
        """Divergence of the velocity ``-grad_x Phi``: ``-tr(grad_x^2 Phi)``, shape `(n,)`."""
        return -self.gradient_and_laplacian(t, x)[2]
