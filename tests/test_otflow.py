"""OT-Flow: the structured exact derivatives of the potential, and the augmented channels
(log-determinant, transport cost, HJB residual) against independent routes."""

import jax
import jax.numpy as jnp
import pytest

import flowjax_lab as fl
from flowjax_lab.learn._otflow import _Augmented


@pytest.mark.parametrize(("dim", "layers", "rank"), [(2, 2, 10), (3, 3, 2), (5, 2, 3)])
def test_potential_derivatives_match_autodiff(getkey, dim, layers, rank):
    phi = fl.fields.OTFlowPotential(dim, width=6, layers=layers, rank=rank, key=getkey())
    x = jax.random.normal(getkey(), (7, dim), jnp.float64)
    t = 0.37
    grad, dt, lap = phi.gradient_and_laplacian(t, x)
    value = lambda tt, xi: phi.value(tt, xi[None])[0]
    assert jnp.allclose(grad, jax.vmap(jax.grad(value, argnums=1), (None, 0))(t, x), atol=1e-12)
    assert jnp.allclose(dt, jax.vmap(jax.grad(value), (None, 0))(t, x), atol=1e-12)
    assert jnp.allclose(lap, phi.autodiff_laplacian(t, x), atol=1e-12)
    assert jnp.allclose(phi(t, x), -grad) and jnp.allclose(phi.divergence(t, x), -lap)


def test_hjb_channel_is_the_pointwise_residual(getkey):
    phi = fl.fields.OTFlowPotential(2, width=6, key=getkey())
    x = jax.random.normal(getkey(), (5, 2), jnp.float64)
    y = jnp.concatenate([x, jnp.zeros((5, 3))], axis=1)
    out = _Augmented(phi)(0.2, y)
    value = lambda tt, xi: phi.value(tt, xi[None])[0]
    grad = jax.vmap(jax.grad(value, argnums=1), (None, 0))(0.2, x)
    dt = jax.vmap(jax.grad(value), (None, 0))(0.2, x)
    kinetic = 0.5 * jnp.sum(grad**2, axis=1)
    assert jnp.allclose(out[:, 3], kinetic) and jnp.allclose(out[:, 4], jnp.abs(kinetic - dt))


@pytest.fixture(scope="module")
def model():
    return fl.learn.OTFlow(2, width=8, steps=8, key=jax.random.key(3), dtype=jnp.float64)


def test_log_determinant_channel_matches_simulate(model, getkey):
    """The l channel is int div(-grad Phi) dt; simulate's own log-density is its negative."""
    x = jax.random.normal(getkey(), (20, 2), jnp.float64)
    y1 = model.integrate(x).x1
    ref = fl.simulate(model.potential, x, solver="rk4", steps=8, log_density="exact")
    assert jnp.allclose(y1[:, :2], ref.x1, atol=1e-12)
    assert jnp.allclose(y1[:, 2], -ref.logp[-1], atol=1e-12)


def test_transport_channel_is_the_path_energy(model, getkey):
    """2 L = int |v|^2 dt; finite differences of the saved path converge to it (O(dt^2))."""
    x = jax.random.normal(getkey(), (20, 2), jnp.float64)

    traj = model.integrate(x, steps=32, saveat=33)
    two_l = 2 * jnp.mean(traj.x1[:, 3])

    def gap(every):
        energy = fl.metrics.path_energy(traj.xs[::every, :, :2], traj.ts[::every])
        return abs(float(two_l - energy)) / float(energy)

    coarse, fine = gap(8), gap(1)
    assert fine < 1e-2 and fine < coarse / 8


def test_density_integrates_to_one_and_loss_weights(model, getkey):
    g = jnp.linspace(-30, 30, 101, dtype=jnp.float64)  # the untrained model's density is wide
    grid = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
    mass = jnp.sum(jnp.exp(model.log_prob(grid))) * (g[1] - g[0]) ** 2
    assert abs(float(mass) - 1) < 1e-2
    data = jax.random.normal(getkey(), (20, 2), jnp.float64)
    terms = model.terms(data)
    loss = fl.learn.OTFlowLoss(lambda k: data, transport=2.0, likelihood=3.0, hjb=0.5)
    expected = 2 * terms["transport"] + 3 * terms["nll"] + 0.5 * terms["hjb"]
    assert jnp.allclose(loss(model, getkey()), expected)
