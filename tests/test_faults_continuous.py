"""Planted faults in the continuous-time network experiments (cnf-2d, otflow-moons,
anode-circles): each must make a named check fail."""

import jax
import numpy as np
import pytest
from faults import assert_caught, diverged, untrained

import flowjax_lab as fl
from flowjax_lab.experiments import _toy_densities, anode_circles, cnf_2d, otflow_moons

# Smaller than quick: these faults (no training, NaN parameters, two identical models) are
# caught at any training length.
CNF = {"n": 200, "train_steps": 20, "width": 16, "grid": 20, "probes": 4}
OTFLOW = {"train_steps": 20, "batch": 64, "width": 16, "n_eval": 200, "grid": 20}
ANODE = {"n": 200, "train_steps": 20, "width": 8, "grid": 10}


def run(name, **overrides):
    return fl.experiments.run(name, quick=True, **overrides)


@pytest.mark.parametrize("name, module, sizes, caught", [
    # an untrained flow is no better than one Gaussian
    ("cnf-2d", cnf_2d, CNF, ["vs untrained", "best single Gaussian"]),
    # two untrained models tie: no penalty makes a difference
    ("otflow-moons", otflow_moons, OTFLOW, ["vs untrained", "straightens paths",
                                            "lowers the HJB residual"]),
    ("anode-circles", anode_circles, ANODE, ["vs untrained", "vs the Bayes classifier"]),
])
def test_untrained(monkeypatch, name, module, sizes, caught):
    untrained(monkeypatch, module)
    assert_caught(run(name, **sizes), *caught)


@pytest.mark.parametrize("name, module, sizes", [
    ("cnf-2d", cnf_2d, CNF),
    ("otflow-moons", otflow_moons, OTFLOW),
    ("anode-circles", anode_circles, ANODE),
])
def test_diverged(monkeypatch, name, module, sizes):
    diverged(monkeypatch, module)
    assert_caught(run(name, **sizes), "training", "vs untrained")


def test_otflow_penalties_switched_off():
    # both runs become the likelihood-only one: a tie must fail every penalty comparison
    assert_caught(run("otflow-moons", weights=(0.0, 10.0, 0.0), **OTFLOW),
                  "straightens paths", "lowers the transport cost", "lowers the HJB residual")


def test_anode_without_augmentation():
    # the "augmented" model is the plain one: no better in cross-entropy
    assert_caught(run("anode-circles", augment=0, **ANODE), "augmented vs plain")


def test_cnf_base_density_without_its_constant(monkeypatch, fresh_traces):
    # log N(z) without -d/2 log(2 pi): training is unchanged (a constant), but every density is
    # e^{log 2 pi} = 6.3 times too large, and the NLL 1.84 nats too low, below the data's own
    # (at quick size, where the trained NLL is within 1.84 nats of the data's)
    drop_constant = lambda z: -0.5 * jax.numpy.sum(z**2, axis=1)
    monkeypatch.setattr(cnf_2d, "isotropic_log_prob", drop_constant)
    monkeypatch.setattr(fl.learn._cnf, "isotropic_log_prob", drop_constant)
    assert_caught(run("cnf-2d"), "density integrates to one", "exact data density")


def test_bad_config_values_are_refused():
    for name, field, value in [("cnf-2d", "learning_rate", -1.0), ("cnf-2d", "data", "spirals"),
                               ("otflow-moons", "weights", (1.0, -1.0, 5.0)),
                               ("anode-circles", "ode_steps", 0)]:
        with pytest.raises(ValueError, match=field):
            run(name, **{field: value})


@pytest.mark.parametrize("name", _toy_densities.NAMES)
def test_reference_densities_integrate_to_one_and_classify_their_samples(getkey, name):
    # the references of the likelihood and Bayes checks, against the samplers themselves
    g = np.linspace(-7.0, 7.0, 141)  # spacing 0.1, at most the noise: the sum is exact to 1e-8
    grid = np.stack(np.meshgrid(g, g), axis=-1).reshape(-1, 2)
    density = np.exp(np.concatenate([_toy_densities.log_density(name, rows)
                                     for rows in np.array_split(grid, 40)]))
    np.testing.assert_allclose(np.sum(density) * (g[1] - g[0]) ** 2, 1.0, atol=1e-6)
    x, labels = fl.datasets.sample_labeled(name, getkey(), 2000)
    per_class = _toy_densities.class_log_densities(name, x)
    if per_class.shape[1] > 1:  # the classes overlap by less than 1%
        assert np.mean(np.argmax(per_class, axis=1) == np.asarray(labels)) > 0.99
