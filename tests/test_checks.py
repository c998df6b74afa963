"""The experiments' check vocabulary: every check can fail, NaN and inf never pass, a result
without checks does not pass, and checks survive the run folder."""

import math

import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab import experiments as ex

BAD = [math.nan, math.inf, -math.inf]


def _builders(value, reference):
    """One check of every kind of relation, passing when `value` and `reference` are 1.0 and
    2.0."""
    return [
        ex.close("close", value, reference, 1.5, relative=False),
        ex.at_most("at most", value, reference),
        ex.at_least("at least", reference, value),
        ex.better("better, lower", value, reference, margin=0.5),
        ex.better("better, higher", reference, value, margin=0.5, lower=False),
    ]


def test_every_relation_passes_and_fails_on_the_numbers():
    assert all(c.passed for c in _builders(1.0, 2.0))
    assert not any(c.passed for c in _builders(3.0, 1.0))
    assert ex.better("b", 1.6, 2.0, margin=0.5).passed is False  # inside the margin fails
    assert ex.holds("h", True).passed and not ex.holds("h", False).passed


@pytest.mark.parametrize("bad", BAD)
def test_nan_and_inf_fail_every_check(bad):
    for c in _builders(bad, 2.0) + _builders(1.0, bad):
        assert not c.passed, c
    assert not ex.close("arrays", np.array([1.0, bad]), np.ones(2), 1e9).passed
    assert not ex.at_most("nan margin", 1.0, 2.0, margin=math.nan).passed


def test_fit_ok_fails_on_a_stopped_or_nonfinite_fit():
    class Fit:
        status, step, losses = fl.Status.SUCCESS, 3, np.array([1.0, 0.5, 0.2])

    assert ex.fit_ok("fit", Fit()).passed
    for status, losses in [(fl.Status.NONFINITE, Fit.losses), (fl.Status.INTERRUPTED, Fit.losses),
                           (fl.Status.SUCCESS, np.array([1.0, np.nan])),
                           (fl.Status.SUCCESS, np.array([]))]:
        fit = Fit()
        fit.status, fit.losses = status, losses
        assert not ex.fit_ok("fit", fit).passed


def test_a_result_passes_only_with_checks_that_all_pass():
    result = ex.Result("r", {})
    assert not result.passed and "no checks" in result.table()
    result.checks.append(ex.at_most("bound", 0.1, 1.0))
    assert result.passed
    result.checks.append(ex.close("closed form", math.nan, 1.0, 0.1))
    assert not result.passed and result.failed_checks == ["closed form"]


def test_kinds_relations_and_values_are_refused_when_unknown():
    with pytest.raises(ValueError, match="kind"):
        ex.close("c", 1.0, 1.0, 0.1, kind="vibes")
    with pytest.raises(ValueError, match="relation"):
        ex.Check("c", 1.0, 1.0, relation="roughly")
    with pytest.raises(ValueError, match="value"):
        ex.at_most("c", np.ones(3), 1.0)


def test_seeds_keep_the_worst_check_and_nan_is_worst():
    runs = [ex.Result("r", {}, checks=[ex.close("c", v, 1.0, 0.5)]) for v in (1.1, 1.4, 1.2)]
    combined = ex.combine_seeds(runs, [0, 1, 2])
    assert combined.checks[0].value == 1.4 and combined.passed
    runs.append(ex.Result("r", {}, checks=[ex.close("c", math.nan, 1.0, 0.5)]))
    assert not ex.combine_seeds(runs, [0, 1, 2, 3]).passed


def test_checks_survive_the_run_folder_and_passed_is_recomputed(tmp_path):
    result = ex.Result("r", {"n": 1}, checks=[
        ex.close("theory", 1.0, 1.1, 0.2, against="closed form"),
        ex.better("trained beats untrained", 0.2, 1.0, margin=0.3),
        ex.at_most("nan", math.nan, 1.0)])
    ex.save_run(result, tmp_path)
    back = ex.load_run(tmp_path)
    assert back.checks[:2] == result.checks[:2] and math.isnan(back.checks[2].value)
    assert [c.passed for c in back.checks] == [True, True, False]
    assert [c.kind for c in back.checks] == ["theory", "comparison", "sanity"]
