"""Planted faults in fm-digits: each run must finish and fail through the named checks.

Sizes are below quick's: with training faked (``faults.untrained`` / ``diverged`` compile no
gradient) every fault is caught at any size; the Euler steps stay at quick's 20 so that the exact
flow still lands on its training digits where no fault is planted.
"""

import numpy as np
from faults import assert_caught, diverged, untrained

import flowjax_lab as fl
from flowjax_lab.experiments import fm_digits
from flowjax_lab.fields import ExactFlowMatching

SMALL = {"n_generated": 60, "steps": 20, "classifier_steps": 20, "width": 32,
         "classifier_width": 16}


def run(**overrides):
    return fl.experiments.run("fm-digits", quick=True, **SMALL, **overrides)


def test_untrained(monkeypatch):
    untrained(monkeypatch, fm_digits)
    assert_caught(run(), "classifier accuracy", "I-CFM mlp: energy distance to test vs untrained",
                  "OT-CFM mlp: energy distance to test vs untrained", "near the data")


def test_diverged(monkeypatch):
    diverged(monkeypatch, fm_digits)
    assert_caught(run(), "classifier: training", "classifier accuracy", "I-CFM mlp: training",
                  "OT-CFM mlp: training", "vs untrained", "not memorising", "near the data")


def test_learned_model_that_copies_its_training_set(monkeypatch):
    # "training" returns the loss's exact minimiser, the empirical flow to the training digits:
    # it beats its untrained self by far, and only the memorisation check can tell
    untrained(monkeypatch, fm_digits)
    fake = fm_digits.fit

    def memorising(loss, model, optimizer, key, *, steps, **kwargs):
        if not isinstance(loss, fl.learn.FlowMatchingLoss):
            return fake(loss, model, optimizer, key, steps=steps, **kwargs)
        return fl.learn.FitResult(model=ExactFlowMatching(loss.target), opt_state=None,
                                  losses=np.zeros(steps), evaluations=[], step=steps,
                                  seconds=0.0, status=fl.Status.SUCCESS)

    monkeypatch.setattr(fm_digits, "fit", memorising)
    result = run()
    assert_caught(result, "I-CFM mlp: not memorising", "OT-CFM mlp: not memorising")
    assert "I-CFM mlp: energy distance to test vs untrained" not in result.failed_checks


def test_exact_flow_built_on_the_test_digits(monkeypatch):
    # the exact field of another set lands on that set's digits, not on the training digits
    untrained(monkeypatch, fm_digits)
    test_digits = fl.datasets.load("digits", "test")[0]
    monkeypatch.setattr(fm_digits, "ExactFlowMatching",
                        lambda data: ExactFlowMatching(test_digits.astype(data.dtype)))
    assert_caught(run(), "exact FM: samples are training digits")
