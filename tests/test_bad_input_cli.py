"""Bad input to the CLI and the experiments API: a clear message naming what was expected."""

import dataclasses
import re

import jax
import pytest

import flowjax_lab as fl
from flowjax_lab import cli
from flowjax_lab.experiments import _registry


@pytest.mark.parametrize("argv, message", [
    (["run", "gausian-transport"], r"Did you mean 'gaussian-transport'"),
    (["run", "gaussian-transport", "--set", "rotaton=1"], r"Did you mean 'rotation'"),
    (["run", "gaussian-transport", "--set", "n=3.5"], r"'n' expects int, got '3.5'"),
    (["run", "gaussian-transport", "--set", "n"], r"--set expects KEY=VALUE"),
    (["run", "gaussian-transport", "--set", "seed=3"], r"Unknown config key 'seed'"),
    (["run", "gaussian-transport", "--set", "rotation=abc"], r"'rotation' expects float"),
    (["run", "gaussian-transport", "--seeds", "0"], r"--seeds must be at least 1"),
    (["run", "gaussian-transport", "--resume"], r"does not train"),
    (["run", "gaussian-transport", "--preset", "paper"], r"Unknown `preset` 'paper'"),
    (["run", "fm-2d-protocol", "--preset", "paper", "--quick"], r"either `quick` or `preset`"),
    (["reproduce", "--only", "nope"], r"Unknown `experiment` 'nope'"),
    (["reproduce", "--jobs", "0"], r"--jobs must be at least 1, got 0"),
])
def test_cli_user_mistakes(argv, message, capsys, tmp_path):
    assert cli.main([*argv, "--out", str(tmp_path), "--dtype", "float64"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flowjax-lab: error:")
    assert re.search(message, err), err


def test_cli_unwritable_out(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["run", "gaussian-transport", "--out", str(blocker), "--dtype", "float64"]
    assert cli.main(argv) == 2
    assert "cannot write the run folder" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run"], ["run", "x", "--device", "quantum"],
                                  ["run", "x", "--dtype", "float16"], ["nope"]])
def test_cli_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "usage:" in capsys.readouterr().err


@dataclasses.dataclass(frozen=True)
class _Cfg:
    n: int = 3
    dtype: str = "float32"

    @classmethod
    def quick(cls):
        return cls()


@dataclasses.dataclass
class _Mutable:
    n: int = 3

    @classmethod
    def quick(cls):
        return cls()


@dataclasses.dataclass(frozen=True)
class _Reserved:
    seed: int = 3

    @classmethod
    def quick(cls):
        return cls()


@dataclasses.dataclass(frozen=True)
class _NoDtype:
    n: int = 3

    @classmethod
    def quick(cls):
        return cls()


GT = "gaussian-transport"
CASES = [
    (lambda: fl.experiments.get("nope"), ValueError, "Unknown `experiment`"),
    (lambda: fl.experiments.names("nope"), ValueError, "Unknown `theme`"),
    (lambda: fl.experiments.run(GT, n="x"), ValueError, "'n' expects int"),
    (lambda: fl.experiments.run(GT, n=2.5), TypeError, "'n' expects int"),
    (lambda: fl.experiments.run(GT, n=True), TypeError, "'n' expects int"),
    (lambda: fl.experiments.run(GT, rotation=None), TypeError, "expects float, got None"),
    (lambda: fl.experiments.run(GT, seeds=[1, 1]), ValueError, "distinct"),
    (lambda: fl.experiments.run(GT, seeds=0), ValueError, "seeds"),
    (lambda: fl.experiments.run(GT, seed=-1), ValueError, "seed"),
    (lambda: fl.experiments.run(GT, key=jax.random.key(0), seeds=2), ValueError, "either"),
    (lambda: fl.experiments.run(GT, key=3), TypeError, "key"),
    (lambda: fl.experiments.register("x", theme="nope", config=_Cfg, description=""),
     ValueError, "Unknown `theme`"),
    (lambda: fl.experiments.register("x", theme=fl.experiments.THEMES[0], config=_Mutable,
                                     description=""), TypeError, "frozen dataclass"),
    (lambda: fl.experiments.register("x", theme=fl.experiments.THEMES[0], config=_Reserved,
                                     description=""), ValueError, "clash"),
    (lambda: fl.experiments.register("x", theme=fl.experiments.THEMES[0], config=_NoDtype,
                                     description=""), TypeError, "must have a field `dtype"),
    (lambda: fl.experiments.run(GT, dtype="float16"), ValueError, "'dtype' of gaussian-transport"),
    (lambda: fl.experiments.register(GT, theme=fl.experiments.THEMES[0], config=_Cfg,
                                     description="")(lambda c, k: None),
     ValueError, "registered twice"),
    (lambda: fl.experiments.load_run("/nonexistent/run"), FileNotFoundError, "metrics.json"),
    (lambda: fl.experiments.combine_seeds([], []), ValueError, "non-empty"),
]


@pytest.mark.parametrize("call, error, message", CASES)
def test_api_bad_input(call, error, message):
    _registry._load_all()
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("env, argv, message", [
    ({"FLOWJAX_LAB_NUM_PROCESSES": "two"}, [],
     r"--distributed: `FLOWJAX_LAB_NUM_PROCESSES` must be an integer, got 'two'"),
    ({"FLOWJAX_LAB_COORDINATOR": "nohost", "FLOWJAX_LAB_NUM_PROCESSES": "2"}, [],
     r"--distributed: `FLOWJAX_LAB_COORDINATOR` must be 'host:port'"),
    ({"FLOWJAX_LAB_NUM_PROCESSES": "1"}, ["--resume"],
     r"--resume with --distributed is not supported"),
])
def test_cli_distributed_mistakes(env, argv, message, monkeypatch, capsys, tmp_path):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli.main(["run", "gaussian-transport", "--distributed", *argv,
                     "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("flowjax-lab: error:") and re.search(message, err), err
