"""Planted faults in the transformer-dynamics experiments: each run must fail a named check.

Faults are planted by replacing a component where the experiment module finds it (its
``Attention``, ``simulate`` or ``residual_transformer``) with a broken one; sizes are cut by
config overrides to keep each test short.
"""

import equinox as eqx
import jax.numpy as jnp
import pytest
from faults import assert_caught

import flowjax_lab as fl
from flowjax_lab.experiments import (
    attention_blowup,
    attention_gaussian_closure,
    clustering_phase_diagram,
    depth_limit,
    sinkformer_vs_softmax,
)


def plant_attention(monkeypatch, module, change):
    """Build every attention field of `module` from ``change(Q, K, V, options) -> (Q, K, V,
    options)``."""
    real = module.Attention

    def planted(Q, K, V, **options):
        Q, K, V, options = change(Q, K, V, dict(options))
        return real(Q, K, V, **options)

    monkeypatch.setattr(module, "Attention", planted)


FIELD_FAULTS = {
    "frozen": lambda Q, K, V, o: (Q, K, 0 * V, o),
    "negated": lambda Q, K, V, o: (Q, K, -V, o),
    "double temperature": lambda Q, K, V, o: (2 * Q, K, V, o),
    "other transpose convention": lambda Q, K, V, o: (K, Q, V, o),
    "V transposed": lambda Q, K, V, o: (Q, K, V.T, o),
}


# attention-blowup: n = 2000 puts 5 sigma at t*/2 near 0.33, below every fault's error (~0.5).
BLOWUP = {"sizes": (2000,)}


@pytest.mark.parametrize("fault", ["frozen", "negated", "double temperature"])
def test_blowup_field_faults(monkeypatch, fault):
    plant_attention(monkeypatch, attention_blowup, FIELD_FAULTS[fault])
    result = fl.experiments.run("attention-blowup", quick=True, **BLOWUP)
    assert_caught(result, "closed form at t*/2")


def test_blowup_unnormalised_attention(monkeypatch):
    plant_attention(monkeypatch, attention_blowup,
                    lambda Q, K, V, o: (Q, K, V, {**o, "normalization": "mean"}))
    result = fl.experiments.run("attention-blowup", quick=True, **BLOWUP)
    assert_caught(result, "closed form at t*/2")


def test_blowup_overflow_past_tstar(monkeypatch):
    """The cloud turns to inf at the last saved time (1.2 t*), as an exp overflow would."""
    real = attention_blowup.simulate

    def overflowing(*args, **kwargs):
        traj = real(*args, **kwargs)
        return eqx.tree_at(lambda t: t.xs, traj, traj.xs.at[-1].set(jnp.inf))

    monkeypatch.setattr(attention_blowup, "simulate", overflowing)
    result = fl.experiments.run("attention-blowup", quick=True, **BLOWUP)
    assert_caught(result, "particles finite past t*")


# attention-gaussian-closure: at n = 4000 the tolerance (5 sigma ~ 0.15) is below every fault's
# error (0.24 for the frozen field, more for the others).
CLOSURE = {"sizes": (4000,)}


@pytest.mark.parametrize("fault", ["other transpose convention", "V transposed", "negated",
                                   "frozen", "double temperature"])
def test_closure_field_faults(monkeypatch, fault):
    plant_attention(monkeypatch, attention_gaussian_closure, FIELD_FAULTS[fault])
    result = fl.experiments.run("attention-gaussian-closure", quick=True, **CLOSURE)
    assert_caught(result, "second moments vs closure")


def test_closure_diverged_simulation(monkeypatch):
    real = attention_gaussian_closure.simulate

    def diverged(*args, **kwargs):
        traj = real(*args, **kwargs)
        return eqx.tree_at(lambda t: t.xs, traj, traj.xs.at[-1].set(jnp.nan))

    monkeypatch.setattr(attention_gaussian_closure, "simulate", diverged)
    result = fl.experiments.run("attention-gaussian-closure", quick=True, **CLOSURE)
    assert_caught(result, "second moments vs closure")


SINKFORMER = {"n": 32, "iterations": (1, 10)}


def test_sinkformer_sinkhorn_skipped(monkeypatch):
    """Sinkhorn normalisation silently replaced by softmax (the column steps never run)."""
    plant_attention(monkeypatch, sinkformer_vs_softmax,
                    lambda Q, K, V, o: (Q, K, V, {**o, "normalization": "softmax"}))
    result = fl.experiments.run("sinkformer-vs-softmax", quick=True, **SINKFORMER)
    assert_caught(result, "column-sum drift (Sinkhorn 10)", "mean gap vs softmax")


@pytest.mark.parametrize("fault", ["double temperature", "V transposed", "negated"])
def test_sinkformer_field_faults(monkeypatch, fault):
    plant_attention(monkeypatch, sinkformer_vs_softmax, FIELD_FAULTS[fault])
    result = fl.experiments.run("sinkformer-vs-softmax", quick=True, **SINKFORMER)
    assert_caught(result, "column-sum drift (softmax)", "column-sum drift (Sinkhorn 10)")


