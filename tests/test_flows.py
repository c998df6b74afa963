"""Wasserstein gradient flows against theory: the heat flow, Ornstein-Uhlenbeck equilibria, and
the JKO scheme's tau -> 0 limit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import flowjax_lab as fl
from flowjax_lab import flows
from flowjax_lab.fields import Interaction

COV0 = jnp.array([[1.0, 0.3], [0.3, 0.5]])


def test_heat_flow_covariance_matches_theory(getkey):
    # Brownian particles at temperature D realise the heat flow d rho/dt = D Laplacian(rho).
    n, diffusivity = 20000, 0.5
    x0 = fl.Gaussian(jnp.zeros(2), COV0).sample(getkey(), n)
    traj = flows.langevin(x0, getkey(), temperature=diffusivity, t1=1.0, steps=4, saveat=5)
    assert int(traj.status) == fl.Status.SUCCESS
    for t, x in zip(traj.ts, traj.xs, strict=True):
        reference = fl.theory.heat_covariance(COV0, float(t), diffusivity)
        error = fl.metrics.relative_error(fl.metrics.covariance(x), reference)
        assert float(error) < 6 / np.sqrt(n), (float(t), float(error))


def ou_moments(a, temperature, mean0, cov0, t):
    """Mean and covariance at time t of dX = -A X dt + sqrt(2 T) dW (A symmetric)."""
    e = scipy.linalg.expm(-a * t)
    eq = temperature * np.linalg.inv(a)
    return e @ mean0, e @ (cov0 - eq) @ e + eq


@pytest.mark.slow
def test_ornstein_uhlenbeck_reaches_its_gaussian_equilibrium(getkey):
    n, temperature = 8000, 0.5
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    mean0 = np.array([2.0, -1.0])
    x0 = fl.Gaussian(jnp.asarray(mean0), COV0).sample(getkey(), n)
    traj = flows.langevin(x0, getkey(), potential=flows.QuadraticPotential(jnp.asarray(a)),
                          temperature=temperature, t1=4.0, steps=400, saveat=5)
    assert int(traj.status) == fl.Status.SUCCESS
    for t, x in zip(np.asarray(traj.ts), traj.xs, strict=True):
        mean, cov = ou_moments(a, temperature, mean0, np.asarray(COV0), t)
        # sampling error O(n^-1/2) plus the Euler-Maruyama bias O(dt) = 1%
        assert float(fl.metrics.relative_error(fl.metrics.covariance(x), cov)) < 0.05
        assert np.linalg.norm(np.asarray(jnp.mean(x, axis=0)) - mean) < 6 / np.sqrt(n)
    equilibrium = temperature * np.linalg.inv(a)
    final = fl.metrics.covariance(traj.x1)
    assert float(fl.metrics.relative_error(final, equilibrium)) < 0.05


def test_jko_step_is_an_implicit_euler_step_that_decreases_energy(getkey):
    x = jax.random.normal(getkey(), (15, 2))
    w = jax.random.uniform(getkey(), (15,), jnp.float64, 0.5, 1.0)
    w = w / jnp.sum(w)
    field = Interaction(flows.PowerLawKernel(2.0, 0.5), flows.QuadraticPotential(0.5), weights=w)
    tau = 0.2
    y, status = flows.jko_step(field.energy, x, tau, weights=w)
    assert int(status) == fl.Status.SUCCESS
    # optimality: w_i (y_i - x_i) / tau = -dF/dy_i, i.e. y = x + tau v(y)
    np.testing.assert_allclose(y, x + tau * field(0.0, y), atol=1e-7)
    assert float(field.energy(y)) < float(field.energy(x))


@pytest.mark.slow
def test_jko_approaches_the_particle_flow_as_tau_shrinks(getkey):
    x0 = jax.random.normal(getkey(), (16, 2))
    field = Interaction(flows.PowerLawKernel(2.0, 0.5), flows.QuadraticPotential(0.5))
    horizon = 0.5
    exact = fl.simulate(field, x0, t1=horizon, rtol=1e-10, atol=1e-10).x1
    errors = []
    for k in (4, 16):
        traj = flows.jko(field.energy, x0, horizon / k, k)
        assert int(traj.status) == fl.Status.SUCCESS
        energy = flows.energy_along(field, traj.xs)
        assert bool(jnp.all(jnp.diff(energy) <= 1e-12))
        errors.append(float(jnp.max(jnp.abs(traj.x1 - exact))))
    order = np.log(errors[0] / errors[1]) / np.log(4)
    assert 0.8 < order < 1.2, errors  # implicit Euler: first order in tau


def test_zero_temperature_langevin_is_the_euler_particle_flow(getkey):
    x0 = jax.random.normal(getkey(), (10, 2))
    w = jnp.linspace(1.0, 2.0, 10)
    w = w / jnp.sum(w)
    kernel, potential = flows.GaussianKernel(0.5, 2.0), flows.QuadraticPotential(0.3)
    noiseless = flows.langevin(x0, getkey(), potential=potential, kernel=kernel, weights=w,
                               temperature=0.0, t1=0.5, steps=20)
    euler = fl.simulate(Interaction(kernel, potential, weights=w), x0, t1=0.5, steps=20,
                        solver="euler")
    np.testing.assert_allclose(noiseless.x1, euler.x1, rtol=1e-12, atol=1e-12)
