"""FFJORD: change of variables forward and backward, mass on a grid, Hutchinson unbiasedness."""

import jax
import jax.numpy as jnp
import pytest

import flowjax_lab as fl
from flowjax_lab.measures import isotropic_log_prob


@pytest.fixture(scope="module")
def model():
    return fl.learn.CNF(2, width=16, steps=8, key=jax.random.key(7), dtype=jnp.float64)


@pytest.mark.slow
def test_forward_and_backward_change_of_variables_agree(model, getkey):
    """log p_1(x_1) from the forward solve (log N(z) - int div) equals the backward solve's; the
    gap shrinks at RK4's order as the steps grow. (Reconstruction: experiment cnf-2d.)"""
    z = jax.random.normal(getkey(), (16, 2), jnp.float64)

    def gap(steps):
        fwd = fl.simulate(model.field, z, solver="rk4", steps=steps, log_density="exact")
        forward_logp = isotropic_log_prob(z) + fwd.logp[-1]
        return float(jnp.max(jnp.abs(forward_logp - model.log_prob(fwd.x1, steps=steps))))

    coarse, fine = gap(2), gap(8)
    assert fine < 1e-4 and fine < coarse / 20


def test_density_integrates_to_one(model):
    g = jnp.linspace(-8, 8, 81, dtype=jnp.float64)
    grid = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
    mass = jnp.sum(jnp.exp(model.log_prob(grid))) * (g[1] - g[0]) ** 2
    assert abs(float(mass) - 1) < 1e-3


def test_hutchinson_is_unbiased(model, getkey):
    x = jax.random.normal(getkey(), (16, 2), jnp.float64)
    exact = model.log_prob(x)
    keys = jax.random.split(getkey(), 256)
    hutch = jax.vmap(lambda k: model.log_prob(x, trace="hutchinson", key=k))(keys)  # (256, 16)
    stderr = jnp.std(hutch, axis=0) / jnp.sqrt(256.0)
    assert float(jnp.min(stderr)) > 0  # a genuine estimator: probes differ
    assert float(jnp.max(jnp.abs(jnp.mean(hutch, axis=0) - exact) / stderr)) < 4.5


def test_likelihood_loss_is_mean_nll(model, getkey):
    data = jax.random.normal(getkey(), (16, 2), jnp.float64)
    loss = fl.learn.LikelihoodLoss(data, batch=16)  # the whole set: order does not matter
    assert jnp.allclose(loss(model, getkey()), -jnp.mean(model.log_prob(data)))
