"""Planted faults in diffusion-gaussian-samplers, diffusion-memorization, diffusion-vs-fm and
diffusion-2d: each must make the run fail a named check."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from faults import assert_caught, diverged, untrained

import flowjax_lab as fl
from flowjax_lab.diffusion import _reverse_sde
from flowjax_lab.experiments import (
    diffusion_2d,
    diffusion_gaussian_samplers as experiment,
    diffusion_memorization as memorization,
    diffusion_vs_fm as vs_fm,
)

NAME = "diffusion-gaussian-samplers"
real_score = experiment.exact_score


def run(*samplers, **overrides):
    """The quick run with only `samplers`: the ones whose checks the fault must fail."""
    return fl.experiments.run(NAME, quick=True, samplers=samplers, **overrides)


def test_negated_score(monkeypatch):
    monkeypatch.setattr(experiment, "exact_score", lambda process, cov0: (
        lambda t, x: -real_score(process, cov0)(t, x)))
    assert_caught(run("ddim", "reverse_sde_euler_maruyama"),
                  "ddim: particle covariance vs recursion",
                  "reverse_sde_euler_maruyama: particle covariance vs recursion")


def test_score_of_the_wrong_covariance(monkeypatch):
    """The principal axes rotated the wrong way (R^T D R instead of R D R^T)."""
    def wrong(process, cov0):
        c, s = np.cos(1.2), np.sin(1.2)  # twice the config's 0.6: R^T (R D R^T) R -> R^T D R
        rot = jnp.asarray([[c, s], [-s, c]], cov0.dtype)
        return real_score(process, rot @ cov0 @ rot.T)
    monkeypatch.setattr(experiment, "exact_score", wrong)
    assert_caught(run("heun_edm", "reverse_sde_heun"), "heun_edm: particle covariance vs recursion",
                  "reverse_sde_heun: particle covariance vs recursion")


def test_time_running_the_wrong_way(monkeypatch):
    monkeypatch.setattr(experiment, "exact_score", lambda process, cov0: (
        lambda t, x: real_score(process, cov0)(1 - t, x)))
    assert_caught(run("dpm_solver_2", "probability_flow_euler"),
                  "dpm_solver_2: particle covariance vs recursion",
                  "probability_flow_euler: particle covariance vs recursion")


def test_too_few_steps():
    assert_caught(run("ddim", steps=(1, 2, 4), particle_steps=2), "ddim: fitted order",
                  "ddim: sampled covariance error vs the exact marginal")


def test_dpm_solver_falls_back_to_first_order(monkeypatch):
    """DPM-Solver-2 silently replaced by DDIM on the same log-SNR grid."""
    monkeypatch.setattr(experiment, "dpm_solver_2", lambda model, process, x, **kw: (
        fl.diffusion.ddim(model, process, x, spacing="log_snr", **kw)))
    assert_caught(run("dpm_solver_2"), "dpm_solver_2: particle covariance vs recursion")


def test_edm_without_its_corrector(monkeypatch):
    monkeypatch.setattr(experiment, "heun_edm", lambda model, process, x, **kw: (
        fl.diffusion.ddim(model, process, x, spacing="edm", **kw)))
    assert_caught(run("heun_edm"), "heun_edm: particle covariance vs recursion")


class _NoNoise(eqx.Module):
    process: object

    def __call__(self, s, x, args=None):
        return jnp.zeros((), x.dtype)


def test_reverse_sde_without_noise(monkeypatch):
    monkeypatch.setattr(_reverse_sde, "_ReverseDiffusion", _NoNoise)
    assert_caught(run("reverse_sde_euler_maruyama", "reverse_sde_heun"),
                  "reverse_sde_euler_maruyama: particle covariance vs recursion",
                  "reverse_sde_heun: particle covariance vs recursion")


def test_prior_too_wide(monkeypatch):
    """Particles started from 1.5 times the marginal's covariance: the stochastic samplers forget
    it, the probability flow carries it to the end."""
    real = experiment.start_particles
    monkeypatch.setattr(experiment, "start_particles", lambda key, cov, n: real(key, 1.5 * cov, n))
    assert_caught(run("probability_flow_tsit5", "ddim"),
                  "probability_flow_tsit5 (adaptive): particle covariance vs the exact",
                  "ddim: sampled covariance error vs the exact marginal")


@pytest.mark.parametrize("name, overrides, field", [
    (NAME, {"t_min": 0.0}, "t_min"), (NAME, {"t_max": 1.5}, "t_max"), (NAME, {"eta": 2.0}, "eta"),
    (NAME, {"steps": (64,)}, "steps"), (NAME, {"n": 0}, "n"),
    (NAME, {"eigenvalues": (1.0, -1.0)}, "eigenvalues"), (NAME, {"samplers": ()}, "samplers"),
    (NAME, {"samplers": ("euler",)}, "samplers"),
    ("diffusion-memorization", {"bandwidth": 0.0}, "bandwidth"),
    ("diffusion-memorization", {"t_min": 1.0}, "t_min"),
    ("diffusion-memorization", {"sde_steps": 0}, "sde_steps"),
    ("diffusion-vs-fm", {"w2_target": -0.1}, "w2_target"),
    ("diffusion-vs-fm", {"t_min": 2.0}, "t_min"),
    ("diffusion-memorization", {"max_spread": 0.0}, "max_spread"),
    ("diffusion-memorization", {"train_steps": 0}, "train_steps"),
    ("diffusion-2d", {"nfe": (8, 9)}, "nfe"), ("diffusion-2d", {"nfe": (16,)}, "nfe"),
    ("diffusion-2d", {"nfe": (16, 8)}, "nfe"),
    ("diffusion-2d", {"samplers": ("euler",)}, "samplers"),
    ("diffusion-2d", {"tasks": ("spirals",)}, "tasks"), ("diffusion-2d", {"t_min": 1.0}, "t_min"),
])
def test_bad_configs_are_refused(name, overrides, field):
    with pytest.raises(ValueError, match=field):
        fl.experiments.get(name).make_config(**overrides)


# diffusion-memorization

MEMORIZATION = "diffusion-memorization"


def run_memorization(**overrides):
    return fl.experiments.run(MEMORIZATION, quick=True, **overrides)


def test_memorizing_score_smoothed(monkeypatch):
    monkeypatch.setattr(memorization, "scores", lambda process, train, h: (
        fl.diffusion.EmpiricalScore(process, train, bandwidth=h),) * 2)
    assert_caught(run_memorization(), "PF-ODE of the exact score memorizes",
                  "max distance to the training set")


def test_smoothing_lost(monkeypatch):
    monkeypatch.setattr(memorization, "scores", lambda process, train, h: (
        fl.diffusion.EmpiricalScore(process, train),) * 2)
    assert_caught(run_memorization(), "smoothed score generalizes")


def test_score_of_the_wrong_process(monkeypatch):
    """The exact score of the VE process sampled with the VP process: the ODE collapses onto a
    few training points, the SDE blows up."""
    real = memorization.scores
    monkeypatch.setattr(memorization, "scores", lambda process, train, h: (
        fl.diffusion.EmpiricalScore(fl.diffusion.VE(), train), real(process, train, h)[1]))
    assert_caught(run_memorization(), "training points hit uniformly",
                  "reverse SDE of the exact score memorizes")


def test_sampling_stopped_early():
    assert_caught(run_memorization(t_min=0.3), "PF-ODE of the exact score memorizes",
                  "reverse SDE of the exact score memorizes")


def test_training_points_weighted_unevenly(monkeypatch):
    real = memorization.scores

    def uneven(process, train, h):
        weights = jnp.arange(1, train.shape[0] + 1, dtype=train.dtype)
        return (fl.diffusion.EmpiricalScore(process, train, weights / jnp.sum(weights)),
                real(process, train, h)[1])
    monkeypatch.setattr(memorization, "scores", uneven)
    assert_caught(run_memorization(), "training points hit uniformly")


# diffusion-vs-fm

VS_FM = "diffusion-vs-fm"


def run_vs_fm(**overrides):
    return fl.experiments.run(VS_FM, quick=True, **overrides)


def test_time_change_with_the_flipped_convention(monkeypatch):
    """tau read in the diffusion convention (noise at tau = 1) instead of learn's."""
    real = fl.diffusion.to_flow_matching
    monkeypatch.setattr(vs_fm, "to_flow_matching", lambda model, process, prediction: (
        lambda tau, y, args=None: real(model, process, prediction)(1 - tau, y, args)))
    assert_caught(run_vs_fm(), "time change: VP model as a flow-matching velocity")


