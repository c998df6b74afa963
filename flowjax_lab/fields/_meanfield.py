"""Mean-field networks: neurons are particles moved by the Wasserstein gradient of the risk."""

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _checks
from .._types import (
    Array,
    ArrayLike,
    Matrix,
    Particles,
    ParticlesArray,
    ParticlesLike,
    Real,
    Scalar,
)
from ..theory._linear_network import CrossMoment, InputMoment, risk_scale_argument

ACTIVATIONS = {"relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}

Targets = Real[ArrayLike, "n *k"] | list  # `(n,)` or `(n, k)`


def _data(z, y, names=("z", "y")):
    z = _checks.particles(z, names[0])
    y = _checks.as_float_array(y, names[1]).astype(z.dtype)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != z.shape[0]:
        raise ValueError(f"`{names[1]}` must have shape ({z.shape[0]},) or ({z.shape[0]}, k) to "
                         f"match `{names[0]}` {tuple(z.shape)}, got {tuple(y.shape)}.")
    return z, _checks.check_finite(y, names[1])


class LinearNetworkField(eqx.Module):
    """Neurons ``theta_i = (u_i, v_i)`` (rows of `x`, shape `(n, d_in + d_out)`) of the linear
    network ``f(z) = M z``, ``M = 1/n sum_i v_i u_i^T``, moving by the Wasserstein gradient of
    the risk ``R = risk_scale * E|y - M z|^2``: ``du_i/dt = -G^T v_i``, ``dv_i/dt = -G u_i``
    with ``G = 2 risk_scale (M Szz - Syz)``. The default ``risk_scale = 1`` is the risk (no 1/2)
    of Prop. 6.2, eq. (23) in Peyré, "Optimal and Diffusion Transports in Machine Learning";
    ``risk_scale = 0.5`` is ``1/2 E|y - M z|^2``, the same flow at half the speed. See
    ``theory.linear_network_covariance`` (same convention, same `risk_scale`) for the Gaussian
    closure.

    **Arguments:** `Szz`: input second moment `(d_in, d_in)`; `Syz`: cross moment
    `(d_out, d_in)`; `risk_scale`: a positive float (default 1.0). Build the moments from data
    with [`LinearNetworkField.from_data`][].
    """

    Szz: Matrix
    Syz: Array
    risk_scale: float | Array

    def __init__(self, Szz: InputMoment, Syz: CrossMoment, *, risk_scale=1.0):
        self.risk_scale = risk_scale_argument(risk_scale)
        self.Szz = _checks.covariance(Szz, "Szz")
        Syz = _checks.as_float_array(Syz, "Syz").astype(self.Szz.dtype)
        if Syz.ndim != 2 or Syz.shape[1] != self.Szz.shape[0]:
            raise ValueError(f"`Syz` must have shape (d_out, {self.Szz.shape[0]}), "
                             f"got {tuple(Syz.shape)}.")
        self.Syz = _checks.check_finite(Syz, "Syz")

    @classmethod
    def from_data(cls, z: ParticlesLike, y: Targets, *,
                  risk_scale=1.0) -> "LinearNetworkField":
        """Moments ``Szz = z^T z / N``, ``Syz = y^T z / N`` of samples `z` `(N, d_in)`,
        `y` `(N, d_out)` or `(N,)`; `risk_scale` as in the constructor."""
        z, y = _data(z, y)
        return cls(z.T @ z / z.shape[0], y.T @ z / z.shape[0], risk_scale=risk_scale)

    @property
    def d_in(self) -> int:
        return self.Szz.shape[0]

    def _check(self, x):
        width = self.d_in + self.Syz.shape[0]
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"neurons `x` must have shape (n, {width}) = (n, d_in + d_out), "
                             f"got {tuple(x.shape)}.")

    def predictor(self, x) -> Array:
        """``M = 1/n sum_i v_i u_i^T``, shape `(d_out, d_in)`."""
        self._check(x)
        u, v = x[:, : self.d_in], x[:, self.d_in :]
        return v.T @ u / x.shape[0]

    def risk(self, x: ParticlesArray) -> Scalar:
        """``risk_scale (tr(M Szz M^T) - 2 tr(Syz^T M))``: the risk
        ``risk_scale E|y - M z|^2`` up to the constant ``risk_scale E|y|^2``."""
        m = self.predictor(x)
        szz, syz = self.Szz.astype(x.dtype), self.Syz.astype(x.dtype)
        scale = jnp.asarray(self.risk_scale, x.dtype)
        return scale * (jnp.trace(m @ szz @ m.T) - 2 * jnp.sum(syz * m))

    def __call__(self, t, x: ParticlesArray, args=None) -> Particles:
        m = self.predictor(x)
        scale = 2 * jnp.asarray(self.risk_scale, x.dtype)
        g = scale * (m @ self.Szz.astype(x.dtype) - self.Syz.astype(x.dtype))
        u, v = x[:, : self.d_in], x[:, self.d_in :]
        return jnp.concatenate([-v @ g, -u @ g.T], axis=1)


class TwoLayerMeanField(eqx.Module):
    """Neurons of ``f(z) = 1/n sum_i v_i sigma(<u_i, z> + b_i)`` as particles, moving by the
    Wasserstein gradient of the empirical risk ``R = 1/(2N) sum_k |f(z_k) - y_k|^2``
    (mean-field scaling, Chizat-Bach): ``dtheta_i/dt = -n dR/dtheta_i``.

    A neuron is a row ``(u_i, [b_i], v_i)`` of `x`, shape `(n, d_in + bias + d_out)`.

    **Arguments:**
    - `z`: inputs `(N, d_in)`; `y`: targets `(N,)` or `(N, d_out)`.
    - `activation`: "relu", "sigmoid" or "tanh" (static).
    - `bias`: whether neurons carry a bias `b_i` (static).
    """

    z: Array
    y: Array
    activation: str = eqx.field(static=True)
    bias: bool = eqx.field(static=True)

    def __init__(self, z: ParticlesLike, y: Targets, *, activation="relu", bias=False):
        self.z, self.y = _data(z, y)
        self.activation = _checks.choice(activation, ACTIVATIONS, "activation")
        if not isinstance(bias, bool):
            raise TypeError(f"`bias` must be a bool, got {bias!r}.")
        self.bias = bias

    @property
    def width(self) -> int:
        """Number of coordinates of one neuron."""
        return self.z.shape[1] + int(self.bias) + self.y.shape[1]

    def _check(self, x):
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"neurons `x` must have shape (n, {self.width}) = (n, d_in + bias "
                             f"+ d_out), got {tuple(x.shape)}.")

    def predict(self, x, z) -> Array:
        """The network of neurons `x` `(n, width)` at inputs `z` `(N, d_in)`: `(N, d_out)`."""
        self._check(x)
        d_in = self.z.shape[1]
        u, v = x[:, :d_in], x[:, d_in + int(self.bias):]
        pre = z.astype(x.dtype) @ u.T
        if self.bias:
            pre = pre + x[:, d_in][None, :]
        return ACTIVATIONS[self.activation](pre) @ v / x.shape[0]

    def risk(self, x: ParticlesArray) -> Scalar:
        """Empirical risk ``1/(2N) sum_k |f(z_k) - y_k|^2``."""
        residual = self.predict(x, self.z) - self.y.astype(x.dtype)
        return 0.5 * jnp.mean(jnp.sum(residual**2, axis=1))

    def __call__(self, t, x: ParticlesArray, args=None) -> Particles:
        return -x.shape[0] * jax.grad(self.risk)(x)
