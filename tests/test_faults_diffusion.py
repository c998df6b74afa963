"""Planted faults in diffusion-gaussian-samplers, diffusion-memorization and diffusion-vs-fm: each
must make the run fail a named check."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import pytest
from faults import assert_caught

import flowjax_lab as fl
from flowjax_lab.diffusion import _reverse_sde
from flowjax_lab.experiments import (
    diffusion_gaussian_samplers as experiment,
    diffusion_memorization as memorization,
    diffusion_vs_fm as vs_fm,
)

NAME = "diffusion-gaussian-samplers"
real_score = experiment.exact_score


def run(**overrides):
    return fl.experiments.run(NAME, quick=True, **overrides)


def test_negated_score(monkeypatch):
    monkeypatch.setattr(experiment, "exact_score", lambda process, cov0: (
        lambda t, x: -real_score(process, cov0)(t, x)))
    assert_caught(run(), "ddim: particle covariance vs recursion",
                  "reverse_sde_euler_maruyama: particle covariance vs recursion")


def test_score_of_the_wrong_covariance(monkeypatch):
    """The principal axes rotated the wrong way (R^T D R instead of R D R^T)."""
    def wrong(process, cov0):
        c, s = np.cos(1.2), np.sin(1.2)  # twice the config's 0.6: R^T (R D R^T) R -> R^T D R
        rot = jnp.asarray([[c, s], [-s, c]], cov0.dtype)
        return real_score(process, rot @ cov0 @ rot.T)
    monkeypatch.setattr(experiment, "exact_score", wrong)
    assert_caught(run(), "heun_edm: particle covariance vs recursion",
                  "reverse_sde_heun: particle covariance vs recursion")


def test_time_running_the_wrong_way(monkeypatch):
    monkeypatch.setattr(experiment, "exact_score", lambda process, cov0: (
        lambda t, x: real_score(process, cov0)(1 - t, x)))
    assert_caught(run(), "dpm_solver_2: particle covariance vs recursion",
                  "probability_flow_euler: particle covariance vs recursion")


def test_too_few_steps():
    assert_caught(run(steps=(1, 2, 4), particle_steps=2), "ddim: fitted order",
                  "ddim: sampled covariance error vs the exact marginal")


def test_dpm_solver_falls_back_to_first_order(monkeypatch):
    """DPM-Solver-2 silently replaced by DDIM on the same log-SNR grid."""
    monkeypatch.setattr(experiment, "dpm_solver_2", lambda model, process, x, **kw: (
        fl.diffusion.ddim(model, process, x, spacing="log_snr", **kw)))
    assert_caught(run(), "dpm_solver_2: particle covariance vs recursion")


def test_edm_without_its_corrector(monkeypatch):
    monkeypatch.setattr(experiment, "heun_edm", lambda model, process, x, **kw: (
        fl.diffusion.ddim(model, process, x, spacing="edm", **kw)))
    assert_caught(run(), "heun_edm: particle covariance vs recursion")


class _NoNoise(eqx.Module):
    process: object

    def __call__(self, s, x, args=None):
        return jnp.zeros((), x.dtype)


def test_reverse_sde_without_noise(monkeypatch):
    monkeypatch.setattr(_reverse_sde, "_ReverseDiffusion", _NoNoise)
    assert_caught(run(), "reverse_sde_euler_maruyama: particle covariance vs recursion",
                  "reverse_sde_heun: particle covariance vs recursion")


def test_prior_too_wide(monkeypatch):
    """Particles started from 1.5 times the marginal's covariance: the stochastic samplers forget
    it, the probability flow carries it to the end."""
    real = experiment.start_particles
    monkeypatch.setattr(experiment, "start_particles", lambda key, cov, n: real(key, 1.5 * cov, n))
    assert_caught(run(), "probability_flow_tsit5 (adaptive): particle covariance vs the exact",
                  "ddim: sampled covariance error vs the exact marginal")


@pytest.mark.parametrize("name, overrides, field", [
    (NAME, {"t_min": 0.0}, "t_min"), (NAME, {"t_max": 1.5}, "t_max"), (NAME, {"eta": 2.0}, "eta"),
    (NAME, {"steps": (64,)}, "steps"), (NAME, {"n": 0}, "n"),
    (NAME, {"eigenvalues": (1.0, -1.0)}, "eigenvalues"),
    ("diffusion-memorization", {"bandwidth": 0.0}, "bandwidth"),
    ("diffusion-memorization", {"t_min": 1.0}, "t_min"),
    ("diffusion-memorization", {"sde_steps": 0}, "sde_steps"),
    ("diffusion-vs-fm", {"w2_target": -0.1}, "w2_target"),
    ("diffusion-vs-fm", {"t_min": 2.0}, "t_min"),
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
