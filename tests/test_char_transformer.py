"""The causal character transformer: causality, its depth as residual steps of the attention
field, the 2L-step refinement, sampling and gradients."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab.learn import CharTransformer, NextCharacterLoss

V, T, L = 11, 8, 3


@pytest.fixture(scope="module")
def model():
    return CharTransformer(V, T, L, dim=8, heads=2, mlp_ratio=2, key=jax.random.key(0))


def tokens(seed, n=T):
    return jax.random.randint(jax.random.key(seed), (n,), 0, V)


def test_shapes_and_dtype(model):
    assert model.logits(tokens(1)).shape == (T, V)
    assert model.states(tokens(1, 5)).shape == (L + 1, 5, 8)
    assert model.states(tokens(1), 2 * L).shape == (2 * L + 1, T, 8)
    assert model.logits(tokens(1)).dtype == jnp.float64  # the default float of the harness
    small = CharTransformer(V, T, L, dim=8, heads=2, key=jax.random.key(0), dtype="float32")
    assert small.logits(tokens(1)).dtype == jnp.float32


def test_causal_earlier_logits_ignore_later_tokens(model):
    a, b = tokens(1), tokens(2)
    for i in range(T - 1):
        mixed = jnp.concatenate([a[: i + 1], b[i + 1:]])
        np.testing.assert_allclose(model.logits(mixed)[: i + 1], model.logits(a)[: i + 1],
                                   atol=1e-12)
    assert not np.allclose(model.logits(b), model.logits(a))


@pytest.mark.parametrize("steps", [L, 2 * L, 4 * L])
def test_depth_is_the_residual_transformer_of_its_field(model, steps):
    """``steps`` residual steps of size 1/steps of the library's residual transformer on the same
    field (a PiecewiseConstant over L layers: 2L steps use each layer twice)."""
    x = tokens(3)
    x0 = model.embedding[x] + model.position[:T]
    reference = fl.fields.residual_transformer(model.field, x0, steps)
    np.testing.assert_allclose(model.states(x, steps), reference, rtol=1e-12, atol=1e-12)


def test_refined_depth_tends_to_a_limit(model):
    """Euler on the depth ODE: halving the step halves the change (first order)."""
    x = tokens(4)
    last = [model.states(x, k * L)[-1] for k in (1, 2, 4, 8)]
    changes = [float(jnp.max(jnp.abs(b - a))) for a, b in zip(last, last[1:], strict=False)]
    ratios = np.array(changes[1:]) / np.array(changes[:-1])
    np.testing.assert_array_less(ratios, 0.75)
    np.testing.assert_array_less(0.3, ratios)


def test_generate_deterministic_in_range_and_follows_the_logits(model):
    key = jax.random.key(5)
    out = model.generate(key, tokens(6, 3), 2 * T)
    assert out.shape == (2 * T,) and int(out.min()) >= 0 and int(out.max()) < V
    np.testing.assert_array_equal(out, model.generate(key, tokens(6, 3), 2 * T))
    greedy = model.generate(key, tokens(6, 3), 1, temperature=1e-4)
    assert int(greedy[0]) == int(jnp.argmax(model.logits(tokens(6, 3))[-1]))
    long = model.generate(key, tokens(7, 3 * T), 1, temperature=1e-4)  # the last T tokens
    assert int(long[0]) == int(jnp.argmax(model.logits(tokens(7, 3 * T)[-T:])[-1]))


def test_next_character_loss_near_uniform_at_start_and_reaches_every_parameter(model):
    loss = NextCharacterLoss(jax.random.randint(jax.random.key(8), (200,), 0, V), T, batch=4)
    value, grads = eqx.filter_jit(eqx.filter_value_and_grad(loss))(model, jax.random.key(9))
    assert abs(float(value) - np.log(V)) < 1.5
    for g in jax.tree.leaves(grads):
        assert float(jnp.max(jnp.abs(g))) > 0
