"""Bad input to the continuous-time learning code: one row per public function or argument."""

import jax
import jax.numpy as jnp
import pytest

import flowjax_lab as fl

KEY = jax.random.key(0)
X2 = jnp.ones((4, 2))
X3 = jnp.ones((4, 3))
LABELS = jnp.array([0, 1, 0, 1])
moons = lambda k: fl.datasets.sample("moons", k, 8)


def _classifier():
    return fl.learn.NeuralODEClassifier(2, 2, augment=1, width=4, key=KEY)


CASES = [
    ("MLPField dim 0", lambda: fl.fields.MLPField(0, key=KEY), ValueError, "dim"),
    ("MLPField no key", lambda: fl.fields.MLPField(2, key=None), TypeError, "key"),
    ("OTFlowPotential one layer", lambda: fl.fields.OTFlowPotential(2, layers=1, key=KEY),
     ValueError, "layers"),
    ("OTFlowPotential wrong dimension",
     lambda: fl.fields.OTFlowPotential(2, key=KEY).value(0.0, X3), ValueError, r"shape \(n, 2\)"),
    ("autodiff_laplacian wrong dimension",
     lambda: fl.fields.OTFlowPotential(2, key=KEY).autodiff_laplacian(0.0, X3),
     ValueError, r"shape \(n, 2\)"),
    ("classifier one class", lambda: fl.learn.NeuralODEClassifier(2, 1, key=KEY), ValueError,
     "classes"),
    ("classifier negative augment", lambda: fl.learn.NeuralODEClassifier(2, 2, augment=-1,
                                                                          key=KEY),
     ValueError, "augment"),
    ("trained classifier, wrong feature dimension", lambda: _classifier()(X3), ValueError,
     "dimension d = 2"),
    ("classification_loss float labels",
     lambda: fl.learn.classification_loss(_classifier(), X2, jnp.array([0.0, 1.0, 0.0, 1.0])),
     TypeError, "integers"),
    ("classification_loss labels out of range",
     lambda: fl.learn.classification_loss(_classifier(), X2, jnp.array([0, 1, 2, 1])),
     ValueError, r"\[0, 2\)"),
    ("accuracy negative labels",
     lambda: fl.learn.accuracy(_classifier(), X2, jnp.array([0, -1, 0, 1])), ValueError,
     r"\[0, 2\)"),
    ("ClassificationLoss labels wrong shape",
     lambda: fl.learn.ClassificationLoss(X2, LABELS[:3], classes=2), ValueError, r"shape \(4,\)"),
    ("ClassificationLoss batch 0", lambda: fl.learn.ClassificationLoss(X2, LABELS, classes=2,
                                                                       batch=0),
     ValueError, "batch"),
    ("CNF unknown trace estimator",
     lambda: fl.learn.CNF(2, width=4, key=KEY).log_prob(X2, trace="hutchinsen"), ValueError,
     "Unknown `trace`.*hutchinson"),
    ("CNF wrong feature dimension", lambda: fl.learn.CNF(2, width=4, key=KEY).log_prob(X3),
     ValueError, "dimension d = 2"),
    ("CNF sample n 0", lambda: fl.learn.CNF(2, width=4, key=KEY).sample(KEY, 0), ValueError,
     "`n`"),
    ("LikelihoodLoss unknown trace", lambda: fl.learn.LikelihoodLoss(X2, trace="brute"),
     ValueError, "Unknown `trace`"),
    ("LikelihoodLoss data not a cloud", lambda: fl.learn.LikelihoodLoss(jnp.ones(4)),
     ValueError, r"shape \(n, d\)"),
    ("OTFlow wrong feature dimension", lambda: fl.learn.OTFlow(2, key=KEY).log_prob(X3),
     ValueError, "dimension d = 2"),
    ("OTFlowLoss negative transport weight",
     lambda: fl.learn.OTFlowLoss(moons, transport=-1.0), ValueError, "`transport` must be >= 0"),
    ("OTFlowLoss negative likelihood weight",
     lambda: fl.learn.OTFlowLoss(moons, likelihood=-0.1), ValueError, "`likelihood`"),
    ("OTFlowLoss negative HJB weight", lambda: fl.learn.OTFlowLoss(moons, hjb=-5.0),
     ValueError, "`hjb` must be >= 0"),
    ("OTFlowLoss sampler not callable", lambda: fl.learn.OTFlowLoss(X2), TypeError, "sampler"),
    ("MFG negative penalty weight",
     lambda: fl.learn.transport_game(2, weights=(2.0, 1.0, 5.0, -3.0, 3.0)), ValueError,
     r"weights\[3\]"),
    ("MFG zero kinetic weight",
     lambda: fl.learn.transport_game(2, weights=(0.0, 1.0, 5.0, 3.0, 3.0)), ValueError,
     r"weights\[0\]` must be > 0"),
    ("MFG four weights", lambda: fl.learn.crowd_game(2, weights=(1.0, 1.0, 1.0, 1.0)),
     ValueError, "5 numbers"),
    ("MFG dimension 1", lambda: fl.learn.transport_game(1), ValueError, "dim"),
    ("MFG negative variance",
     lambda: fl.learn.MeanFieldGame(X2, -0.3, jnp.zeros(2), 0.3), ValueError, "variance0"),
    ("MFG negative obstacle height", lambda: fl.learn.crowd_game(2, obstacle_height=-1.0),
     ValueError, "obstacle_height"),
    ("MFG mean1 wrong shape", lambda: fl.learn.MeanFieldGame(X2, 0.3, jnp.zeros(3), 0.3),
     ValueError, "mean1"),
    ("MFG potential of another dimension",
     lambda: fl.learn.transport_game(2).characteristics(fl.fields.OTFlowPotential(3, key=KEY), X2),
     ValueError, "dimension"),
]


@pytest.mark.parametrize(("call", "error", "match"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
