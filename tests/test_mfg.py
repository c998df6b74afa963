"""Neural mean-field games: problem data against closed forms, and the characteristics of a
value function that is constant (nobody moves)."""

import math

import equinox as eqx
import jax.numpy as jnp
import pytest

import flowjax_lab as fl


def test_initial_density_and_obstacle_integrate_correctly():
    game = fl.learn.crowd_game(2, dtype=jnp.float64)
    mixture = fl.learn.transport_game(2, dtype=jnp.float64)
    g = jnp.linspace(-8, 8, 161, dtype=jnp.float64)
    grid = jnp.stack(jnp.meshgrid(g, g), axis=-1).reshape(-1, 2)
    cell = (g[1] - g[0]) ** 2
    assert abs(float(jnp.sum(jnp.exp(mixture.log_initial(grid))) * cell) - 1) < 1e-6
    assert abs(float(jnp.sum(jnp.exp(game.log_terminal(grid))) * cell) - 1) < 1e-6
    assert abs(float(jnp.sum(game.running_cost(grid)) * cell) - 50) < 1e-4
    peak = game.running_cost(jnp.zeros((1, 2), jnp.float64))[0]
    assert jnp.allclose(peak, 50 / (2 * math.pi * math.sqrt(0.5)))


def _constant_potential(dim, key):
    phi = fl.fields.OTFlowPotential(dim, width=4, key=key, dtype=jnp.float64)
    return eqx.tree_at(lambda p: (p.w, p.A, p.c), phi, replace_fn=jnp.zeros_like)


@pytest.mark.slow
def test_constant_value_function_leaves_the_crowd_in_place(getkey):
    """With Phi constant nobody moves: L = 0, G = KL(rho_0 | rho_1) = |6|^2 / (2 * 0.3) = 60 in
    every dimension, F = E_rho0 Q = 50 N((0, 3); 0, diag(1.3, 0.8)), HJB = a_2 F."""
    n = 4000
    for dim in (2, 10):
        game = fl.learn.crowd_game(dim, dtype=jnp.float64)
        phi = _constant_potential(dim, getkey())
        x0 = game.sample_initial(getkey(), n)
        traj = game.characteristics(phi, x0)
        assert jnp.allclose(traj.x1[:, :dim], x0)
        terms = game.terms(phi, x0)
        log_ratio = game.log_initial(x0) - game.log_terminal(x0)
        assert float(terms["L"]) == 0.0
        assert abs(float(terms["G"]) - 60) < 4 * float(jnp.std(log_ratio)) / math.sqrt(n)
        q = game.running_cost(x0)
        f_exact = 50 * math.exp(-0.5 * 9 / 0.8) / (2 * math.pi * math.sqrt(1.3 * 0.8))
        assert abs(float(terms["F"]) - f_exact) < 4 * float(jnp.std(q)) / math.sqrt(n)
        assert jnp.allclose(terms["HJB"], terms["F"])  # a_2 = 1
        assert jnp.allclose(game.objective(terms), sum(
            w * terms[k] for w, k in zip((1, 1, 5, 20, 1), ("L", "F", "G", "HJB", "HJB_1"),
                                         strict=True)))

