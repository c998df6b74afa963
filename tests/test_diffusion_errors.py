"""The error sources of a diffusion sampler on Gaussian data (``theory.diffusion_errors``): each
against particles, Monte Carlo over data sets or the exact recursion, each vanishing at its rate,
and their composition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl

D, T = fl.diffusion, fl.theory
ROT = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
COV = jnp.asarray(ROT @ np.diag([2.0, 0.1]) @ ROT.T)
MEAN = jnp.array([1.0, -0.5])
EYE = jnp.eye(2)
VP = D.VP()
SPACING = {"heun_edm": "edm", "dpm_solver_2": "log_snr"}
ORDERS = {"reverse_sde_euler_maruyama": 1, "reverse_sde_heun": 2, "probability_flow_euler": 1,
          "probability_flow_heun": 2, "ddim": 1, "heun_edm": 2, "dpm_solver_2": 2}


def grid(sampler, steps, t_min=1e-3, process=VP):
    return D.time_grid(process, steps, spacing=SPACING.get(sampler, "uniform"), t_min=t_min)


def marginal(t, mean=MEAN, cov=COV, process=VP):
    a, s = process.alpha(t), process.sigma(t)
    return a * mean, a**2 * cov + s**2 * EYE


def w2(law0, law1):
    return float(jnp.sqrt(T.bures_w2_squared(*law0, *law1)))


def score_model(mean, cov, process=VP):
    """The score of N(mean, cov) pushed by the process."""
    def model(t, x):
        m, c = marginal(t, mean, cov, process)
        return -jnp.linalg.solve(c, (x - m[None, :]).T).T
    return model


# A model Gaussian that is not the data's, and a start that is neither marginal.
MODEL = (jnp.array([0.8, -0.3]), jnp.array([[1.5, 0.3], [0.3, 0.4]]))
START = (jnp.array([0.3, 0.2]), 1.69 * EYE)


@pytest.mark.parametrize("sampler", ["probability_flow_heun", "heun_edm"])
def test_law_follows_deterministic_samplers(getkey, sampler):
    """Deterministic samplers are affine maps: from the particles' own moments the law predicts
    their mean and covariance to rounding."""
    x = START[0][None, :] + 1.3 * jax.random.normal(getkey(), (300, 2))
    model = score_model(*MODEL)
    if sampler == "heun_edm":
        out = D.heun_edm(model, VP, x, prediction="score", steps=16)
    else:
        out = D.sample_probability_flow(model, VP, x, prediction="score", steps=16,
                                        solver=sampler.rsplit("_", 1)[1])
    m, c = x.mean(0), jnp.cov(x.T, bias=True)
    mean, cov = T.diffusion_sampler_law(*MODEL, m, c, grid(sampler, 16), VP.alpha, VP.sigma,
                                        sampler=sampler)
    np.testing.assert_allclose(out.x.mean(0), mean, atol=1e-12)
    np.testing.assert_allclose(jnp.cov(out.x.T, bias=True), cov, atol=1e-12)


@pytest.mark.parametrize("method", ["euler_maruyama", "heun"])
def test_law_follows_the_reverse_sde(getkey, method):
    """The particle mean meets the law's within 4 standard errors, shrinking as 1/sqrt(n)
    (nested subsets of one run, started from the law START)."""
    n = 8000
    x = START[0][None, :] + 1.3 * jax.random.normal(getkey(), (n, 2))
    out = D.sample_reverse_sde(score_model(*MODEL), VP, x, getkey(), prediction="score",
                               steps=16, method=method)
    mean, cov = T.diffusion_sampler_law(*MODEL, *START, grid("ddim", 16), VP.alpha, VP.sigma,
                                        sampler=f"reverse_sde_{method}")
    errors = []
    for size in (500, 2000, 8000):
        errors.append(float(jnp.max(jnp.abs(out.x[:size].mean(0) - mean)
                                    / jnp.sqrt(jnp.diag(cov) / size))))
        assert errors[-1] < 4, (size, errors)


def score_monte_carlo(key, sizes, reps, t_min):
    """E W2^2(N(a m, a^2 S + s^2 I), N(a mu, a^2 Sigma + s^2 I)) over `reps` data sets of each size
    (nested: the first n points of each set), and its standard error."""
    data = MEAN[None, None, :] + (jax.random.normal(key, (reps, max(sizes), 2))
                                  @ jnp.linalg.cholesky(COV).T)
    means, ses = [], []
    target = marginal(t_min)
    for n in sizes:
        x = data[:, :n]
        m = x.mean(1)
        s = jnp.einsum("rni,rnj->rij", x - m[:, None], x - m[:, None]) / float(n)
        w = jax.vmap(lambda m, s: T.bures_w2_squared(*marginal(t_min, m, s), *target))(m, s)
        means.append(float(w.mean()))
        ses.append(float(w.std() / np.sqrt(reps)))
    return np.array(means), np.array(ses)


@pytest.mark.parametrize("t_min", [1e-3, 0.3])
def test_score_error_against_monte_carlo(getkey, t_min):
    """The first-order E W2^2 of the estimated score meets Monte Carlo over data sets within 4
    standard errors at every n, and falls as 1/n (fitted slope)."""
    sizes = np.array([50, 200, 800])
    mc, se = score_monte_carlo(getkey(), sizes, 1000, t_min)
    theory = np.array([float(T.diffusion_errors(MEAN, COV, grid("ddim", 2, t_min), VP.alpha,
                                                VP.sigma, sampler="ddim", n=int(n)).score) ** 2
                       for n in sizes])
    assert np.all(np.abs(mc - theory) < 4 * se), (mc, theory, se)
    slope = np.polyfit(np.log(sizes), np.log(mc), 1)[0]
    assert abs(slope + 1) < 0.05, slope


def test_score_error_shrinks_with_smoothing():
    """Noise at t_min hides the estimation error: the score term falls as t_min grows."""
    scores = [float(T.diffusion_errors(MEAN, COV, grid("ddim", 2, t), VP.alpha, VP.sigma,
                                       sampler="ddim", n=100).score) for t in (1e-3, 0.1, 0.3)]
    assert scores[0] > scores[1] > scores[2], scores


def test_early_stopping():
    """The closed form is the Bures distance of the exact marginal at t_min to the data; it
    vanishes linearly in t_min for VP (sigma^2 ~ beta_min t); a second-order sampler's law
    meets it up to its own distance to P1, which vanishes as K grows."""
    early = lambda t: float(T.diffusion_errors(MEAN, COV, grid("ddim", 2, t), VP.alpha, VP.sigma,
                                               sampler="ddim", n=1).early_stopping)
    for t_min in (0.05, 0.2):  # where the Bures formula's cancellation is harmless
        np.testing.assert_allclose(early(t_min), w2(marginal(t_min), (MEAN, COV)), rtol=1e-6)
    times = np.array([1e-6, 1e-5, 1e-4])
    slope = np.polyfit(np.log(times), np.log([early(t) for t in times]), 1)[0]
    assert abs(slope - 1) < 0.02, slope

    t_min, remainders = 0.05, []
    for k in (128, 512):
        law = T.diffusion_sampler_law(MEAN, COV, *marginal(1.0), grid("dpm_solver_2", k, t_min),
                                      VP.alpha, VP.sigma, sampler="dpm_solver_2")
        remainders.append(w2(law, marginal(t_min)))
        assert abs(w2(law, (MEAN, COV)) - early(t_min)) <= remainders[-1] + 1e-12
    # order 2: a quarter of the steps' size, a sixteenth of the remainder (8: some slack)
    assert remainders[1] < remainders[0] / 8 and remainders[1] < 1e-3 * early(t_min), remainders


@pytest.mark.parametrize("sampler", list(ORDERS))
def test_discretization_order(sampler):
    """The discretization term (with a non-zero mean) falls at the sampler's order."""
    steps = np.array([32, 64, 128, 256])
    errors = [float(T.diffusion_errors(MEAN, COV, grid(sampler, int(k)), VP.alpha, VP.sigma,
                                       sampler=sampler, n=1).discretization) for k in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(slope - ORDERS[sampler]) < 0.1, (slope, errors)


@pytest.mark.parametrize("sampler, eta", [("probability_flow_heun", 0.0),
                                          ("reverse_sde_heun", 0.0), ("ddim", 0.5),
                                          ("ddim", 1.0)])
def test_initialisation_against_the_recursion(sampler, eta):
    """With the exact score, the distance between the K-step laws from N(0, I) and from the
    exact marginal at T (the discretization's own error cancels) converges to the continuous-time
    closed form as K grows, at the sampler's order."""
    init = float(T.diffusion_errors(MEAN, COV, grid(sampler, 2), VP.alpha, VP.sigma,
                                    sampler=sampler, n=1, eta=eta).initialisation)
    steps = np.array([128, 256, 512])
    gaps = []
    for k in steps:
        laws = [T.diffusion_sampler_law(MEAN, COV, *start, grid(sampler, int(k)), VP.alpha,
                                        VP.sigma, sampler=sampler, eta=eta)
                for start in ((jnp.zeros(2), EYE), marginal(1.0))]
        gaps.append(abs(w2(*laws) - init))
    rate = -np.polyfit(np.log(steps), np.log(gaps), 1)[0]
    order = 1 if sampler == "ddim" else 2
    assert abs(rate - order) < 0.2 and gaps[-1] < 0.05 * init, (init, gaps, rate)


class OU:
    """Ornstein-Uhlenbeck schedules alpha = exp(-t), sigma^2 = 1 - exp(-2t), on t in [0, T]."""

    @staticmethod
    def alpha(t):
        return jnp.exp(-t)

    @staticmethod
    def sigma(t):
        return jnp.sqrt(-jnp.expm1(-2 * t))


@pytest.mark.parametrize("sampler, order", [("probability_flow_heun", 1),
                                            ("reverse_sde_heun", 2)])
def test_initialisation_vanishes_as_the_horizon_grows(sampler, order):
    """From N(0, I) the error is the mean's alpha_T mu carried by rho: rho ~ 1 for the ODE (error
    ~ alpha_T), rho ~ alpha_T for the SDE (error ~ alpha_T^2)."""
    horizons = np.array([3.0, 4.0, 5.0, 6.0])
    errors = [float(T.diffusion_errors(MEAN, COV, np.linspace(h, 1e-3, 3), OU.alpha, OU.sigma,
                                       sampler=sampler, n=1).initialisation) for h in horizons]
    slope = np.polyfit(-horizons, np.log(errors), 1)[0]  # in log alpha_T = -T
    assert abs(slope - order) < 0.05, (slope, errors)


def signed(law, basis, lam):
    """Signed errors (mean, standard deviation) along the eigenvectors of COV, for a law whose
    covariance commutes with COV."""
    mean, cov = law
    return np.concatenate([basis.T @ (mean - MEAN),
                           np.sqrt(np.diag(basis.T @ cov @ basis)) - np.sqrt(lam)])


@pytest.mark.parametrize("sampler, steps", [("ddim", 16), ("probability_flow_euler", 32),
                                            ("reverse_sde_heun", 8)])
def test_biases_add_to_first_order(sampler, steps):
    """With the exact score every law commutes with Sigma and W2 is the norm of the signed errors;
    those of early stopping, discretization and initialisation add up to the whole bias, up to
    second-order cross terms (here under 5% of it), and the bias is at most their sum."""
    lam, basis = np.linalg.eigh(np.asarray(COV))
    t_min = 0.02
    e = T.diffusion_errors(MEAN, COV, grid(sampler, steps, t_min), VP.alpha, VP.sigma,
                           sampler=sampler, n=1)
    law = lambda start, k: T.diffusion_sampler_law(MEAN, COV, *start, grid(sampler, k, t_min),
                                                   VP.alpha, VP.sigma, sampler=sampler)
    prior = (jnp.zeros(2), EYE)
    stop = signed(marginal(t_min), basis, lam)
    disc = signed(law(marginal(1.0), steps), basis, lam) - stop
    init = signed(law(prior, 2048), basis, lam) - signed(law(marginal(1.0), 2048), basis, lam)
    whole = signed(law(prior, steps), basis, lam)
    np.testing.assert_allclose(np.linalg.norm(whole), e.bias, rtol=1e-8)
    np.testing.assert_allclose([np.linalg.norm(stop), np.linalg.norm(disc)],
                               [e.early_stopping, e.discretization], rtol=1e-8)
    np.testing.assert_allclose(np.linalg.norm(init), e.initialisation, rtol=2e-2)
    assert np.linalg.norm(stop + disc + init - whole) < 0.05 * np.linalg.norm(whole)
    assert e.bias <= e.early_stopping + e.discretization + e.initialisation


@pytest.mark.parametrize("sampler, steps", [("ddim", 8), ("reverse_sde_heun", 8)])
def test_total_is_bias_and_score_in_squares(getkey, sampler, steps):
    """The whole pipeline (score estimated from n samples, K steps from N(0, I), stopped at t_min):
    Monte Carlo of E W2^2 over data sets meets bias^2 + score^2 within 4 standard errors."""
    reps, t_min = 300, 1e-2
    ts = grid(sampler, steps, t_min)
    data = MEAN[None, None, :] + (jax.random.normal(getkey(), (reps, 800, 2))
                                  @ jnp.linalg.cholesky(COV).T)

    def pipeline(m, s):
        law = T.diffusion_sampler_law(m, s, jnp.zeros(2), EYE, ts, VP.alpha, VP.sigma,
                                      sampler=sampler)
        return T.bures_w2_squared(*law, MEAN, COV)

    for n in (100, 800):
        x = data[:, :n]
        m = x.mean(1)
        w = jax.vmap(pipeline)(m, jnp.einsum("rni,rnj->rij", x - m[:, None], x - m[:, None]) / n)
        e = T.diffusion_errors(MEAN, COV, ts, VP.alpha, VP.sigma, sampler=sampler, n=n)
        se = float(w.std()) / np.sqrt(reps)
        assert abs(float(w.mean()) - float(e.total) ** 2) < 4 * se, (n, w.mean(), e, se)
