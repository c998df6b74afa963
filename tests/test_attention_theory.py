"""The Gaussian closure of attention against its closed form and against particles; blow-up;
discrete depth converging to the ODE at rate 1/L."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab.fields import Attention, residual_transformer

Q = jnp.array([[1.0, 0.5], [-0.3, 0.8]])
K = jnp.array([[0.7, -0.4], [0.2, 0.9]])
COV0 = jnp.array([[1.0, 0.3], [0.3, 0.5]])


def test_closure_matches_closed_form_and_blow_up_time_for_identity_values():
    ts = jnp.linspace(0.0, 1.0, 11)
    ode = fl.theory.attention_covariance(COV0, Q, K, jnp.eye(2), ts)
    exact = fl.theory.attention_covariance_identity(COV0, Q, K, ts)
    assert bool(ode.blew_up) and bool(exact.blew_up)
    np.testing.assert_allclose(ode.blow_up_time, exact.blow_up_time, rtol=1e-6)
    before = ts < 0.95 * exact.blow_up_time
    np.testing.assert_allclose(ode.covs[before], exact.covs[before], rtol=1e-6)
    assert bool(jnp.all(jnp.isinf(ode.covs[~before & (ts >= exact.blow_up_time)])))
    # the closed form is the inverse of a matrix that becomes singular at t*
    t_star = float(exact.blow_up_time)
    m = K.T @ Q
    gap = jnp.linalg.det(jnp.linalg.inv(COV0) - t_star * (m + m.T))
    assert abs(float(gap)) < 1e-10


def test_no_blow_up_when_the_symmetric_part_is_negative():
    ts = jnp.linspace(0.0, 3.0, 7)
    ode = fl.theory.attention_covariance(COV0, -jnp.eye(2), jnp.eye(2), jnp.eye(2), ts)
    exact = fl.theory.attention_covariance_identity(COV0, -jnp.eye(2), jnp.eye(2), ts)
    assert not bool(ode.blew_up) and np.isinf(float(ode.blow_up_time))
    np.testing.assert_allclose(ode.covs, exact.covs, rtol=1e-6, atol=1e-7)  # solver atol 1e-8


@pytest.mark.slow
def test_particles_follow_the_closure_with_the_library_convention(getkey):
    """Non-symmetric Q, K and a rotating V: the closure with A = V S K^T Q matches particles, with
    an error that shrinks with n; the transposed convention (V S Q^T K) does not."""
    V = jnp.array([[0.5, 1.0], [-1.0, 0.2]])
    ts = jnp.linspace(0.0, 0.4, 3)
    right = fl.theory.attention_covariance(COV0, Q, K, V, ts).covs
    wrong = fl.theory.attention_covariance(COV0, K, Q, V, ts).covs
    errors = []
    for n in (300, 6000):
        x0 = fl.Gaussian(jnp.zeros(2), COV0).sample(getkey(), n)
        xs = fl.simulate(Attention(Q, K, V, chunk_size=2048), x0, saveat=ts, solver="rk4",
                         steps=8).xs
        covs = jnp.einsum("tni,tnj->tij", xs, xs) / n
        errors.append(float(jnp.max(jnp.abs(covs - right))))
        wrong_error = float(jnp.max(jnp.abs(covs - wrong)))
    assert errors[1] < errors[0] / 2, errors
    assert errors[1] < 0.05 and wrong_error > 0.3, (errors, wrong_error)


def test_discrete_depth_converges_to_the_ode_at_rate_one_over_layers(getkey):
    x0 = jax.random.normal(getkey(), (12, 3))
    field = Attention(lambda t: jnp.eye(3) * (1 + jnp.sin(3 * t)),
                      jnp.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 1.0]]),
                      jnp.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 0.3]]))
    reference = fl.simulate(field, x0, rtol=1e-10, atol=1e-10).x1
    layers = np.array([8, 32])
    errors = np.array([float(jnp.max(jnp.abs(residual_transformer(field, x0, L)[-1] - reference)))
                       for L in layers])
    order = -np.log(errors[1] / errors[0]) / np.log(layers[1] / layers[0])
    assert 0.9 < order < 1.1, (errors, order)


def test_sphere_transformer_stays_on_the_sphere(getkey):
    x0 = jax.random.normal(getkey(), (10, 3))
    x0 = x0 / jnp.linalg.norm(x0, axis=1, keepdims=True)
    xs = residual_transformer(Attention(4.0 * jnp.eye(3), jnp.eye(3), jnp.eye(3), sphere=True),
                              x0, 5)
    np.testing.assert_allclose(jnp.linalg.norm(xs, axis=-1), 1.0, rtol=1e-12)
