"""Neural ODE classifiers: zero-padding augmentation, cross-entropy, and an invertible flow."""

import jax
import jax.numpy as jnp
import optax
import pytest

import flowjax_lab as fl


@pytest.fixture(scope="module")
def model():
    return fl.learn.NeuralODEClassifier(2, 3, augment=2, width=8, steps=4,
                                        key=jax.random.key(5), dtype=jnp.float64)


def test_augmentation_pads_zeros_and_flow_is_invertible(model, getkey):
    x = jax.random.normal(getkey(), (10, 2), jnp.float64)
    traj = model.flow(x)
    assert traj.xs.shape == (2, 10, 4)
    assert jnp.array_equal(traj.xs[0], jnp.concatenate([x, jnp.zeros((10, 2))], axis=1))
    back = fl.simulate(fl.learn.Reversed(model.field), traj.x1, solver="rk4", steps=4).x1
    assert float(jnp.max(jnp.abs(back - traj.xs[0]))) < 1e-3  # RK4 round trip, 4 steps
    assert float(jnp.max(jnp.abs(traj.x1 - traj.xs[0]))) > 1e-2  # and the flow did move


def test_loss_is_cross_entropy_and_accuracy_matches_argmax(model, getkey):
    x = jax.random.normal(getkey(), (10, 2), jnp.float64)
    labels = jax.random.randint(getkey(), (10,), 0, 3)
    logits = model(x)
    picked = jnp.take_along_axis(logits, labels[:, None], axis=1)[:, 0]
    manual = jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)
    assert jnp.allclose(fl.learn.classification_loss(model, x, labels), manual)
    loss = fl.learn.ClassificationLoss(x, labels, classes=3, batch=10)
    assert jnp.allclose(loss(model, getkey()), manual)  # full batch: a permutation
    acc = jnp.mean((jnp.argmax(logits, axis=1) == labels).astype(jnp.float64))
    assert jnp.allclose(fl.learn.accuracy(model, x, labels), acc)


@pytest.mark.slow
def test_augmented_model_learns_nested_circles(getkey):
    x, y = fl.datasets.sample_labeled("circles", getkey(), 256, dtype=jnp.float64)
    x = x / 3
    model = fl.learn.NeuralODEClassifier(2, 2, augment=1, width=16, steps=4, key=getkey(),
                                         dtype=jnp.float64)
    loss = fl.learn.ClassificationLoss(x, y, classes=2, batch=128)
    fitted = fl.learn.fit(loss, model, optax.adam(1e-2), getkey(), steps=80, chunk=80,
                          progress=False)
    assert float(fl.learn.accuracy(fitted.model, x, y)) > 0.9
