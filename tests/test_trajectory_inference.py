"""Trajectory inference: the potential network's field, and a loss that singles out the true
driving field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab import learn


def test_gradient_potential_field_is_minus_the_gradient(getkey):
    model = learn.GradientPotential(2, width=8, key=getkey(), dtype=jnp.float64)
    x = jax.random.normal(getkey(), (5, 2))
    h = 1e-6
    for k in range(2):
        e = jnp.zeros((1, 2)).at[0, k].set(h)
        fd = (jax.vmap(model.potential)(x + e) - jax.vmap(model.potential)(x - e)) / (2 * h)
        np.testing.assert_allclose(model(0.0, x)[:, k], -fd, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_snapshot_loss_prefers_the_true_field(getkey):
    truth = fl.fields.pointwise(lambda t, x, a: -x + jnp.array([1.0, 0.0]))
    times = jnp.array([0.0, 0.5, 1.0])
    snapshots = []
    for t in times:  # independent samples at every time
        x0 = 0.3 * jax.random.normal(getkey(), (64, 2))
        snapshots.append(fl.simulate(truth, x0, t1=float(t), rtol=1e-8, atol=1e-8).x1)
    loss = learn.SnapshotLoss(jnp.stack(snapshots), times, epsilon=0.02, steps=8)
    wrong = fl.fields.pointwise(lambda t, x, a: -x - jnp.array([1.0, 0.0]))
    key = getkey()
    right_loss, wrong_loss = float(loss(truth, key)), float(loss(wrong, key))
    assert right_loss < 0.1 * wrong_loss, (right_loss, wrong_loss)
    assert learn.velocity_error(truth, truth, snapshots[1]) == 0.0
    np.testing.assert_allclose(learn.velocity_error(wrong, truth, snapshots[0]),
                               jnp.linalg.norm(jnp.full((64, 2), 1.0).at[:, 1].set(0.0) * 2)
                               / jnp.linalg.norm(truth(0.0, snapshots[0])), rtol=1e-12)


@pytest.mark.parametrize("call, message", [
    (lambda: learn.SnapshotLoss(jnp.ones((1, 3, 2)), jnp.zeros(1)), "K >= 2"),
    (lambda: learn.SnapshotLoss(jnp.ones((2, 3, 2)), jnp.zeros(3)), "`times` must have shape"),
    (lambda: learn.SnapshotLoss(jnp.ones((2, 3, 2)), jnp.array([1.0, 0.0])),
     "strictly increasing"),
    (lambda: learn.SnapshotLoss(jnp.ones((2, 3, 2)), jnp.arange(2.0), epsilon=0.0),
     "`epsilon` must be > 0"),
    (lambda: learn.SnapshotLoss(jnp.ones((2, 3, 2)), jnp.arange(2.0), batch=0), "`batch`"),
    (lambda: learn.GradientPotential(0, key=jax.random.key(0)), "`dim`"),
    (lambda: learn.velocity_error(None, None, jnp.ones(3)), "`x` must be a particle cloud"),
])
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
