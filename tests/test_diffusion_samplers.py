"""Diffusion samplers on a Gaussian target with the exact score, against the covariance recursion
of ``theory.diffusion_sampler_covariance``: particles follow it (exactly for deterministic
samplers, up to the 1/sqrt(n) sampling error for stochastic ones), and its limit converges to the
true marginal at the sampler's order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl

D = fl.diffusion
ROT = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
COV0 = jnp.asarray(ROT @ np.diag([2.0, 0.1]) @ ROT.T)
VP = D.VP()
T_MIN = 1e-3


def score_model(process, cov0=COV0):
    def model(t, x):
        cov_t = process.alpha(t) ** 2 * cov0.astype(x.dtype) + process.sigma(t) ** 2 * jnp.eye(
            x.shape[1], dtype=x.dtype)
        return -jnp.linalg.solve(cov_t, x.T).T
    return model


def marginal(process, t):
    return fl.theory.diffusion_covariance(COV0, process.alpha(t), process.sigma(t))


# name -> (sampler call, theory sampler, grid spacing, eta, evaluations per step)
def _sde(method):
    return lambda model, process, x, key, steps, t_max, prediction="score": D.sample_reverse_sde(
        model, process, x, key, prediction=prediction, steps=steps, method=method, t_max=t_max)


def _ode(solver):
    return lambda model, process, x, key, steps, t_max, prediction="score": (
        D.sample_probability_flow(model, process, x, prediction=prediction, steps=steps,
                                  solver=solver, t_max=t_max))


def _discrete(fn, **kw):
    return lambda model, process, x, key, steps, t_max, prediction="score": fn(
        model, process, x, prediction=prediction, steps=steps, t_max=t_max, **kw)


SAMPLERS = {
    "reverse_sde_euler_maruyama": (_sde("euler_maruyama"), "reverse_sde_euler_maruyama",
                                   "uniform", 0.0, 1),
    "reverse_sde_heun": (_sde("heun"), "reverse_sde_heun", "uniform", 0.0, 2),
    "probability_flow_euler": (_ode("euler"), "probability_flow_euler", "uniform", 0.0, 1),
    "probability_flow_heun": (_ode("heun"), "probability_flow_heun", "uniform", 0.0, 2),
    "ddim": (_discrete(D.ddim), "ddim", "uniform", 0.0, 1),
    "ddim_eta": (lambda model, process, x, key, steps, t_max, prediction="score": D.ddim(
        model, process, x, key, prediction=prediction, steps=steps, eta=1.0, t_max=t_max),
        "ddim", "uniform", 1.0, 1),
    "heun_edm": (_discrete(D.heun_edm), "heun_edm", "edm", 0.0, 2),
    "dpm_solver_2": (_discrete(D.dpm_solver_2), "dpm_solver_2", "log_snr", 0.0, 2),
}
DETERMINISTIC = ["probability_flow_euler", "probability_flow_heun", "ddim", "heun_edm",
                 "dpm_solver_2"]
STOCHASTIC = ["reverse_sde_euler_maruyama", "reverse_sde_heun", "ddim_eta"]
ORDERS = {"reverse_sde_euler_maruyama": 1, "reverse_sde_heun": 2, "probability_flow_euler": 1,
          "probability_flow_heun": 2, "ddim": 1, "ddim_eta": 1, "heun_edm": 2, "dpm_solver_2": 2}


def recursion(name, process, cov_start, steps, t_max=1.0):
    _, sampler, spacing, eta, _ = SAMPLERS[name]
    ts = D.time_grid(process, steps, spacing=spacing, t_max=t_max, t_min=T_MIN)
    return fl.theory.diffusion_sampler_covariance(COV0, cov_start, ts, process.alpha,
                                                  process.sigma, sampler=sampler, eta=eta)


def sampling_error(cov, n):
    """Root-mean-square relative Frobenius error of the covariance of n draws of N(0, cov):
    E |C_n - C|_F^2 = (tr(C)^2 + tr(C^2)) / n."""
    return float(jnp.sqrt((jnp.trace(cov) ** 2 + jnp.trace(cov @ cov)) / n) / jnp.linalg.norm(cov))


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("process", ["vp", "ve", "fm"])
def test_deterministic_samplers_follow_the_recursion_exactly(getkey, name, process):
    """From the particles' own second moment the recursion predicts their covariance to rounding:
    each step is linear, so no sampling error enters."""
    process, t_max = {"vp": (VP, 1.0), "ve": (D.VE(), 1.0),
                      "fm": (D.FlowMatchingPath(), 0.99)}[process]
    call, *_, per_step = SAMPLERS[name]
    x = fl.Gaussian(jnp.zeros(2), marginal(process, t_max)).sample(getkey(), 500)
    out = call(score_model(process), process, x, None, 16, t_max)
    assert bool(out.ok) and int(out.nfe) == per_step * 16
    got = out.x.T @ out.x / 500
    expected = recursion(name, process, x.T @ x / 500, 16, t_max)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_follow_the_recursion(getkey, name):
    """The particle covariance meets the recursion within the sampling error, which shrinks as
    1/sqrt(n) (nested subsets of one run)."""
    call, *_, per_step = SAMPLERS[name]
    n = 16000
    x = fl.Gaussian(jnp.zeros(2), marginal(VP, 1.0)).sample(getkey(), n)
    out = call(score_model(VP), VP, x, getkey(), 32, 1.0)
    assert bool(out.ok) and int(out.nfe) == per_step * 32
    expected = recursion(name, VP, marginal(VP, 1.0), 32)
    errors = []
    for size in (1000, 4000, 16000):
        y = out.x[:size]
        errors.append(float(fl.metrics.relative_error(y.T @ y / size, expected)))
        assert errors[-1] < 4 * sampling_error(expected, size), (size, errors)
    assert errors[-1] < errors[0]


@pytest.mark.parametrize("name", SAMPLERS)
def test_orders_of_the_recursions(name):
    """The recursion's covariance converges to the exact marginal at t_min (its limit, started
    from the exact marginal at t = 1) with the sampler's order."""
    target = marginal(VP, T_MIN)
    steps = np.array([32, 64, 128, 256])
    errors = [float(fl.metrics.relative_error(recursion(name, VP, marginal(VP, 1.0), int(k)),
                                              target)) for k in steps]
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert abs(-slope - ORDERS[name]) < 0.1, (slope, errors)


