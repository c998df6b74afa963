"""Mean-field networks: linear networks against the Riccati closure, two-layer networks against
explicit gradients and the mean-field invariances."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab.fields import LinearNetworkField, TwoLayerMeanField

SZZ = jnp.array([[1.0, 0.3, 0.0], [0.3, 0.8, 0.1], [0.0, 0.1, 0.5]])
SYZ = jnp.array([[1.0, -0.5, 0.3], [0.2, 0.8, -0.4]])
COV0 = 0.3 * jnp.eye(5)


def second_moments(xs):
    return jnp.einsum("tni,tnj->tij", xs, xs) / xs.shape[1]


@pytest.mark.parametrize("risk_scale", [None, 1.0, 0.5])
def test_linear_network_velocity_is_the_scaled_risk_gradient(risk_scale, getkey):
    # None: the default, the paper's risk E|y - Mz|^2 (Prop. 6.2, eq. (23)), no 1/2
    kwargs = {} if risk_scale is None else {"risk_scale": risk_scale}
    scale = 1.0 if risk_scale is None else risk_scale
    field = LinearNetworkField(SZZ, SYZ, **kwargs)
    x = jax.random.normal(getkey(), (7, 5))
    np.testing.assert_allclose(field(0.0, x), -7 * jax.grad(field.risk)(x), atol=1e-13)
    # the velocity is -n times the gradient of scale * E|y - Mz|^2 over samples with these
    # moments, written out; the field's risk is that risk up to the constant scale * E|y|^2
    z = jax.random.normal(getkey(), (50, 3))
    y = jax.random.normal(getkey(), (50, 2))
    data_field = LinearNetworkField.from_data(z, y, **kwargs)

    def sampled_risk(x):
        m = data_field.predictor(x)
        return scale * jnp.mean(jnp.sum((y - z @ m.T) ** 2, axis=1))

    np.testing.assert_allclose(data_field(0.0, x), -7 * jax.grad(sampled_risk)(x), atol=1e-12)
    constant = scale * jnp.mean(jnp.sum(y**2, axis=1))
    np.testing.assert_allclose(data_field.risk(x), sampled_risk(x) - constant, rtol=1e-10)


@pytest.mark.parametrize("risk_scale", [None, 0.5])
def test_linear_network_particles_follow_the_riccati_ode(risk_scale, getkey):
    # The particles' own second moment obeys the closed ODE exactly (this fixes every sign and
    # transpose, and the speed: field and theory share the risk's convention), and the
    # predictor converges to the least-squares solution Syz Szz^{-1}. None: both defaults.
    kwargs = {} if risk_scale is None else {"risk_scale": risk_scale}
    t1 = 12.5 / (1.0 if risk_scale is None else risk_scale)  # the same flow on either clock
    n = 64
    ts = jnp.linspace(0.0, t1, 6)
    x0 = fl.Gaussian(jnp.zeros(5), COV0).sample(getkey(), n)
    field = LinearNetworkField(SZZ, SYZ, **kwargs)
    traj = fl.simulate(field, x0, t1=t1, saveat=ts, rtol=1e-9, atol=1e-9)
    own = fl.theory.linear_network_covariance(x0.T @ x0 / n, SZZ, SYZ, ts, **kwargs)
    np.testing.assert_allclose(second_moments(traj.xs), own, atol=1e-6)
    least_squares = SYZ @ jnp.linalg.inv(SZZ)
    np.testing.assert_allclose(field.predictor(traj.x1), least_squares, atol=1e-5)
    theory = fl.theory.linear_network_covariance(COV0, SZZ, SYZ, ts, **kwargs)
    np.testing.assert_allclose(theory[-1][3:, :3], least_squares, atol=1e-5)
    # the other convention is another clock: the particles do not follow its theory
    other = fl.theory.linear_network_covariance(x0.T @ x0 / n, SZZ, SYZ, ts,
                                                risk_scale=1.0 if risk_scale else 0.5)
    assert float(jnp.max(jnp.abs(second_moments(traj.xs)[1] - other[1]))) > 1e-2


@pytest.mark.slow
def test_linear_network_error_to_theory_shrinks_with_width(getkey):
    ts = jnp.linspace(0.0, 5.0, 6)  # 10 under the former risk 1/2 E|y - Mz|^2
    theory = fl.theory.linear_network_covariance(COV0, SZZ, SYZ, ts)
    field = LinearNetworkField(SZZ, SYZ)

    @functools.partial(jax.jit, static_argnums=1)
    def error(key, n):
        x0 = fl.Gaussian(jnp.zeros(5), COV0).sample(key, n)
        xs = fl.simulate(field, x0, t1=5.0, saveat=ts, rtol=1e-7, atol=1e-7).xs
        return jnp.max(jnp.linalg.norm(second_moments(xs) - theory, axis=(1, 2)))

    errors = []
    for n in (100, 1600):
        keys = jax.random.split(getkey(), 4)
        errors.append(float(jnp.mean(jax.lax.map(lambda k: error(k, n), keys))))
    # Monte Carlo error O(n^-1/2): a 16-fold width should cut it about 4-fold
    assert errors[1] < errors[0] / 2.5, errors


def relu_gradients(x, z, y):
    """dR/du_i and dR/dv_i written out by hand for ReLU neurons without bias."""
    n = x.shape[0]
    u, v = x[:, :-1], x[:, -1]
    pre = z @ u.T  # (N, n)
    residual = jax.nn.relu(pre) @ v / n - y[:, 0]
    dv = jnp.mean(residual[:, None] * jax.nn.relu(pre), axis=0) / n
    du = ((residual[:, None] * jnp.where(pre > 0, 1.0, 0.0) * v[None, :]).T @ z) / (n * z.shape[0])
    return jnp.concatenate([du, dv[:, None]], axis=1)


def test_two_layer_velocity_matches_hand_gradients(getkey):
    z = jax.random.normal(getkey(), (40, 3))
    y = jnp.sin(z[:, 0])
    x = jax.random.normal(getkey(), (9, 4))
    field = TwoLayerMeanField(z, y)
    np.testing.assert_allclose(field(0.0, x), -9 * relu_gradients(x, z, y[:, None]), atol=1e-12)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_two_layer_with_bias_against_finite_differences(activation, getkey):
    z = jax.random.normal(getkey(), (30, 2))
    y = jnp.stack([jnp.cos(z[:, 0]), z[:, 1]], axis=1)
    field = TwoLayerMeanField(z, y, activation=activation, bias=True)
    x = jax.random.normal(getkey(), (6, field.width))
    direction = jax.random.normal(getkey(), x.shape)
    h = 1e-5
    fd = (field.risk(x + h * direction) - field.risk(x - h * direction)) / (2 * h)
    np.testing.assert_allclose(-jnp.sum(field(0.0, x) * direction) / 6, fd, rtol=1e-7)


def test_two_layer_mean_field_invariances(getkey):
    z = jax.random.normal(getkey(), (25, 2))
    field = TwoLayerMeanField(z, jnp.tanh(z[:, 0] - z[:, 1]), activation="tanh", bias=True)
    x = jax.random.normal(getkey(), (8, field.width))
    perm = jax.random.permutation(getkey(), 8)
    np.testing.assert_allclose(field(0.0, x[perm]), field(0.0, x)[perm], atol=1e-14)
    # mean-field scaling: duplicating every neuron changes neither the network nor any velocity
    doubled = jnp.concatenate([x, x])
    np.testing.assert_allclose(field.predict(doubled, z), field.predict(x, z), atol=1e-14)
    np.testing.assert_allclose(field(0.0, doubled)[:8], field(0.0, x), atol=1e-14)


def test_two_layer_risk_decreases_along_the_flow(getkey):
    z = jax.random.normal(getkey(), (60, 2))
    field = TwoLayerMeanField(z, jax.nn.relu(z[:, 0]) - 0.5 * jax.nn.relu(-z[:, 1]))
    x0 = jax.random.normal(getkey(), (32, 3))
    traj = fl.simulate(field, x0, t1=5.0, saveat=11, steps=200, solver="heun")
    risk = jax.vmap(field.risk)(traj.xs)
    assert bool(jnp.all(jnp.diff(risk) <= 1e-12))
    assert float(risk[-1]) < 0.5 * float(risk[0])