def test_time_change_without_the_scale(monkeypatch):
    monkeypatch.setattr(vs_fm, "to_path", lambda x, process, t: x)
    assert_caught(run_vs_fm(), "time change: DDIM on VP vs DDIM on the flow-matching path")


def test_flow_matching_field_run_backwards(monkeypatch):
    real = vs_fm.flow_matching_field
    monkeypatch.setattr(vs_fm, "flow_matching_field", lambda cov0: (
        lambda tau, y, args=None: real(cov0)(1 - tau, y, args)))
    assert_caught(run_vs_fm(), "time change: VP model as a flow-matching velocity",
                  "learn's flow-matching Euler vs the flow-matching path recursion")


def test_ladder_too_short_for_the_target():
    assert_caught(run_vs_fm(steps=(1, 2)), "fm_euler: evaluations to W2")


# diffusion-gaussian-errors

from flowjax_lab.experiments import diffusion_gaussian_errors as errors  # noqa: E402

ERRORS = "diffusion-gaussian-errors"


def run_errors(**overrides):
    return fl.experiments.run(ERRORS, quick=True, **overrides)


def test_score_of_the_wrong_covariance_in_errors(monkeypatch):
    """The estimated covariance rotated by the wrong angle before it enters the score."""
    real = errors.estimated_score

    def wrong(process, mean, cov):
        c, s = np.cos(1.2), np.sin(1.2)
        rot = jnp.asarray([[c, s], [-s, c]], cov.dtype)
        return real(process, mean, rot @ cov @ rot.T)
    monkeypatch.setattr(errors, "estimated_score", wrong)
    assert_caught(run_errors(), "ddim: particle covariance vs the law",
                  "reverse_sde_euler_maruyama: particle covariance vs the law")