def test_sinkformer_diverged_field(monkeypatch):
    plant_attention(monkeypatch, sinkformer_vs_softmax,
                    lambda Q, K, V, o: (Q, K, V * jnp.nan, o))
    result = fl.experiments.run("sinkformer-vs-softmax", quick=True, **SINKFORMER)
    assert_caught(result, "column-sum drift (softmax)", "mean gap vs softmax")


CLUSTERING = {"dims": (2,), "betas": (0.25, 9.0), "clouds": 2, "saved_times": 11}


def test_clustering_frozen_field(monkeypatch):
    plant_attention(monkeypatch, clustering_phase_diagram, FIELD_FAULTS["frozen"])
    result = fl.experiments.run("clustering-phase-diagram", quick=True, **CLUSTERING)
    assert_caught(result, "pairs clustered", "multi-cluster span")


def test_clustering_repulsive_field(monkeypatch):
    plant_attention(monkeypatch, clustering_phase_diagram, FIELD_FAULTS["negated"])
    result = fl.experiments.run("clustering-phase-diagram", quick=True, **CLUSTERING)
    assert_caught(result, "pairs clustered", "multi-cluster span", "energy never decreases")


def test_clustering_temperature_lost(monkeypatch):
    """beta dropped from the scores (Q = I instead of beta I): no metastable clusters."""
    plant_attention(monkeypatch, clustering_phase_diagram,
                    lambda Q, K, V, o: (K, K, V, o))
    result = fl.experiments.run("clustering-phase-diagram", quick=True, **CLUSTERING)
    assert_caught(result, "pairs clustered at beta=9.0", "multi-cluster span")


def test_clustering_diverged_field(monkeypatch):
    plant_attention(monkeypatch, clustering_phase_diagram,
                    lambda Q, K, V, o: (Q, K, V * jnp.nan, o))
    result = fl.experiments.run("clustering-phase-diagram", quick=True, **CLUSTERING)
    assert_caught(result, "pairs clustered at beta=0.25", "pairs clustered at beta=9.0",
                  "energy never decreases", "simulation finished")


def test_clustering_solver_budget(monkeypatch):
    real = clustering_phase_diagram.simulate

    def starved(*args, **kwargs):
        if "max_steps" in kwargs:
            kwargs["max_steps"] = 50
        return real(*args, **kwargs)

    monkeypatch.setattr(clustering_phase_diagram, "simulate", starved)
    result = fl.experiments.run("clustering-phase-diagram", quick=True, **CLUSTERING)
    assert_caught(result, "simulation finished")


DEPTH = {"n": 16}


SIZES = {"attention-blowup": BLOWUP, "attention-gaussian-closure": CLOSURE,
         "sinkformer-vs-softmax": SINKFORMER, "clustering-phase-diagram": CLUSTERING,
         "depth-limit": DEPTH}


@pytest.mark.parametrize("name", SIZES)
@pytest.mark.slow
def test_sizes_of_the_fault_tests_pass_without_a_fault(name):
    result = fl.experiments.run(name, quick=True, **SIZES[name])
    assert result.passed, result.table()


def plant_transformer(monkeypatch, broken):
    real = depth_limit.residual_transformer
    monkeypatch.setattr(depth_limit, "residual_transformer",
                        lambda field, x0, layers: broken(real, field, x0, layers))


def test_depth_frozen_layers(monkeypatch):
    plant_transformer(monkeypatch, lambda real, field, x0, layers:
                      jnp.broadcast_to(x0, (layers + 1, *x0.shape)))
    result = fl.experiments.run("depth-limit", quick=True, **DEPTH)
    assert_caught(result, "order in 1/L (euclidean", "order in 1/L (sphere")


def test_depth_parameters_frozen_at_first_layer(monkeypatch):
    """Every layer uses the parameters of depth 0 (the depth dependence is lost)."""
    plant_transformer(monkeypatch, lambda real, field, x0, layers: real(
        lambda t, x, args: field(0.0, x, args), x0, layers,
        normalize=getattr(field, "sphere", False)))
    result = fl.experiments.run("depth-limit", quick=True, **DEPTH)
    assert_caught(result, "order in 1/L (euclidean", "order in 1/L (sphere")


def test_depth_wrong_step(monkeypatch):
    """Layer step 2/L instead of 1/L: the network integrates to depth 2."""
    plant_transformer(monkeypatch, lambda real, field, x0, layers: real(field, x0, layers,
                                                                        t1=2.0))
    result = fl.experiments.run("depth-limit", quick=True, **DEPTH)
    assert_caught(result, "order in 1/L (euclidean", "order in 1/L (sphere")


def test_depth_diverged(monkeypatch):
    plant_transformer(monkeypatch, lambda real, field, x0, layers:
                      real(field, x0, layers).at[-1].set(jnp.nan))
    result = fl.experiments.run("depth-limit", quick=True, **DEPTH)
    assert_caught(result, "order in 1/L (euclidean", "order in 1/L (sphere")


def test_depth_loose_reference(monkeypatch):
    """The ODE reference solved at tolerance 1e-3: its error floor flattens the slope."""
    real = depth_limit.simulate
    monkeypatch.setattr(depth_limit, "simulate", lambda field, x0, **kwargs: real(
        field, x0, **{**kwargs, "rtol": 1e-3, "atol": 1e-3}))
    result = fl.experiments.run("depth-limit", quick=True, **DEPTH)
    assert_caught(result, "order in 1/L")
