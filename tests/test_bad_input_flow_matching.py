"""Bad input to the flow-matching API: each row is (call, exception, message regex)."""

import functools

import jax
import jax.numpy as jnp
import pytest

import flowjax_lab as fl

X = jnp.zeros((4, 2))
KEY = jax.random.key(0)
GAUSS = functools.partial(fl.datasets.sample, "gaussian")
FIELD = fl.fields.GaussianFlowMatching(jnp.eye(2), jnp.eye(2))


def _bad_model(t, x, args):
    return x[:, :1]


CASES = [
    # ExactFlowMatching
    (lambda: fl.fields.ExactFlowMatching(jnp.zeros(5)), ValueError, r"`data`.*\(n, d\)"),
    (lambda: fl.fields.ExactFlowMatching(jnp.zeros((0, 2))), ValueError, r"`data`.*at least one"),
    (lambda: fl.fields.ExactFlowMatching(jnp.full((2, 2), jnp.nan)), ValueError, r"`data`.*NaN"),
    (lambda: fl.fields.ExactFlowMatching(X, jnp.ones(3) / 3), ValueError, r"`weights`.*\(4,\)"),
    (lambda: fl.fields.ExactFlowMatching(X, chunk_size=0), ValueError, r"`chunk_size`"),
    (lambda: fl.fields.ExactFlowMatching(X)(0.5, jnp.zeros((3, 5))), ValueError, r"`x`.*d = 2"),
    # convert / ConvertedField
    (lambda: fl.learn.convert(X, 1.5, X, source="score", target="velocity"), ValueError,
     r"`t` must lie in \[0, 1\]"),
    (lambda: fl.learn.convert(X, -0.1, X, source="score", target="velocity"), ValueError,
     r"`t` must lie in \[0, 1\]"),
    (lambda: fl.learn.convert(X, 0.5, X, source="noise", target="velocity"), ValueError,
     r"Unknown `source`"),
    (lambda: fl.learn.convert(X, 0.5, X, source="score", target="veloctiy"), ValueError,
     r"Unknown `target`.*Did you mean 'velocity'"),
    (lambda: fl.learn.convert(jnp.zeros((4, 3)), 0.5, X, source="score", target="velocity"),
     ValueError, r"`value` must be shaped like `x`"),
    (lambda: fl.learn.convert(X, jnp.full(3, 0.5), X, source="score", target="velocity"),
     ValueError, r"`t` must be a scalar or of shape \(4,\)"),
    (lambda: fl.learn.convert(jnp.zeros(4), 0.5, jnp.zeros(4), source="score",
                              target="velocity"), ValueError, r"`x`.*\(n, d\)"),
    (lambda: fl.learn.ConvertedField(3, "score", "velocity"), TypeError, r"`model` must be"),
    (lambda: fl.learn.ConvertedField(FIELD, "score", "speed"), ValueError, r"Unknown `target`"),
    # couplings and paths
    (lambda: fl.learn.couple(KEY, X, X, "sinkhorn"), ValueError,
     r"Unknown `coupling` 'sinkhorn'"),
    (lambda: fl.learn.couple(KEY, X, X, "entropic", sigma=0.0), ValueError, r"`sigma` must be > 0"),
    (lambda: fl.learn.couple(KEY, X, jnp.zeros((3, 2)), "ot"), ValueError,
     r"same number of points"),
    (lambda: fl.learn.conditional_path(KEY, X, X, jnp.full(4, 0.5), sigma=-0.1), ValueError,
     r"`sigma` must be >= 0"),
    (lambda: fl.learn.conditional_path(KEY, X, X, jnp.full(4, 1.2)), ValueError,
     r"`t` must lie in \[0, 1\]"),
    (lambda: fl.learn.conditional_path(KEY, X, X, jnp.full(3, 0.5)), ValueError,
     r"`t` must have shape \(4,\)"),
    # the loss
    (lambda: fl.learn.FlowMatchingLoss(GAUSS, GAUSS, coupling="optimal"), ValueError,
     r"Unknown `coupling`"),
    (lambda: fl.learn.FlowMatchingLoss(GAUSS, GAUSS, sigma=-1.0), ValueError,
     r"`sigma` must be >= 0"),
    (lambda: fl.learn.FlowMatchingLoss(GAUSS, GAUSS, coupling="entropic"), ValueError,
     r"`sigma` must be > 0"),
    (lambda: fl.learn.FlowMatchingLoss(GAUSS, GAUSS, batch_size=0), ValueError, r"`batch_size`"),
    (lambda: fl.learn.FlowMatchingLoss(jnp.zeros(5), GAUSS), ValueError, r"`source`.*\(n, d\)"),
    (lambda: fl.learn.FlowMatchingLoss("moons", GAUSS), TypeError, r"`source` must be a sampler"),
    (lambda: fl.learn.FlowMatchingLoss(GAUSS, GAUSS, batch_size=8)(_bad_model, KEY), ValueError,
     r"`model` must return an array shaped like its input x \(1, 2\), got \(1, 1\)"),
    (lambda: fl.learn.FlowMatchingLoss(GAUSS, jnp.zeros((5, 3)), batch_size=8)(FIELD, KEY),
     ValueError, r"source and target batches"),
    (lambda: fl.learn.FlowMatchingLoss(GAUSS, GAUSS).coupling_status(3), TypeError,
     r"`key` must be a jax.random key"),
    (lambda: fl.learn.FlowMatchingLoss(GAUSS, GAUSS, coupling_options={"eps": 1.0}),
     ValueError, r"`coupling_options` may hold"),
    # sampling and likelihood
    (lambda: fl.learn.generate(_bad_model, X), ValueError, r"`field` must return an array"),
    (lambda: fl.learn.generate(FIELD, X, steps=0), ValueError, r"`steps`"),
    (lambda: fl.learn.log_likelihood(FIELD, X, lambda x: x[:, 0], method="trace"), ValueError,
     r"Unknown `log_density`"),
    (lambda: fl.learn.log_likelihood(FIELD, X, lambda x: x[:, 0], method="hutchinson"),
     TypeError, r"`key` must be a jax.random key"),
    # metrics
    (lambda: fl.metrics.sample_w2(X, jnp.zeros((3, 2))), ValueError, r"same number of points"),
    (lambda: fl.metrics.sample_w2(X, jnp.zeros((4, 3))), ValueError, r"`held_out`.*d = 2"),
    (lambda: fl.metrics.kinetic_energy(FIELD, jnp.zeros(3)), ValueError, r"`x0`.*\(n, d\)"),
    (lambda: fl.metrics.nfe_for_w2(FIELD, X, X, -1.0), ValueError, r"`target_w2` must be > 0"),
    (lambda: fl.metrics.nfe_for_w2(FIELD, X, X, 0.1, steps=(0,)), ValueError, r"`steps`"),
]


@pytest.mark.parametrize("call, error, message", CASES)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
