"""Planted faults for the experiments' fault-injection tests (``tests/test_faults_*.py``).

A fault test runs an experiment at its smallest size with one fault planted, through its config
or by replacing a component with ``monkeypatch``, and asserts with [`assert_caught`][] that the
run finished, did not pass, and that the named checks are among those that failed.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import flowjax_lab as fl


def assert_caught(result, *check_names: str) -> None:
    """`result` finished (no exception), failed, and each of `check_names` (substrings of check
    names) names at least one failed check."""
    assert result.error is None, f"the run crashed instead of failing a check: {result.error}"
    assert not result.passed, f"the planted fault passed every check:\n{result.table()}"
    failed = result.failed_checks
    for name in check_names:
        assert any(name in f for f in failed), (
            f"no failed check names {name!r}; failed: {failed}\n{result.table()}")


def _patch_fit(monkeypatch, module, fake) -> None:
    """Replace ``learn.fit`` where `module` finds it (``fit`` or ``learn.fit``)."""
    if hasattr(module, "fit"):
        monkeypatch.setattr(module, "fit", fake)
    monkeypatch.setattr(fl.learn, "fit", fake)


def untrained(monkeypatch, module) -> None:
    """Training that does nothing: ``fit`` runs with a zero learning rate (status SUCCESS, finite
    losses, the model left at its initialisation)."""
    real = fl.learn.fit

    def fake(loss, model, optimizer, key, **kwargs):
        return real(loss, model, optax.sgd(0.0), key, **kwargs)

    _patch_fit(monkeypatch, module, fake)


def diverged(monkeypatch, module) -> None:
    """Training that blew up: ``fit`` returns status NONFINITE, a NaN last loss and a model
    whose floating-point parameters are NaN."""
    real = fl.learn.fit

    def fake(loss, model, optimizer, key, **kwargs):
        fitted = real(loss, model, optimizer, key, **kwargs)
        nan_model = jax.tree.map(
            lambda p: jnp.full_like(p, jnp.nan) if eqx.is_inexact_array(p) else p, fitted.model)
        losses = np.append(np.asarray(fitted.losses, np.float64), np.nan)
        return dataclasses.replace(fitted, model=nan_model, losses=losses,
                                   status=fl.Status.NONFINITE)

    _patch_fit(monkeypatch, module, fake)
