"""fit: it minimises, is deterministic, and a resumed run equals an uninterrupted one."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import flowjax_lab as fl


def _problem():
    target = jnp.array([1.0, -2.0, 0.5])

    def loss(w, key):
        noise = 0.01 * jax.random.normal(key, (3,), w.dtype)
        return jnp.sum((w - target + noise) ** 2)

    return loss, jnp.zeros(3), target


def test_fit_minimises_and_is_deterministic():
    loss, w0, target = _problem()
    a = fit_once(loss, w0, steps=300)
    b = fit_once(loss, w0, steps=300)
    assert a.status == fl.Status.SUCCESS and a.ok and a.losses.shape == (300,)
    np.testing.assert_allclose(np.asarray(a.model), np.asarray(target), atol=0.05)
    np.testing.assert_array_equal(a.losses, b.losses)


def fit_once(loss, w0, **kw):
    return fl.learn.fit(loss, w0, optax.adam(0.05), jax.random.key(0), chunk=50, progress=False,
                        **kw)


def test_resume_reproduces_uninterrupted_run(tmp_path):
    loss, w0, _ = _problem()
    full = fit_once(loss, w0, steps=200)
    fit_once(loss, w0, steps=100, checkpoint=tmp_path)  # "interrupted" after 100 steps
    resumed = fit_once(loss, w0, steps=200, checkpoint=tmp_path, resume=True)
    assert resumed.step == 200
    np.testing.assert_array_equal(resumed.losses, full.losses)
    np.testing.assert_array_equal(np.asarray(resumed.model), np.asarray(full.model))


def test_nonfinite_loss_stops_with_status():
    loss = lambda w, key: jnp.sum(jnp.log(w))  # log of a negative number after a few steps
    out = fl.learn.fit(loss, jnp.array([0.05]), optax.sgd(1.0), jax.random.key(0), steps=50,
                       chunk=10, progress=False)
    assert out.status == fl.Status.NONFINITE and not out.ok
    assert not np.isfinite(out.losses[-1])


def test_evaluations_at_requested_steps():
    loss, w0, _ = _problem()
    out = fit_once(loss, w0, steps=120, evaluate=lambda w: {"norm": jnp.linalg.norm(w)},
                   eval_every=40)
    assert [s for s, _ in out.evaluations] == [40, 80, 120]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"steps": 0}, ValueError, "steps"), ({"steps": 10, "chunk": 0}, ValueError, "chunk"),
     ({"steps": 10, "resume": True}, ValueError, "checkpoint")],
)
def test_fit_bad_input(kwargs, error, match):
    loss, w0, _ = _problem()
    with pytest.raises(error, match=match):
        fl.learn.fit(loss, w0, optax.sgd(0.1), jax.random.key(0), progress=False, **kwargs)


@pytest.mark.parametrize("progress, quiet, shown", [(True, False, True), (True, True, True),
                                                    (None, True, False), (False, False, False)])
def test_progress_bar_shows_steps_and_loss_unless_quiet(progress, quiet, shown, capsys):
    loss, w0, _ = _problem()
    with fl.learn.quiet(quiet):
        fl.learn.fit(loss, w0, optax.adam(0.05), jax.random.key(0), steps=20, chunk=10,
                     progress=progress)
    err = capsys.readouterr().err
    assert ("fit" in err and "loss=" in err and "step/s" in err) is shown
