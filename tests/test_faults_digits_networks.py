"""Planted faults in the continuous-time network experiments on real digits (anode-digits,
cnf-digits): each must make a named check fail."""

import math

import numpy as np
import pytest
from faults import assert_caught, diverged, untrained

import flowjax_lab as fl
from flowjax_lab.experiments import anode_digits, cnf_digits

# Smaller than quick. augment=0 gives both anode-digits models one structure, so they share
# their compilations (no check ranks the augmented model above the plain one).
ANODE = {"train_steps": 100, "width": 16, "augment": 0, "saved_times": 2}
CNF = {"train_steps": 20, "batch": 64, "width": 16, "samples": 2}


def run(name, **overrides):
    return fl.experiments.run(name, quick=True, **overrides)


@pytest.mark.parametrize("name, module, sizes, caught", [
    # chance accuracy; a random field on top of the Gaussian is no better than it
    ("anode-digits", anode_digits, ANODE, ["vs untrained", "held-out accuracy"]),
    ("cnf-digits", cnf_digits, CNF, ["vs untrained", "vs full-covariance Gaussian"]),
])
def test_untrained(monkeypatch, name, module, sizes, caught):
    untrained(monkeypatch, module)
    assert_caught(run(name, **sizes), *caught)


@pytest.mark.parametrize("name, module, sizes", [
    ("anode-digits", anode_digits, ANODE),
    ("cnf-digits", cnf_digits, CNF),
])
def test_diverged(monkeypatch, name, module, sizes):
    diverged(monkeypatch, module)
    assert_caught(run(name, **sizes), "training", "vs untrained")


def test_anode_labels_shuffled_against_images(monkeypatch):
    # a loader that permutes the training labels apart from their images: the training loss
    # still falls (memorisation), but held-out accuracy stays at chance
    load = anode_digits._data

    def shuffled(dtype):
        x, y, x_test, y_test = load(dtype)
        return x, y[np.random.default_rng(0).permutation(y.shape[0])], x_test, y_test

    monkeypatch.setattr(anode_digits, "_data", shuffled)
    assert_caught(run("anode-digits", **ANODE), "vs untrained", "held-out accuracy")


@pytest.mark.parametrize("fault", ["scale Jacobian sign", "whitening log-det sign"])
def test_cnf_wrong_change_of_variables(monkeypatch, fault):
    # log p_v = log q(z) - 1/2 log det Sigma_y - d log s; either sign flipped moves every
    # bits/dim (flow and baseline alike, so their comparison cannot see it) by 2 log2(8.5) =
    # 6.2 or by log det Sigma_y / (d log 2) = -4.5 bits. Training plays no part: it is faked.
    d, s = cnf_digits.DIM, cnf_digits.SCALE
    flip = {"scale Jacobian sign": lambda log_q, h: log_q - h + d * math.log(s),
            "whitening log-det sign": lambda log_q, h: log_q + h - d * math.log(s)}[fault]
    monkeypatch.setattr(cnf_digits, "_bits",
                        lambda log_q, h: -flip(log_q, h) / (d * math.log(2.0)))
    untrained(monkeypatch, cnf_digits)
    assert_caught(run("cnf-digits", **CNF), "vs closed form")


def test_bad_config_values_are_refused():
    for name, field, value in [("anode-digits", "min_accuracy", 1.5),
                               ("anode-digits", "tolerances", (1e-3, -1.0)),
                               ("anode-digits", "saved_times", 1),
                               ("anode-digits", "augment", -1),
                               ("cnf-digits", "margin_se", 0.0),
                               ("cnf-digits", "learning_rate", -1.0),
                               ("cnf-digits", "train_steps", 0)]:
        with pytest.raises(ValueError, match=field):
            run(name, **{field: value})
