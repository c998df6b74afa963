"""Planted faults in the mean-field experiments (linear-network-riccati,
two-layer-teacher-student, depth-control): each must make a named check fail."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from faults import assert_caught, diverged, untrained

import flowjax_lab as fl
from flowjax_lab.experiments import (
    depth_control,
    linear_network_riccati as riccati,
    two_layer_teacher_student as teacher_student,
)
from flowjax_lab.fields import LinearNetworkField, TwoLayerMeanField
from flowjax_lab.learn import DepthControl, DepthControlLoss
from flowjax_lab.transport._ott import ott_promotion

RICCATI = {"widths": (50, 3200), "repeats": 4}  # a slope tolerance of 0.34, as at quick size
STUDENTS = {"widths": (2, 16), "samples": 100, "test_samples": 1000, "t1": 50.0, "steps": 250,
            "saved_times": 11}
DEPTH = {"n": 32, "layers": 2, "steps": 40, "evaluation_n": 256}


def scaled_velocity(base, factor):
    """`base` (a field class) whose velocity is multiplied by `factor` (0: frozen, -1: ascent,
    NaN: a training that blew up)."""

    class Scaled(base):
        def __call__(self, t, x, args=None):
            return factor * super().__call__(t, x, args)

    return Scaled


def run_riccati(**overrides):
    return fl.experiments.run("linear-network-riccati", quick=True, **{**RICCATI, **overrides})


def run_students(**overrides):
    return fl.experiments.run("two-layer-teacher-student", quick=True,
                              **{**STUDENTS, **overrides})


def run_depth(**overrides):
    # ott-jax's backward pass is traced by `fit`'s value_and_grad, outside the promotion context
    # of transport (see test_depth_control.py): the training runs under it
    with ott_promotion():
        return fl.experiments.run("depth-control", quick=True, **{**DEPTH, **overrides})


@pytest.mark.parametrize("run", [run_riccati, run_students, run_depth],
                         ids=["riccati", "students", "depth"])
@pytest.mark.slow
def test_unplanted_runs_pass_at_the_test_sizes(run):
    # so that a failed check in the tests below comes from the planted fault
    result = run()
    assert result.passed, result.table()


@pytest.mark.parametrize("factor", [0.0, -1.0], ids=["frozen", "negated"])
def test_riccati_wrong_dynamics(monkeypatch, factor):
    monkeypatch.setattr(riccati, "LinearNetworkField", scaled_velocity(LinearNetworkField, factor))
    assert_caught(run_riccati(widths=(50, 400), repeats=1), "particle moments vs Riccati ODE",
                  "particle predictor at t1")


def test_riccati_init_scale_taken_as_a_standard_deviation(monkeypatch):
    # neurons drawn from N(0, init_scale^2 I) instead of N(0, init_scale I): the particles still
    # follow their own Riccati ODE, but not the population's, whatever the width
    monkeypatch.setattr(riccati, "Gaussian", lambda mean, cov: fl.Gaussian(mean, cov @ cov))
    assert_caught(run_riccati(), "slope of error")


def test_riccati_horizon_too_short():
    # t1 = 2.5 under the paper's risk (5 under the former 1/2 E|y - Mz|^2): the population
    # predictor is still 7e-3 from Syz Szz^-1 there, 70 times the check's 1e-4
    assert_caught(run_riccati(t1=2.5), "particle predictor at t1")


def test_students_frozen(monkeypatch):
    monkeypatch.setattr(teacher_student, "TwoLayerMeanField",
                        scaled_velocity(TwoLayerMeanField, 0.0))
    assert_caught(run_students(), "trained vs untrained", "final / initial", "narrow ones")


def test_students_diverged(monkeypatch):
    monkeypatch.setattr(teacher_student, "TwoLayerMeanField",
                        scaled_velocity(TwoLayerMeanField, jnp.nan))
    assert_caught(run_students(), "fresh samples vs closed form", "trained vs untrained",
                  "final / initial", "risk increase")


def test_students_gradient_ascent(monkeypatch):
    monkeypatch.setattr(teacher_student, "TwoLayerMeanField",
                        scaled_velocity(TwoLayerMeanField, -1.0))
    assert_caught(run_students(), "risk increase", "trained vs untrained")


def test_students_steps_too_large():
    # Heun with dt = 2.5: the discrete flow overshoots and the risk rises (it stays finite)
    assert_caught(run_students(steps=20), "risk increase")


def test_students_risk_without_its_half(monkeypatch):
    # |f - y|^2 instead of |f - y|^2 / 2: the flow still fits the teacher (twice as fast), but
    # the risk it reports is twice the population risk
    class Doubled(TwoLayerMeanField):
        def risk(self, x):
            return 2 * super().risk(x)

    monkeypatch.setattr(teacher_student, "TwoLayerMeanField", Doubled)
    assert_caught(run_students(), "fresh samples vs closed form")


def test_depth_control_untrained(monkeypatch):
    untrained(monkeypatch, depth_control)
    assert_caught(run_depth(), "Sinkhorn divergence to the target: trained vs untrained",
                  "Bures W2^2 of the transported covariance to the target: trained vs untrained")


def test_depth_control_diverged(monkeypatch):
    diverged(monkeypatch, depth_control)
    assert_caught(run_depth(), "training", "Sinkhorn divergence", "Bures")


def test_depth_control_learning_rate_too_large():
    # a real divergence: the tokens blow up (to ~1e11 in float64; to inf in float32, where the
    # loss turns NaN and `fit` stops with status NONFINITE)
    assert_caught(run_depth(learning_rate=30.0), "Sinkhorn divergence", "Bures")


def test_depth_control_loss_of_blown_up_tokens_is_nan():
    # NaN, which stops `fit`, rather than an error from the Sinkhorn solver's input check
    model = DepthControl.init(jax.random.key(0), 2, 1)
    model = eqx.tree_at(lambda m: m.V, model, jnp.full_like(model.V, jnp.inf))
    loss = DepthControlLoss(lambda k, n: jax.random.normal(k, (n, 2)),
                            lambda k, n: jax.random.normal(k, (n, 2)), 8)
    assert jnp.isnan(loss(model, jax.random.key(1)))


def test_depth_control_gradient_ascent(monkeypatch):
    real = fl.learn.fit

    def ascent(loss, model, optimizer, key, **kwargs):
        return real(lambda m, k: -loss(m, k), model, optimizer, key, **kwargs)

    monkeypatch.setattr(depth_control, "fit", ascent)
    assert_caught(run_depth(), "Sinkhorn divergence to the target: trained vs untrained")


def test_configs_refuse_bad_values():
    for name, field, value in [("linear-network-riccati", "widths", (50, 50)),
                               ("linear-network-riccati", "init_scale", -0.3),
                               ("two-layer-teacher-student", "test_samples", 0),
                               ("depth-control", "learning_rate", -1.0)]:
        with pytest.raises(ValueError, match=field):
            fl.experiments.run(name, quick=True, **{field: value})

