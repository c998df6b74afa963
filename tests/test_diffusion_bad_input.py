"""Bad input to the diffusion API and its theory: each row is (call, exception, message regex)."""

import jax
import jax.numpy as jnp
import pytest

import flowjax_lab as fl

D = fl.diffusion
X = jnp.zeros((4, 2))
KEY = jax.random.key(0)
VP, FM = D.VP(), D.FlowMatchingPath()
EYE = jnp.eye(2)


def _score(t, x):
    return -x


def _bad_model(t, x):
    return x[:, :1]


CASES = [
    # processes
    (lambda: D.VP(beta_min=-0.1), ValueError, r"`beta_min` must be >= 0"),
    (lambda: D.VP(beta_max=0.0), ValueError, r"`beta_max` must be > 0"),
    (lambda: D.VP(beta_min=5.0, beta_max=1.0), ValueError, r"`beta_max` must be >= `beta_min`"),
    (lambda: D.VP(beta_min="a"), TypeError, r"`beta_min` must be a real number"),
    (lambda: D.VP(beta_max=float("nan")), ValueError, r"`beta_max` must be a finite scalar"),
    (lambda: D.VE(sigma_min=0.0), ValueError, r"`sigma_min` must be > 0"),
    (lambda: D.VE(sigma_min=2.0, sigma_max=1.0), ValueError, r"`sigma_max` must be > `sigma_min`"),
    (lambda: D.VE(sigma_max=(1.0, 2.0)), TypeError, r"`sigma_max` must be a real number"),
    (lambda: VP.sample_marginal(KEY, X, 1.5), ValueError, r"`t` must lie in \[0, 1\]"),
    (lambda: VP.sample_marginal(KEY, X, jnp.full(3, 0.5)), ValueError,
     r"`t` must be a scalar or of shape \(4,\)"),
    (lambda: VP.sample_marginal(KEY, jnp.zeros(4), 0.5), ValueError, r"`x0`.*\(n, d\)"),
    (lambda: VP.sample_marginal(None, X, 0.5), TypeError, r"`key` must be a jax.random key"),
    (lambda: VP.sample_prior(KEY, 0, 2), ValueError, r"`n` must be an integer >= 1"),
    (lambda: VP.drift(0.5, jnp.zeros(3)), ValueError, r"`x`.*\(n, d\)"),
    # conversions
    (lambda: D.convert_prediction(X, 0.5, X, "vp", "eps", "x0"), TypeError,
     r"`process` must be a diffusion process"),
    (lambda: D.convert_prediction(X, 0.5, X, VP, "noise", "x0"), ValueError,
     r"Unknown `source` 'noise'"),
    (lambda: D.convert_prediction(X, 0.5, X, VP, "eps", "scroe"), ValueError,
     r"Unknown `target`.*Did you mean 'score'"),
    (lambda: D.convert_prediction(jnp.zeros((4, 3)), 0.5, X, VP, "eps", "x0"), ValueError,
     r"`value` must be shaped like `x`"),
    (lambda: D.convert_prediction(X, -0.5, X, VP, "eps", "x0"), ValueError,
     r"`t` must lie in \[0, 1\]"),
    (lambda: D.convert_prediction(X, 0.5, jnp.zeros(4), VP, "eps", "x0"), ValueError,
     r"`x`.*\(n, d\)"),
    # the loss
    (lambda: D.DenoisingScoreMatching("vp", X), TypeError, r"`process` must be"),
    (lambda: D.DenoisingScoreMatching(VP, X, prediction="noise"), ValueError,
     r"Unknown `prediction`"),
    (lambda: D.DenoisingScoreMatching(VP, X, weighting="elbo"), ValueError,
     r"Unknown `weighting` 'elbo'"),
    (lambda: D.DenoisingScoreMatching(VP, X, batch_size=0), ValueError, r"`batch_size`"),
    (lambda: D.DenoisingScoreMatching(VP, X, t_min=0.0), ValueError, r"`t_min` must be > 0"),
    (lambda: D.DenoisingScoreMatching(VP, X, t_min=1.0), ValueError, r"`t_min` must be < 1"),
    (lambda: D.DenoisingScoreMatching(VP, jnp.zeros(5)), ValueError, r"`data`.*\(n, d\)"),
    (lambda: D.DenoisingScoreMatching(VP, "moons"), TypeError, r"`data` must be a sampler"),
    (lambda: D.DenoisingScoreMatching(VP, X, batch_size=8)(_bad_model, KEY), ValueError,
     r"`model` must return an array shaped like its input x \(1, 2\), got \(1, 1\)"),
    # grids
    (lambda: D.time_grid(VP, 0), ValueError, r"`steps` must be an integer >= 1"),
    (lambda: D.time_grid(VP, 4, spacing="karras"), ValueError, r"Unknown `spacing` 'karras'"),
    (lambda: D.time_grid(VP, 4, t_min=0.5, t_max=0.5), ValueError,
     r"0 <= t_min < t_max <= 1"),
    (lambda: D.time_grid(VP, 4, t_max=1.5), ValueError, r"0 <= t_min < t_max <= 1"),
    (lambda: D.time_grid(VP, 4, t_max="1"), TypeError, r"`t_max` must be a Python number"),
    (lambda: D.time_grid(VP, 4, spacing="edm", rho=0.0), ValueError, r"`rho` must be > 0"),
    (lambda: D.time_grid(FM, 4, spacing="log_snr"), ValueError,
     r"`t_max` = 1.0: the log-SNR is infinite"),
    (lambda: D.time_grid(VP, 4, spacing="log_snr", t_min=0.0), ValueError,
     r"`t_min` = 0.0: the log-SNR is infinite"),
    # samplers
    (lambda: D.sample_reverse_sde(_score, VP, X, KEY, prediction="score", steps=4,
                                  method="milstein"), ValueError, r"Unknown `method`"),
    (lambda: D.sample_reverse_sde(_score, VP, X, None, prediction="score", steps=4), TypeError,
     r"`key` must be a jax.random key"),
    (lambda: D.sample_reverse_sde(_score, VP, X, KEY, prediction="score", steps=0), ValueError,
     r"`steps`"),
    (lambda: D.sample_reverse_sde(_score, FM, X, KEY, prediction="score", steps=4), ValueError,
     r"`t_max` = 1.0: the diffusion g\(t_max\) is infinite"),
    (lambda: D.sample_reverse_sde(_bad_model, VP, X, KEY, prediction="score", steps=4),
     ValueError, r"`model` must return an array shaped like x \(4, 2\), got \(4, 1\)"),
    (lambda: D.sample_reverse_sde(3, VP, X, KEY, prediction="score", steps=4), TypeError,
     r"`model` must be callable"),
    (lambda: D.sample_probability_flow(_score, VP, X, prediction="score", solver="rk45"),
     ValueError, r"Unknown `solver` 'rk45'"),
    (lambda: D.sample_probability_flow(_score, VP, X, prediction="score", solver="euler"),
     ValueError, r"`solver` 'euler' has no error estimate: pass `steps`"),
    (lambda: D.sample_probability_flow(_score, VP, X, prediction="denoiser"), ValueError,
     r"Unknown `prediction` 'denoiser'"),
    (lambda: D.sample_probability_flow(_score, VP, jnp.zeros((0, 2)), prediction="score"),
     ValueError, r"`x` must hold at least one particle"),
    (lambda: D.ddim(_score, VP, X, KEY, prediction="score", steps=4, eta=1.5), ValueError,
     r"`eta` must lie in \[0, 1\]"),
    (lambda: D.ddim(_score, VP, X, KEY, prediction="score", steps=4, eta=-0.1), ValueError,
     r"`eta` must be >= 0"),
    (lambda: D.ddim(_score, VP, X, prediction="score", steps=4, eta=0.5), TypeError,
     r"`key` must be a jax.random key"),
    (lambda: D.ddim(_score, VP, X, prediction="score", steps=4, t_min=2.0), ValueError,
     r"0 <= t_min < t_max <= 1"),
    (lambda: D.heun_edm(_score, VP, X, prediction="score", steps=4, rho=-7.0), ValueError,
     r"`rho` must be > 0"),
    (lambda: D.heun_edm(_score, FM, X, prediction="score", steps=4), ValueError,
     r"the log-SNR is infinite there \(alpha\(t_max\) = 0\)"),
    (lambda: D.dpm_solver_2(_score, VP, X, prediction="score", steps=4, t_min=0.0), ValueError,
     r"sigma\(t_min\) = 0"),
    (lambda: D.dpm_solver_2(_score, VP, X, prediction="score", steps=4, spacing="linear"),
     ValueError, r"Unknown `spacing`"),
    (lambda: D.log_likelihood(_score, VP, X, prediction="score", method="trace"), ValueError,
     r"Unknown `log_density` 'trace'"),
    (lambda: D.log_likelihood(_score, VP, X, prediction="score", method="hutchinson"),
     TypeError, r"`key` must be a jax.random key"),
    (lambda: D.log_likelihood(_score, VP, X, prediction="score", prior_log_prob=1.0),
     TypeError, r"`prior_log_prob` must be callable"),
    # fields
    (lambda: D.ProbabilityFlow(None, VP, "score"), TypeError, r"`model` must be callable"),
    (lambda: D.ProbabilityFlow(_score, VP, "speed"), ValueError, r"Unknown `prediction`"),
    (lambda: D.to_flow_matching(_score, "fm", "score"), TypeError, r"`process` must be"),
    (lambda: D.to_flow_matching("model", VP, "score"), TypeError, r"`model` must be callable"),
    (lambda: D.FlowMatchingVelocity(_score, VP, "noise"), ValueError, r"Unknown `prediction`"),
    (lambda: D.EmpiricalScore(VP, jnp.zeros(5)), ValueError, r"`data`.*\(n, d\)"),
    (lambda: D.EmpiricalScore(VP, X, jnp.ones(3) / 3), ValueError, r"`weights`.*\(4,\)"),
    (lambda: D.EmpiricalScore(VP, X, chunk_size=0), ValueError, r"`chunk_size`"),
    (lambda: D.EmpiricalScore(VP, X, bandwidth=-0.1), ValueError, r"`bandwidth` must be >= 0"),
    (lambda: D.EmpiricalScore(VP, X, bandwidth=jnp.ones(2)), ValueError,
     r"`bandwidth` must be a scalar"),
    (lambda: D.EmpiricalScore(None, X), TypeError, r"`process` must be"),
    (lambda: D.EmpiricalScore(VP, X)(0.5, jnp.zeros((3, 5))), ValueError, r"`x`.*d = 2"),
    # theory
    (lambda: fl.theory.diffusion_covariance(jnp.zeros((2, 3)), 1.0, 0.5), ValueError,
     r"`cov0` must be a square matrix"),
    (lambda: fl.theory.diffusion_covariance(EYE, jnp.ones(2), 0.5), ValueError,
     r"`alpha` must be a scalar"),
    (lambda: fl.theory.gaussian_score(X, jnp.zeros(3), EYE), ValueError,
     r"`mean` must have shape \(2,\)"),
    (lambda: fl.theory.gaussian_score(X, jnp.zeros(2), -EYE), ValueError,
     r"`cov` must be positive definite"),
    (lambda: fl.theory.gaussian_mixture_score(X, jnp.zeros((3, 2)), jnp.ones((2, 2, 2)),
                                              jnp.ones(3) / 3), ValueError,
     r"`covs` must have shape \(3, 2, 2\)"),
    (lambda: fl.theory.gaussian_mixture_score(X, jnp.zeros((2, 2)), jnp.stack([EYE, -EYE]),
                                              jnp.ones(2) / 2), ValueError,
     r"`covs\[1\]` must be positive definite"),
    (lambda: fl.theory.gaussian_mixture_score(X, jnp.zeros((2, 2)), jnp.stack([EYE, EYE]),
                                              jnp.ones(2)), ValueError, r"`weights` must sum"),
    (lambda: fl.theory.diffusion_sampler_covariance(EYE, EYE, jnp.array([1.0, 0.1]), VP.alpha,
                                                    VP.sigma, sampler="euler"), ValueError,
     r"Unknown `sampler` 'euler'"),
    (lambda: fl.theory.diffusion_sampler_covariance(EYE, EYE, jnp.array([0.1, 1.0]), VP.alpha,
                                                    VP.sigma, sampler="ddim"), ValueError,
     r"`ts` must be strictly decreasing"),
    (lambda: fl.theory.diffusion_sampler_covariance(EYE, EYE, jnp.array([1.0]), VP.alpha,
                                                    VP.sigma, sampler="ddim"), ValueError,
     r"`ts` must be a 1-D array of at least 2 times"),
    (lambda: fl.theory.diffusion_sampler_covariance(EYE, EYE, jnp.array([1.0, 0.1]), 1.0,
                                                    VP.sigma, sampler="ddim"), TypeError,
     r"`alpha` must be a callable"),
    (lambda: fl.theory.diffusion_sampler_covariance(EYE, EYE, jnp.array([1.0, 0.1]), VP.alpha,
                                                    VP.sigma, sampler="ddim", eta=2.0),
     ValueError, r"`eta` must lie in \[0, 1\]"),
    (lambda: fl.theory.diffusion_sampler_covariance(EYE, jnp.eye(3), jnp.array([1.0, 0.1]),
                                                    VP.alpha, VP.sigma, sampler="ddim"),
     ValueError, r"`cov_start` must have shape \(2, 2\)"),
]


@pytest.mark.parametrize("call, error, message", CASES,
                         ids=[f"case{i}" for i in range(len(CASES))])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
