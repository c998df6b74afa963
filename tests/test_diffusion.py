"""Diffusion models: processes, prediction conversions, denoising score matching, the time change
to flow matching, likelihood and the exact empirical score, against closed forms."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flowjax_lab as fl

D = fl.diffusion
ROT = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
COV0 = jnp.asarray(ROT @ np.diag([2.0, 0.1]) @ ROT.T)
PROCESSES = {"vp": D.VP(), "ve": D.VE(), "fm": D.FlowMatchingPath()}


def marginal_cov(process, cov0, t):
    return fl.theory.diffusion_covariance(cov0, process.alpha(t), process.sigma(t))


def gaussian_score_model(process, cov0):
    """The exact score of N(0, cov0) pushed by `process` (a "score" model), in plain jnp."""
    def model(t, x):
        cov_t = process.alpha(t) ** 2 * cov0.astype(x.dtype) + process.sigma(t) ** 2 * jnp.eye(
            x.shape[1], dtype=x.dtype)
        return -jnp.linalg.solve(cov_t, x.T).T
    return model


def gaussian_predictions(process, cov0, t, x):
    """Every prediction kind on the target N(0, cov0), written from the marginal covariance
    V_t and its time derivative (by autodiff) rather than from the conversion formulas."""
    a, s = process.alpha(t), process.sigma(t)
    v_t, dv_t = jax.jvp(lambda u: marginal_cov(process, cov0, u), (jnp.asarray(t),),
                        (jnp.asarray(1.0),))
    precision_x = jnp.linalg.solve(v_t, x.T).T  # V_t^{-1} x (row form)
    eps = s * precision_x
    x0 = a * precision_x @ cov0
    return {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -precision_x,
            "velocity": 0.5 * precision_x @ dv_t}


@pytest.mark.parametrize("name", PROCESSES)
def test_process_coefficients_match_autodiff(name):
    process = PROCESSES[name]
    ts = jnp.linspace(0.05, 0.95, 7)
    d_alpha = jax.vmap(jax.grad(process.alpha))(ts)
    d_sigma = jax.vmap(jax.grad(process.sigma))(ts)
    np.testing.assert_allclose(process.d_alpha(ts), d_alpha, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(process.d_sigma(ts), d_sigma, rtol=1e-10)
    f = jax.vmap(jax.grad(lambda t: jnp.log(process.alpha(t))))(ts)
    np.testing.assert_allclose(process.f(ts), f, rtol=1e-10, atol=1e-12)
    g2 = jax.vmap(jax.grad(lambda t: process.sigma(t) ** 2))(ts) - 2 * f * process.sigma(ts) ** 2
    np.testing.assert_allclose(process.g2(ts), g2, rtol=1e-9)
    np.testing.assert_allclose(process.diffusion(ts) ** 2, g2, rtol=1e-9)
    lam = process.log_snr(ts)
    np.testing.assert_allclose(lam, jnp.log(process.alpha(ts) / process.sigma(ts)), rtol=1e-10)
    np.testing.assert_allclose(process.time_of_log_snr(lam), ts, rtol=1e-10)
    x = jnp.ones((3, 2))
    np.testing.assert_allclose(process.drift(0.3, x), process.f(0.3) * x, rtol=1e-12)


def test_process_ends_and_prior():
    vp, ve, fm = PROCESSES.values()
    np.testing.assert_allclose([vp.alpha(0.0), vp.sigma(0.0)], [1.0, 0.0])
    assert float(vp.alpha(1.0)) < 0.01 and abs(float(vp.prior_std) - 1) < 1e-4
    np.testing.assert_allclose([ve.sigma(0.0), ve.prior_std], [0.01, 50.0], rtol=1e-12)
    np.testing.assert_allclose([fm.alpha(1.0), fm.prior_std], [0.0, 1.0])
    x = ve.sample_prior(jax.random.key(0), 20000, 2, jnp.float32)
    assert x.dtype == jnp.float32 and x.shape == (20000, 2)
    assert abs(float(jnp.std(x)) / 50 - 1) < 0.02
    # beta_max = beta_min: the log-SNR inverse stays exact (no division by the slope).
    flat = D.VP(beta_min=2.0, beta_max=2.0)
    np.testing.assert_allclose(flat.time_of_log_snr(flat.log_snr(0.4)), 0.4, rtol=1e-12)


@pytest.mark.parametrize("name", PROCESSES)
def test_marginals_match_theory(getkey, name):
    process, n = PROCESSES[name], 20000
    x0 = fl.Gaussian(jnp.zeros(2), COV0).sample(getkey(), n)
    for t in (0.2, 0.7):
        xt = process.sample_marginal(getkey(), x0, t)
        expected = marginal_cov(process, COV0, t)
        err = float(fl.metrics.relative_error(fl.metrics.covariance(xt), expected))
        assert err < 6 / np.sqrt(n), (t, err)
    ts = jnp.array([0.0, 0.3, 0.6, 0.9])
    key = getkey()
    per_particle = process.sample_marginal(key, x0[:4], ts)
    eps = jax.random.normal(key, (4, 2))
    expected = process.alpha(ts)[:, None] * x0[:4] + process.sigma(ts)[:, None] * eps
    np.testing.assert_allclose(per_particle, expected, rtol=1e-12)


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_conversions_match_closed_forms(getkey, name, t):
    process = PROCESSES[name]
    x = jax.random.normal(getkey(), (6, 2))
    truth = gaussian_predictions(process, COV0, t, x)
    for source, target in itertools.permutations(truth, 2):
        got = D.convert_prediction(truth[source], t, x, process, source, target)
        np.testing.assert_allclose(got, truth[target], rtol=1e-9, atol=1e-9,
                                   err_msg=f"{name}: {source} -> {target}")


def test_velocity_is_the_probability_flow_drift(getkey):
    """``f x - g^2 / 2 score``, the definition of the probability-flow ODE."""
    x = jax.random.normal(getkey(), (5, 2))
    for process in PROCESSES.values():
        score = gaussian_predictions(process, COV0, 0.4, x)["score"]
        velocity = D.convert_prediction(score, 0.4, x, process, "score", "velocity")
        expected = process.f(0.4) * x - process.g2(0.4) / 2 * score
        np.testing.assert_allclose(velocity, expected, rtol=1e-10)
        field = D.ProbabilityFlow(gaussian_score_model(process, COV0), process, "score")
        np.testing.assert_allclose(field(0.4, x), expected, rtol=1e-10)


def test_conversions_per_particle_times_and_dtype(getkey):
    x = jax.random.normal(getkey(), (4, 2), jnp.float32)
    ts = jnp.array([0.1, 0.3, 0.6, 0.9])
    process = PROCESSES["vp"]
    rows = [gaussian_predictions(process, COV0, t, x[i:i + 1].astype(jnp.float64))
            for i, t in enumerate(ts)]
    eps = jnp.concatenate([r["eps"] for r in rows]).astype(jnp.float32)
    got = D.convert_prediction(eps, ts, x, process, "eps", "v")
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, jnp.concatenate([r["v"] for r in rows]), rtol=2e-4,
                               atol=1e-5)


def prediction_model(process, cov0, kind):
    """The exact prediction of `kind` for N(0, cov0), called one time at a time."""
    score = gaussian_score_model(process, cov0)
    return lambda t, x: D.convert_prediction(score(t, x), t, x, process, "score", kind)


@pytest.mark.parametrize("kind", D.PREDICTIONS)
def test_dsm_is_minimised_by_the_exact_prediction(getkey, kind):
    """On one batch, the loss of the exact prediction is below that of wrong ones by the weighted
    squared distance between the predictions, up to a cross term of mean zero."""
    process = PROCESSES["vp"]
    data = lambda key, n: fl.Gaussian(jnp.zeros(2), COV0).sample(key, n)
    models = [prediction_model(process, jnp.asarray(cov), kind)
              for cov in (COV0, 2 * COV0, ROT @ ROT @ COV0 @ ROT.T @ ROT.T, 0.3 * jnp.eye(2))]
    key = getkey()
    for weighting in ("none", "likelihood"):
        loss = D.DenoisingScoreMatching(process, data, prediction=kind, weighting=weighting,
                                        batch_size=16384, t_min=0.1)
        t, xt, target, c = loss.sample(key)
        w = loss.weights(t, c)
        preds = [jax.vmap(lambda ti, xi, m=m: m(ti, xi[None])[0])(t, xt) for m in models]
        errors = [w * jnp.sum((p - target) ** 2, axis=1) for p in preds]
        np.testing.assert_allclose(loss(models[0], key), jnp.mean(errors[0]), rtol=1e-10)
        for wrong, error in zip(preds[1:], errors[1:], strict=True):
            gap = w * jnp.sum((wrong - preds[0]) ** 2, axis=1)
            cross = error - errors[0] - gap  # 2 w (wrong - exact) . (exact - target)
            assert float(jnp.mean(error)) > float(jnp.mean(errors[0])), (kind, weighting)
            assert abs(float(jnp.mean(cross))) < 4 * float(jnp.std(cross)) / np.sqrt(16384)
            assert float(jnp.mean(gap)) > 4 * float(jnp.std(cross)) / np.sqrt(16384)


class LinearEps(eqx.Module):
    """eps-prediction of N(0, L L^T): learns a covariance by denoising."""

    chol: jax.Array
    process: object

    def __call__(self, t, x):
        cov = self.chol @ self.chol.T
        cov_t = marginal_cov(self.process, cov, t)
        return self.process.sigma(t) * jnp.linalg.solve(cov_t, x.T).T


def test_dsm_trains_with_fit(getkey):
    process = PROCESSES["vp"]
    data = fl.Gaussian(jnp.zeros(2), COV0).sample(getkey(), 4096)
    loss = D.DenoisingScoreMatching(process, data, batch_size=512, t_min=0.05)
    model = LinearEps(jnp.eye(2), process)
    fitted = fl.learn.fit(loss, model, optax.adam(3e-2), getkey(), steps=400, progress=False)
    learned = fitted.model.chol @ fitted.model.chol.T
    assert fitted.ok
    assert float(fl.metrics.relative_error(learned, fl.metrics.covariance(data))) < 0.1


@pytest.mark.parametrize("name", PROCESSES)
def test_time_change_gives_the_flow_matching_velocity(getkey, name):
    """x_t / (alpha + sigma) is on the flow-matching path at tau = alpha / (alpha + sigma)
    (noise at tau = 0): the diffusion model becomes the Gaussian flow-matching field."""
    process = PROCESSES[name]
    field = D.to_flow_matching(prediction_model(process, COV0, "eps"), process, "eps")
    y = jax.random.normal(getkey(), (6, 2))
    for tau in (0.1, 0.5, 0.9):
        _, a_tau = fl.theory.flow_matching_gaussian(jnp.eye(2), COV0, tau)
        np.testing.assert_allclose(field(tau, y, None), y @ a_tau.T, rtol=1e-8, atol=1e-10,
                                   err_msg=f"tau={tau}")
        np.testing.assert_allclose(
            field(tau, y, None), fl.fields.GaussianFlowMatching(jnp.eye(2), COV0)(tau, y, None),
            rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("method", ["exact", "hutchinson"])
def test_log_likelihood_matches_the_gaussian_density(getkey, method):
    process, t_min = PROCESSES["vp"], 1e-2
    score = gaussian_score_model(process, COV0)
    model = lambda t, x: (x + process.sigma(t) ** 2 * score(t, x)) / process.alpha(t)  # Tweedie
    start = fl.Gaussian(jnp.zeros(2), marginal_cov(process, COV0, 1.0))
    target = fl.Gaussian(jnp.zeros(2), marginal_cov(process, COV0, t_min))
    if method == "exact":
        x = target.sample(getkey(), 64)
        logp, traj = D.log_likelihood(model, process, x, prediction="x0", t_min=t_min,
                                      prior_log_prob=start.log_prob, rtol=1e-8, atol=1e-8)
        assert int(traj.status) == 0
        np.testing.assert_allclose(logp, target.log_prob(x), rtol=1e-6)
        # the default prior N(0, sigma(1)^2 I) differs from the exact one by alpha(1)^2 cov0
        default, _ = D.log_likelihood(model, process, x, prediction="x0", t_min=t_min,
                                      rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(default, target.log_prob(x), rtol=1e-3)
    else:  # one point repeated: the Rademacher estimates average to the exact divergence
        x = jnp.tile(target.sample(getkey(), 1), (4000, 1))
        logp, _ = D.log_likelihood(model, process, x, prediction="x0", t_min=t_min,
                                   prior_log_prob=start.log_prob, method="hutchinson",
                                   key=getkey(), rtol=1e-6, atol=1e-6)
        err = float(jnp.mean(logp)) - float(target.log_prob(x[:1])[0])
        assert abs(err) < 4 * float(jnp.std(logp)) / np.sqrt(4000) + 1e-6


@pytest.mark.parametrize("bandwidth", [0.0, 0.3])
def test_empirical_score_is_the_mixture_score(getkey, bandwidth):
    """The score of sum_j w_j N(alpha y_j, (sigma^2 + alpha^2 h^2) I), its log-density and
    (without smoothing) its denoiser, against ``theory.gaussian_mixture_score``."""
    process = PROCESSES["vp"]
    data = jax.random.normal(getkey(), (7, 2))
    weights = jax.random.dirichlet(getkey(), jnp.ones(7))
    score = D.EmpiricalScore(process, data, weights, bandwidth=bandwidth, chunk_size=3)
    x = 2 * jax.random.normal(getkey(), (9, 2))
    for t in (0.05, 0.4, 0.9):
        a = process.alpha(t)
        s = jnp.sqrt(process.sigma(t) ** 2 + (a * bandwidth) ** 2)
        covs = jnp.broadcast_to(s**2 * jnp.eye(2), (7, 2, 2))
        expected = fl.theory.gaussian_mixture_score(x, a * data, covs, weights)
        np.testing.assert_allclose(score(t, x), expected, rtol=1e-9, atol=1e-10)
        mixture = jax.vmap(lambda xi: jax.scipy.special.logsumexp(
            jnp.log(weights) + jax.vmap(lambda y: fl.Gaussian(a * y, s**2 * jnp.eye(2))
                                        .log_prob(xi[None])[0])(data)))(x)
        np.testing.assert_allclose(score.log_prob(t, x), mixture, rtol=1e-10)
        if bandwidth == 0:
            x0 = D.convert_prediction(expected, t, x, process, "score", "x0")
            np.testing.assert_allclose(score.denoiser(t, x), x0, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("sampler", ["probability_flow", "reverse_sde"])
def test_empirical_score_memorizes(getkey, sampler):
    """From fresh noise, the exact empirical score's PF-ODE and reverse SDE land on training
    points, far closer than the points are to each other (spacing 1): within a few sigma(t_min)
    for the adaptive ODE, within the noise of the SDE's last step (sqrt(g^2 dt) ~ 0.02) else."""
    process = PROCESSES["vp"]
    grid = jnp.stack(jnp.meshgrid(jnp.arange(4.0), jnp.arange(4.0)), -1).reshape(-1, 2) - 1.5
    score = D.EmpiricalScore(process, grid)
    noise = process.sample_prior(getkey(), 256, 2)
    if sampler == "probability_flow":
        out = D.sample_probability_flow(score, process, noise, prediction="score")
        tolerance = 5 * float(process.sigma(1e-3))
    else:
        out = D.sample_reverse_sde(score, process, noise, getkey(), prediction="score",
                                   steps=256)
        tolerance = 0.15
    assert bool(out.ok)
    distances = jnp.linalg.norm(out.x[:, None] - grid[None], axis=-1)
    assert float(jnp.max(jnp.min(distances, axis=1))) < tolerance
    # the generated points cover the training set
    assert len(np.unique(np.asarray(jnp.argmin(distances, axis=1)))) == 16
