"""Validation does not depend on the trace: every row of the bad-input tables (their own tests
run it eagerly) is run here under `eqx.filter_jit` with each array it reads traced, and must be
refused with the error the eager run gives.

- An error raised while tracing (shapes, dtypes, names, Python numbers) must be the row's
  exception with the row's message, and must not quote a tracer (``Traced<...>``) where the
  eager run quotes a value.
- A value check on traced data (finite, positive, definite, on the sphere, weights summing to
  one, times in order) raises ``ValueError`` eagerly and, compiled, an
  ``equinox.EquinoxRuntimeError``: its text must hold the eager message, character for
  character (the row is then run eagerly too).

Arrays are traced by rebinding the names a row reads from its table's module globals (the bad
arrays built inside a row are traced anyway: they are computed inside the jitted call). Python
numbers, strings and callables stay static, as they are in a user's `jit`. The eager half of the
trace-time rows is left to the tables' tests: compiling is what costs here.
"""

import inspect
import re
import types

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest
import test_bad_input_attention
import test_bad_input_digits_fields
import test_bad_input_flow_matching
import test_bad_input_flows
import test_bad_input_foundation
import test_bad_input_neural
import test_bad_input_parallel
import test_diffusion_bad_input

from flowjax_lab import _checks

TABLES = {
    "foundation": test_bad_input_foundation.ROWS,
    "flow_matching": test_bad_input_flow_matching.CASES,
    "attention": test_bad_input_attention.CASES,
    "digits_fields": [case[1:] for case in test_bad_input_digits_fields.CASES],
    "flows": test_bad_input_flows.ROWS,
    "neural": [case[1:] for case in test_bad_input_neural.CASES],
    "parallel": test_bad_input_parallel.CASES,
    "diffusion": test_diffusion_bad_input.CASES,
}

# Rows not run under `jit`, by a piece of the row's source, and why (documented in the functions).
NOT_JITTABLE = {
    "parallel.": "an `error_if` raising inside a program sharded over devices stalls its "
                 "collectives (XLA aborts the process): `parallel` checks NaN in concrete "
                 "clouds only",
    "diffusion_errors(": "reads its time grid `ts` with NumPy: `ts` must be concrete",
    "diffusion_sampler_law(": "reads its time grid `ts` with NumPy: `ts` must be concrete",
}


def _source(call) -> str:
    try:
        return inspect.getsource(call)
    except OSError:  # pragma: no cover - defined in a file
        return ""


def _names(code) -> set[str]:
    """Global names read by `code` and the code objects nested in it."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _holds_arrays(value) -> bool:
    if isinstance(value, types.ModuleType) or callable(value) and not isinstance(value,
                                                                                eqx.Module):
        return False
    return any(eqx.is_array(leaf) for leaf in jax.tree.leaves(value))


def _traced(call):
    """`call` compiled, with every array (or module of arrays) it reads from its globals passed
    in as a traced argument."""
    arrays = {name: call.__globals__[name] for name in _names(call.__code__)
              if name in call.__globals__ and _holds_arrays(call.__globals__[name])}

    def run(arrays):
        rebound = types.FunctionType(call.__code__, {**call.__globals__, **arrays},
                                     call.__name__, call.__defaults__, call.__closure__)
        return rebound()

    return lambda: eqx.filter_jit(run)(arrays)


def _outcome(call):
    try:
        call()
    except Exception as err:  # noqa: BLE001 - the error itself is what is compared
        return err
    return None


ROWS = [pytest.param(row, id=f"{table}-{i}") for table, rows in TABLES.items()
        for i, row in enumerate(rows)]


@pytest.fixture(autouse=True, scope="module")
def cheap_compiles():
    """Each row compiles its own program once, to see it refuse: XLA's optimisations only cost
    here (about a quarter of this module's time)."""
    previous = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", previous)


@pytest.mark.parametrize("row", ROWS)
def test_same_error_eagerly_and_under_jit(row):
    call, error, message = row
    source = _source(call)
    if any(piece in source for piece in NOT_JITTABLE):
        return
    jitted = _outcome(_traced(call))
    assert jitted is not None, f"under jit nothing refused: {source.strip()}"
    if isinstance(jitted, eqx.EquinoxRuntimeError):
        eager = _outcome(call)
        assert isinstance(eager, ValueError) and re.search(message, str(eager)), eager
        assert str(eager) in str(jitted), (str(eager), str(jitted))
    else:
        assert isinstance(jitted, error) and re.search(message, str(jitted)), jitted
        assert "Trace" not in str(jitted), jitted


TIMES = [  # (times, options, message of the refusal or None)
    ([0.0, 0.5, 0.5], {}, None),
    ([0.0, 0.5, 0.5], {"strictly": True}, "`ts` must be strictly increasing."),
    ([1.0, 0.5, 0.0], {"decreasing": True, "strictly": True}, None),
    ([1.0, 0.5, 0.0], {}, "`ts` must be increasing."),
    ([-1.0, 0.5], {"nonnegative": True}, "`ts` must be >= 0."),
    ([0.0, float("nan")], {}, "`ts` contains NaN or inf."),
]


@pytest.mark.parametrize("ts, options, refusal", TIMES)
def test_time_arrays_follow_one_rule_eagerly_and_under_jit(ts, options, refusal):
    ts = jnp.asarray(ts)
    eager = _outcome(lambda: _checks.times(ts, **options))
    jitted = _outcome(lambda: eqx.filter_jit(lambda s: _checks.times(s, **options))(ts))
    if refusal is None:
        assert eager is None and jitted is None
    else:
        assert isinstance(eager, ValueError) and str(eager) == refusal, eager
        assert isinstance(jitted, eqx.EquinoxRuntimeError) and refusal in str(jitted), jitted
    with pytest.raises(ValueError, match=r"`ts` must be a 1-D array of at least 2 times"):
        _checks.times(ts[:1], min_length=2)