def test_score_without_the_mean(monkeypatch):
    real = errors.estimated_score
    monkeypatch.setattr(errors, "estimated_score", lambda process, mean, cov: real(
        process, jnp.zeros_like(mean), cov))
    assert_caught(run_errors(), "ddim: particle mean vs the law")


def test_early_stopping_ignored(monkeypatch):
    """The samplers run on to t = 1e-3 whatever t_min says (t_min = 0.2 here)."""
    real = errors.sample
    monkeypatch.setattr(errors, "sample", lambda name, model, process, x, key, steps, t_min: (
        real(name, model, process, x, key, steps, 1e-3)))
    assert_caught(run_errors(t_min=0.2), "ddim: particle covariance vs the law")


def test_score_estimated_from_the_population(monkeypatch):
    """Every data set replaced by the population moments: no estimation error is left."""
    real = errors.estimate
    monkeypatch.setattr(errors, "estimate", lambda x: tuple(
        jnp.broadcast_to(v, u.shape) for u, v in zip(
            real(x), errors.data_law(errors.Config(), x.dtype), strict=True)))
    assert_caught(run_errors(), "score term E W2^2 at n = 50",
                  "whole pipeline: E W2^2 = bias^2 + score^2")


@pytest.mark.parametrize("overrides, field", [
    ({"t_min": 1.5}, "t_min"), ({"t_maxs": (0.001, 1.0)}, "t_maxs"), ({"sizes": (50,)}, "sizes"),
    ({"datasets": 0}, "datasets"), ({"mean": (1.0,)}, "mean"),
])
def test_bad_errors_configs_are_refused(overrides, field):
    with pytest.raises(ValueError, match=field):
        fl.experiments.get(ERRORS).make_config(**overrides)


# diffusion-2d: one task without the exact arm, two samplers (first and second order), few steps

D2D = "diffusion-2d"
TINY = {"tasks": ("moons",), "samplers": ("ddim", "dpm_solver_2"), "train_steps": 300,
        "eval_points": 200, "nfe": (16, 32)}


def run_2d(**overrides):
    return fl.experiments.run(D2D, quick=True, **{**TINY, **overrides})


def test_2d_untrained(monkeypatch):
    untrained(monkeypatch, diffusion_2d)
    assert_caught(run_2d(), "trained (worst sampler) vs untrained (best sampler)")


def test_2d_diverged(monkeypatch):
    diverged(monkeypatch, diffusion_2d)
    assert_caught(run_2d(), "moons: training ended ok", "moons: every sample finite")


def test_2d_negated_score(monkeypatch):
    """The network's noise prediction negated (its last layer), so the score points away from
    the data."""
    real = diffusion_2d.eps_model
    last = lambda network: (network.mlp.layers[-1].weight, network.mlp.layers[-1].bias)
    monkeypatch.setattr(diffusion_2d, "eps_model", lambda network, process, exact: real(
        eqx.tree_at(last, network, replace_fn=jnp.negative), process, exact))
    assert_caught(run_2d(), "ddim at NFE 32: W2 to held-out data within the sampling floor")


def test_2d_trained_on_x0_sampled_as_eps(monkeypatch):
    """The network trained to predict the data x0 and read by the samplers as a noise
    prediction."""
    real = diffusion_2d.DenoisingScoreMatching
    monkeypatch.setattr(diffusion_2d, "DenoisingScoreMatching", lambda *args, **kwargs: real(
        *args, **{**kwargs, "prediction": "x0"}))
    assert_caught(run_2d(), "dpm_solver_2 at NFE 32: W2 to held-out data within the sampling")


SMALL_MEMORIZATION = {"n_generated": 200, "sde_steps": 64, "train_steps": 300}


def test_memorization_learned_score_replaced_by_the_exact_one(monkeypatch):
    real = memorization.learned_score
    monkeypatch.setattr(memorization, "learned_score", lambda config, process, train, key: (
        fl.diffusion.EmpiricalScore(process, train), "score",
        real(config, process, train, key)[2]))
    assert_caught(run_memorization(**SMALL_MEMORIZATION), "learned score generalizes")


def test_memorization_learned_score_untrained(monkeypatch):
    untrained(monkeypatch, memorization)
    assert_caught(run_memorization(**SMALL_MEMORIZATION), "learned score generates on the data")