@pytest.mark.parametrize("sampler", [D.dpm_solver_2, D.heun_edm, D.ddim])
def test_predictions_give_the_same_samples(getkey, sampler):
    """A sampler does not depend on which exact prediction kind the model returns."""
    x = fl.Gaussian(jnp.zeros(2), marginal(VP, 1.0)).sample(getkey(), 50)
    score = score_model(VP)
    reference = sampler(score, VP, x, prediction="score", steps=8).x
    for kind in ("eps", "x0", "v", "velocity"):
        model = lambda t, y, kind=kind: D.convert_prediction(score(t, y), t, y, VP, "score", kind)
        got = sampler(model, VP, x, prediction=kind, steps=8).x
        np.testing.assert_allclose(got, reference, rtol=1e-8, atol=1e-10, err_msg=kind)


def test_adaptive_probability_flow_is_the_exact_map(getkey):
    """The exact flow multiplies each eigen-direction by sqrt(v(t_min) / v(1))."""
    x = fl.Gaussian(jnp.zeros(2), marginal(VP, 1.0)).sample(getkey(), 200)
    out = D.sample_probability_flow(score_model(VP), VP, x, prediction="score", rtol=1e-9,
                                    atol=1e-9)
    c, basis = jnp.linalg.eigh(COV0)
    ratio = lambda t: VP.alpha(t) ** 2 * c + VP.sigma(t) ** 2
    exact_map = basis @ jnp.diag(jnp.sqrt(ratio(T_MIN) / ratio(1.0))) @ basis.T
    np.testing.assert_allclose(out.x, x @ exact_map, rtol=1e-6, atol=1e-7)
    assert int(out.nfe) > 0


@pytest.mark.parametrize("spacing", D.SPACINGS)
def test_time_grids(spacing):
    ts = D.time_grid(VP, 10, spacing=spacing, t_max=1.0, t_min=T_MIN)
    assert ts.shape == (11,) and float(ts[0]) == 1.0 and float(ts[-1]) == T_MIN
    assert bool(jnp.all(jnp.diff(ts) < 0))
    if spacing == "uniform":
        uniform = ts
    elif spacing == "log_snr":
        uniform = VP.log_snr(ts)
    else:
        uniform = (VP.sigma(ts) / VP.alpha(ts)) ** (1 / 7)
    np.testing.assert_allclose(jnp.diff(uniform), jnp.diff(uniform)[0], rtol=1e-8)


@pytest.mark.parametrize("name", ["ddim", "heun_edm", "dpm_solver_2", "probability_flow_heun"])
def test_float32_is_kept(getkey, name):
    call = SAMPLERS[name][0]
    x = jax.random.normal(getkey(), (100, 2), jnp.float32)
    out = call(score_model(VP), VP, x, None, 8, 1.0)
    assert out.x.dtype == jnp.float32 and bool(out.ok)


def test_flow_matching_path_recursion_is_learn_flow_matching(getkey):
    """On the FM path (t = 1 - tau), the probability-flow Euler recursion is ``learn``'s
    flow-matching Euler sampler on ``GaussianFlowMatching(I, cov0)``."""
    fm = D.FlowMatchingPath()
    x = jax.random.normal(getkey(), (300, 2))
    y = fl.learn.generate(fl.fields.GaussianFlowMatching(jnp.eye(2), COV0), x, steps=16).x1
    ts = D.time_grid(fm, 16, t_max=1.0, t_min=0.0)
    expected = fl.theory.diffusion_sampler_covariance(COV0, x.T @ x / 300, ts, fm.alpha,
                                                      fm.sigma, sampler="probability_flow_euler")
    np.testing.assert_allclose(y.T @ y / 300, expected, rtol=1e-10)


def test_ddim_is_invariant_under_the_time_change():
    """DDIM on VP at times t_k is flow-matching Euler at tau_k = sigma / (alpha + sigma) (FM
    path), the points scaled by alpha + sigma."""
    fm = D.FlowMatchingPath()
    ts = D.time_grid(VP, 16, spacing="log_snr", t_min=T_MIN)
    scale = VP.alpha(ts) + VP.sigma(ts)
    taus = VP.sigma(ts) / scale
    start = marginal(VP, 1.0)
    vp = fl.theory.diffusion_sampler_covariance(COV0, start, ts, VP.alpha, VP.sigma,
                                                sampler="ddim")
    flow = fl.theory.diffusion_sampler_covariance(COV0, start / scale[0] ** 2, taus, fm.alpha,
                                                  fm.sigma, sampler="probability_flow_euler")
    np.testing.assert_allclose(vp, scale[-1] ** 2 * flow, rtol=1e-10)
