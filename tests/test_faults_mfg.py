"""Planted faults in the mean-field-game and trajectory-inference experiments (mfg-transport,
mfg-crowd, trajectory-inference): each must make a named check fail.

Faults that do not need a trained network run at a tiny size (ten training steps); the faults
that only show once the network has learnt the problem (an obstacle left out of the cost, a
kinetic cost counted twice, a log-density of the wrong sign, snapshot times in the wrong unit)
run at the quick size, where the unfaulted experiment passes.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
from faults import assert_caught, diverged, untrained

import flowjax_lab as fl
from flowjax_lab.experiments import mfg_crowd, mfg_transport, trajectory_inference
from flowjax_lab.learn import _mfg

TINY_GAME = {"train_steps": 10, "eval_every": 10, "batch": 64, "n_eval": 128}
TINY_SNAPSHOTS = {"train_steps": 10, "n": 48, "batch": 48}


def run_transport(**overrides):
    return fl.experiments.run("mfg-transport", quick=True, **overrides)


def run_crowd(**overrides):
    return fl.experiments.run("mfg-crowd", quick=True, **overrides)


def run_snapshots(**overrides):
    # The gradient of the Sinkhorn divergence is traced outside ``transport._ott``'s promotion
    # context (ott-jax's backward pass), which the strict harness rejects: allow it here only.
    with jax.numpy_rank_promotion("allow"), jax.numpy_dtype_promotion("standard"):
        return fl.experiments.run("trajectory-inference", quick=True, **overrides)


def characteristics_with(channel, factor):
    """The characteristics' right-hand side with state channel `channel` (an offset past the d
    positions: 0 the log-density, 1 the transport cost) multiplied by `factor`."""

    class Faulty(_mfg._Characteristics):
        def __call__(self, t, y, args=None):
            return super().__call__(t, y, args).at[:, self.game.dim + channel].multiply(factor)

    return Faulty


def frozen(monkeypatch, module):
    """Training that returns a constant value function: nobody moves."""

    def fake(loss, model, optimizer, key, **kwargs):
        fitted = fl.learn.fit(loss, model, optimizer, key, **kwargs)
        still = eqx.tree_at(lambda p: (p.w, p.A, p.c), fitted.model, replace_fn=jnp.zeros_like)
        return dataclasses.replace(fitted, model=still)

    monkeypatch.setattr(module, "fit", fake)


# mfg-transport


def test_transport_untrained(monkeypatch):
    untrained(monkeypatch, mfg_transport)
    assert_caught(run_transport(**TINY_GAME), "HJB residual", "nearer rho_1 than the untrained")


def test_transport_diverged(monkeypatch):
    diverged(monkeypatch, mfg_transport)
    assert_caught(run_transport(**TINY_GAME), "training ended ok", "nearer rho_1", "Talagrand",
                  "optimality")


@pytest.mark.slow
def test_transport_log_density_sign_flipped(monkeypatch):
    # l' = +tr(grad^2 Phi) / a_1: the solver's density is not that of its particles, and the
    # training, rewarded for contracting, drives its reported KL below what the particles show
    monkeypatch.setattr(_mfg, "_Characteristics", characteristics_with(0, -1.0))
    assert_caught(run_transport(), "Talagrand")


@pytest.mark.slow
def test_transport_kinetic_cost_without_the_half(monkeypatch):
    # L' = |v|^2 instead of |v|^2 / 2: a flow trained and measured with a cost twice too high
    monkeypatch.setattr(_mfg, "_Characteristics", characteristics_with(1, 2.0))
    assert_caught(run_transport(), "optimality")


# mfg-crowd


def test_crowd_untrained(monkeypatch):
    untrained(monkeypatch, mfg_transport)  # the crowd trains with mfg_transport.solve_game
    assert_caught(run_crowd(**TINY_GAME), "HJB residual", "nearer rho_1 than the untrained",
                  "optimum's reach")


def test_crowd_diverged(monkeypatch):
    diverged(monkeypatch, mfg_transport)
    assert_caught(run_crowd(**TINY_GAME), "training ended ok", "nearer rho_1", "Talagrand",
                  "optimum's reach", "obstacle mass")


def test_crowd_frozen_passes_the_obstacle_but_not_the_target(monkeypatch):
    frozen(monkeypatch, mfg_transport)
    result = run_crowd(**TINY_GAME)
    assert_caught(result, "nearer rho_1", "optimum's reach")
    assert "d=2: obstacle mass below that of straight paths" not in result.failed_checks


@pytest.mark.slow
def test_crowd_log_density_sign_flipped(monkeypatch):
    # the training contracts the crowd to lower the density it believes in: negative "KL"
    monkeypatch.setattr(_mfg, "_Characteristics", characteristics_with(0, -1.0))
    assert_caught(run_crowd(), "Talagrand")


@pytest.mark.slow
def test_crowd_obstacle_left_out_of_the_cost(monkeypatch):
    monkeypatch.setattr(mfg_crowd, "crowd_game",
                        lambda dim, **kw: fl.learn.crowd_game(dim, obstacle_height=0.0, **kw))
    assert_caught(run_crowd(), "obstacle mass")


# trajectory-inference


def test_snapshots_untrained(monkeypatch):
    untrained(monkeypatch, trajectory_inference)
    assert_caught(run_snapshots(**TINY_SNAPSHOTS), "velocity error over",
                  "half the untrained")


def test_snapshots_diverged(monkeypatch):
    diverged(monkeypatch, trajectory_inference)
    assert_caught(run_snapshots(**TINY_SNAPSHOTS), "training ended ok", "velocity error over",
                  "half the untrained")


@pytest.mark.slow
def test_snapshots_times_in_the_wrong_unit(monkeypatch):
    # snapshot times read at twice their value: the fitted flow runs at half the true speed
    class SlowClock(fl.learn.SnapshotLoss):
        def __init__(self, snapshots, times, **kwargs):
            super().__init__(snapshots, 2 * times, **kwargs)

    monkeypatch.setattr(trajectory_inference.learn, "SnapshotLoss", SlowClock)
    assert_caught(run_snapshots(), "velocity error over")
