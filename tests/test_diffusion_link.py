"""Velocity <-> score <-> denoiser on the flow-matching path from N(0, I), against closed forms."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl

COV1 = jnp.array([[2.0, 0.7, 0.1], [0.7, 0.8, -0.2], [0.1, -0.2, 0.4]])


def gaussian_predictions(t, x):
    """Closed forms for X1 ~ N(0, COV1): velocity A_t x (theory), score, denoiser."""
    cov_t, a_t = fl.theory.flow_matching_gaussian(jnp.eye(3), COV1, t)
    score = -jnp.linalg.solve(cov_t, x.T).T
    denoiser = t * x @ jnp.linalg.solve(cov_t, COV1)  # t COV1 cov_t^{-1} x, row form
    return {"velocity": x @ a_t.T, "score": score, "denoiser": denoiser}


@pytest.mark.parametrize("t", [0.1, 0.5, 0.85])
def test_all_conversions_on_a_gaussian_target(getkey, t):
    x = jax.random.normal(getkey(), (8, 3))
    truth = gaussian_predictions(t, x)
    for source, target in itertools.permutations(truth, 2):
        got = fl.learn.convert(truth[source], t, x, source=source, target=target)
        np.testing.assert_allclose(got, truth[target], rtol=1e-10, atol=1e-10,
                                   err_msg=f"{source} -> {target}")


def test_the_often_quoted_formula_is_the_opposite_time_convention(getkey):
    """x/(1-t) + t/(1-t) score is the velocity only at t = 1/2; with t -> 1 - t it is exact."""
    x = jax.random.normal(getkey(), (8, 3))
    quoted = lambda t, s: x / (1 - t) + t / (1 - t) * s
    for t in (0.2, 0.5, 0.7):
        truth = gaussian_predictions(t, x)
        err = float(fl.metrics.relative_error(quoted(t, truth["score"]), truth["velocity"]))
        if t == 0.5:
            assert err < 1e-12
        else:
            assert err > 0.1
        np.testing.assert_allclose(quoted(1 - t, truth["score"]), truth["velocity"], rtol=1e-10)


def test_per_particle_times(getkey):
    x = jax.random.normal(getkey(), (5, 3))
    ts = jnp.linspace(0.1, 0.9, 5)
    truth = [gaussian_predictions(t, x[i:i + 1]) for i, t in enumerate(ts)]
    score = jnp.concatenate([p["score"] for p in truth])
    velocity = jnp.concatenate([p["velocity"] for p in truth])
    np.testing.assert_allclose(fl.learn.convert(score, ts, x, source="score", target="velocity"),
                               velocity, rtol=1e-10)


def test_converted_exact_field_on_a_non_gaussian_target(getkey):
    """On an empirical (mixture) target, the exact field's score and denoiser convert to its
    velocity, and a score model read as a velocity field simulates like the velocity field."""
    field = fl.fields.ExactFlowMatching(fl.datasets.sample("8gaussians", getkey(), 40))
    x = 3 * jax.random.normal(getkey(), (7, 2))
    for t in (0.2, 0.6, 0.9):
        v = field(t, x)
        np.testing.assert_allclose(
            fl.learn.convert(field.score(t, x), t, x, source="score", target="velocity"), v,
            rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(
            fl.learn.convert(field.denoiser(t, x), t, x, source="denoiser", target="velocity"), v,
            rtol=1e-9, atol=1e-9)
    as_velocity = fl.learn.ConvertedField(lambda t, y, a: field.score(t, y), "score", "velocity")
    x0 = jax.random.normal(getkey(), (16, 2))
    kwargs = dict(t0=0.05, t1=0.9, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fl.simulate(as_velocity, x0, **kwargs).x1,
                               fl.simulate(field, x0, **kwargs).x1, rtol=1e-6, atol=1e-6)
