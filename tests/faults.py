"""Planted faults for the experiments' fault-injection tests (``tests/test_faults_*.py``).

A fault test runs an experiment at its smallest size with one fault planted, through its config
or by replacing a component with ``monkeypatch``, and asserts with [`assert_caught`][] that the
run finished, did not pass, and that the named checks are among those that failed.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

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
    """Training that does nothing: ``fit`` returns the model as it was initialised, status
    SUCCESS and the (finite) loss of that model at every step (no gradient is compiled)."""

    def fake(loss, model, optimizer, key, *, steps, **kwargs):
        value = float(eqx.filter_jit(loss)(model, key))
        return fl.learn.FitResult(model=model, opt_state=None, losses=np.full(steps, value),
                                  evaluations=[], step=steps, seconds=0.0,
                                  status=fl.Status.SUCCESS if np.isfinite(value)
                                  else fl.Status.NONFINITE)

    _patch_fit(monkeypatch, module, fake)


def diverged(monkeypatch, module) -> None:
    """Training that blew up at its first step: ``fit`` returns status NONFINITE, a NaN loss and
    a model whose floating-point parameters are NaN (nothing is trained or compiled)."""

    def fake(loss, model, optimizer, key, **kwargs):
        nan_model = jax.tree.map(
            lambda p: jnp.full_like(p, jnp.nan) if eqx.is_inexact_array(p) else p, model)
        return fl.learn.FitResult(model=nan_model, opt_state=None, losses=np.array([np.nan]),
                                  evaluations=[], step=1, status=fl.Status.NONFINITE, seconds=0.0)

    _patch_fit(monkeypatch, module, fake)
