"""Discretise-then-optimise (backprop through the solver, ``adjoint="recursive"``) against
optimise-then-discretise (the continuous adjoint, ``adjoint="backsolve"``) and central finite
differences, in float64 on a small learned field."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl

DIM, N = 2, 6


@pytest.fixture(scope="module")
def problem():
    field = fl.fields.MLPField(DIM, width=8, depth=1, key=jax.random.key(0), dtype=jnp.float64)
    x0 = jax.random.normal(jax.random.key(1), (N, DIM), jnp.float64)
    # The parameters travel through `args`: diffrax's BacksolveAdjoint differentiates only
    # explicit inputs (y0, args), not values closed over by the vector field.
    params, static = eqx.partition(field, eqx.is_inexact_array)
    apply = lambda t, x, p: eqx.combine(p, static)(t, x)
    return params, apply, x0


def _loss(params, apply, x0, **options):
    traj = fl.simulate(apply, x0, args=params, **options)
    return jnp.sum(traj.x1**2) + jnp.sum(jnp.sin(traj.x1[:, 0]))


def _flat(tree):
    return jax.flatten_util.ravel_pytree(tree)[0]


def _rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def test_recursive_matches_central_differences(problem):
    params, apply, x0 = problem
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    options = {"solver": "rk4", "steps": 10}
    loss = jax.jit(lambda v: _loss(unravel(v), apply, x0, **options))
    grad = jax.grad(loss)(flat)
    eps = 1e-6
    eye = np.eye(flat.shape[0])
    fd = np.array([(loss(flat + eps * e) - loss(flat - eps * e)) / (2 * eps) for e in eye])
    assert _rel(grad, jnp.asarray(fd)) < 1e-7


@pytest.fixture(scope="module")
def continuous_gradient(problem):
    """The gradient of the exact flow map, by backprop through a tightly-toleranced solve."""
    params, apply, x0 = problem
    options = {"rtol": 1e-11, "atol": 1e-11}
    return _flat(jax.grad(lambda p: _loss(p, apply, x0, adjoint="recursive", **options))(params))


@pytest.mark.slow
def test_backsolve_and_recursive_agree_with_tight_tolerances(problem, continuous_gradient):
    params, apply, x0 = problem
    options = {"rtol": 1e-11, "atol": 1e-11}
    g_back = _flat(jax.grad(lambda p: _loss(p, apply, x0, adjoint="backsolve", **options))(params))
    assert _rel(g_back, continuous_gradient) < 1e-7


@pytest.mark.slow
def test_fixed_step_adjoint_converges_at_fourth_order(problem, continuous_gradient):
    """The continuous adjoint solved with fixed RK4 steps h has an O(h^4) error."""
    params, apply, x0 = problem

    def gap(steps):
        options = {"solver": "rk4", "steps": steps, "adjoint": "backsolve"}
        g_back = jax.grad(lambda p: _loss(p, apply, x0, **options))(params)
        return _rel(_flat(g_back), continuous_gradient)

    coarse, fine = gap(2), gap(8)
    assert fine < coarse / 20  # a factor 4^4 = 256 in the limit
    assert fine < 1e-4
