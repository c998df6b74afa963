"""`reproduce`: every experiment in the report with its figure and checks; failures reported
without stopping the others; Ctrl-C writes what finished; --resume reuses finished runs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowjax_lab as fl
from flowjax_lab._plotting import figure
from flowjax_lab.experiments import Result, _registry, close

CALLS = []


@dataclasses.dataclass(frozen=True)
class HeatConfig:
    n: int = 2000
    time: float = 0.5
    fail: bool = False
    interrupt: bool = False
    dtype: str = "float32"

    @classmethod
    def quick(cls):
        return cls()


def _heat(config, key):
    """Brownian particles from N(0, I): their covariance is (1 + 2t) I (the heat flow)."""
    CALLS.append(config)
    if config.fail:
        raise FloatingPointError("blew up on purpose")
    if config.interrupt:
        raise KeyboardInterrupt
    k0, k1 = jax.random.split(key)
    x0 = jax.random.normal(k0, (config.n, 2))
    x1 = x0 + jnp.sqrt(2 * config.time) * jax.random.normal(k1, (config.n, 2))
    result = Result("heat", dataclasses.asdict(config))
    cov = fl.metrics.covariance(x1)
    result.metrics["trace"] = float(jnp.trace(cov))
    result.checks.append(close("covariance vs (1 + 2t) I", cov, (1 + 2 * config.time) * np.eye(2),
                               8 / np.sqrt(config.n), against="heat flow closed form"))
    fig, axes = figure(2, size=2.5)
    axes[0, 0].scatter(*np.asarray(x0[:300]).T, s=3)
    axes[0, 1].scatter(*np.asarray(x1[:300]).T, s=3, color="C3")
    result.figures["clouds"] = fig
    return result


@pytest.fixture
def toys():
    """Three experiments: one passes, one raises, one in another theme passes."""
    _registry._load_all()
    saved = dict(_registry._REGISTRY)
    CALLS.clear()
    register = fl.experiments.register
    for name, theme, cfg in [
        ("heat-a", "gradient flows and mean-field training", HeatConfig),
        ("heat-broken", "gradient flows and mean-field training",
         dataclasses.make_dataclass("Broken", [("fail", bool, True)], bases=(HeatConfig,),
                                    frozen=True)),
        ("heat-z", "transformer dynamics", HeatConfig),
    ]:
        register(name, theme=theme, config=cfg, description=f"Heat flow {name}.")(_heat)
    yield ["heat-a", "heat-broken", "heat-z"]
    _registry._REGISTRY.clear()
    _registry._REGISTRY.update(saved)


def test_report_has_every_experiment_figure_and_check(toys, tmp_path, capsys):
    passed = fl.reproduce(tmp_path, names=toys)
    assert passed is False  # heat-broken raised
    assert len(CALLS) == 3  # ... and the others still ran
    page = (tmp_path / "report.html").read_text()
    markdown = (tmp_path / "report.md").read_text()
    for name in toys:
        assert f"id='exp-{name}'" in page and f"### {name}" in markdown
        assert (tmp_path / name / "metrics.json").exists()
    assert page.count("data:image/png;base64,") == 2
    assert "FloatingPointError: blew up on purpose" in page and "traceback" in page
    assert page.count("covariance vs (1 + 2t) I") == 4  # card and summary table, twice
    for theme in fl.experiments.THEMES:
        assert theme[0].upper() + theme[1:] in page
    assert "1 / 3" not in page and "2 / 3" in page  # experiments passed
    assert "![clouds](heat-a/clouds.png)" in markdown
    assert "| heat-a | covariance vs (1 + 2t) I |" in markdown
    out = capsys.readouterr().out
    assert "2 / 3 experiments passed" in out and "total run time" in out
    assert "1 / 2 against theory" not in out and "2 / 2 against theory" in out
    assert "heat flow closed form" in page and "| theory |" in markdown


def _unchecked(config, key):
    return Result("unchecked", dataclasses.asdict(config), metrics={"x": 1.0})


def test_a_run_without_checks_fails_the_report(toys, tmp_path):
    fl.experiments.register("heat-unchecked", theme="transformer dynamics", config=HeatConfig,
                            description="No checks.")(_unchecked)
    assert fl.reproduce(tmp_path, names=["heat-a", "heat-unchecked"]) is False
    page = (tmp_path / "report.html").read_text()
    assert "no checks: the run cannot pass" in page
    assert "| heat-unchecked | no checks: the run cannot pass |" in (
        tmp_path / "report.md").read_text()


def test_all_passing_is_true_and_resume_reuses_finished_runs(toys, tmp_path):
    assert fl.reproduce(tmp_path, names=["heat-a", "heat-z"]) is True
    first = (tmp_path / "heat-a" / "metrics.json").read_text()
    assert fl.reproduce(tmp_path, names=["heat-a", "heat-z"], resume=True) is True
    assert len(CALLS) == 2  # nothing ran again
    assert (tmp_path / "heat-a" / "metrics.json").read_text() == first
    assert "data:image/png;base64," in (tmp_path / "report.html").read_text()


def test_ctrl_c_writes_the_report_of_what_finished(toys, tmp_path):
    fl.experiments.register("heat-stop", theme="transformer dynamics",
                            config=dataclasses.make_dataclass(
                                "Stop", [("interrupt", bool, True)], bases=(HeatConfig,),
                                frozen=True), description="Ctrl-C here.")(_heat)
    with pytest.raises(KeyboardInterrupt):
        fl.reproduce(tmp_path, names=["heat-a", "heat-stop", "heat-z"])
    page = (tmp_path / "report.html").read_text()
    assert "not run: interrupted" in page and page.count("data:image/png;base64,") == 1
    assert not (tmp_path / "heat-z").exists()


def test_old_report_reproduce_still_works_with_a_deprecation_warning(toys, tmp_path):
    from flowjax_lab import report

    with pytest.warns(DeprecationWarning, match="flowjax_lab.reproduce"):
        old = report.reproduce
    assert old is fl.reproduce


def test_resume_of_a_folder_run_with_other_settings_is_reported_not_rerun(toys, tmp_path):
    fl.experiments.run_into(tmp_path, "heat-a", overrides={"n": 300})
    first = (tmp_path / "heat-a" / "metrics.json").read_text()
    assert fl.reproduce(tmp_path, names=["heat-a", "heat-z"], resume=True) is False
    assert "other settings" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "heat-a" / "metrics.json").read_text() == first


def test_jobs_run_in_fresh_processes_with_the_same_results(tmp_path):
    # a registered experiment (the workers import the registry afresh), in a worker process
    # that takes this process's JAX settings (x64 here), then in this process
    from flowjax_lab.experiments._run_folder import run_all

    kwargs = {"quick": True, "progress": False}
    [spawned] = run_all(tmp_path / "jobs", ["aggregation"], jobs=2, **kwargs)
    [here] = run_all(tmp_path / "here", ["aggregation"], **kwargs)
    assert spawned.passed and here.passed
    assert spawned.metrics == here.metrics
    assert (tmp_path / "jobs" / "aggregation" / "metrics.json").exists()
    with pytest.raises(ValueError, match=r"`jobs` must be an integer >= 1, got 0"):
        next(run_all(tmp_path, ["aggregation"], jobs=0))
