"""The `flowjax-lab` command: help for each sub-command, list, run folders, seeds, exit codes."""

import json
import subprocess
import sys

import pytest
from test_report import toys  # noqa: F401  (the fixture)

from flowjax_lab import cli


@pytest.mark.parametrize("command, words", [
    ([], ["list", "run", "reproduce"]),
    (["list"], ["--verbose"]),
    (["run"], ["--quick", "--set", "--seeds", "--resume", "--out", "--device", "--dtype",
               "--quiet"]),
    (["reproduce"], ["--quick", "--only", "--resume", "report.html"]),
])
def test_help(command, words, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(w in text for w in words)


def test_list_groups_by_theme(capsys):
    assert cli.main(["list", "--verbose"]) == 0
    text = capsys.readouterr().out
    assert "Optimal transport and flow matching" in text and "gaussian-transport" in text
    assert "n : int = 20000" in text


def test_run_writes_the_folder_and_exit_codes(toys, tmp_path, capsys):  # noqa: F811
    out = ["--out", str(tmp_path), "--dtype", "float64"]
    assert cli.main(["run", "heat-a", "--set", "n=500", "--seeds", "2", *out]) == 0
    folder = tmp_path / "heat-a"
    assert {p.name for p in folder.iterdir()} == {"config.json", "metrics.json", "clouds.png"}
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["passed"] and saved["seeds"] == [0, 1] and "trace_std" in saved["metrics"]
    assert json.loads((folder / "config.json").read_text())["config"]["n"] == 500
    assert "written to" in capsys.readouterr().out
    assert cli.main(["run", "heat-broken", *out]) == 1  # the run raised: reported, exit 1
    assert "blew up on purpose" in capsys.readouterr().out
    assert (tmp_path / "heat-broken" / "traceback.txt").exists()


def test_reproduce_exit_code(toys, tmp_path):  # noqa: F811
    out = ["--out", str(tmp_path), "--dtype", "float64"]
    assert cli.main(["reproduce", "--only", "heat-a,heat-z", *out]) == 0
    assert cli.main(["reproduce", "--only", "heat-a,heat-broken", *out]) == 1
    assert (tmp_path / "report.html").exists()


def test_user_mistake_has_no_traceback():
    done = subprocess.run([sys.executable, "-m", "flowjax_lab.cli", "run", "gaussian-transport",
                           "--set", "nn=3"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "Unknown config key 'nn'" in done.stderr and "Did you mean 'n'" in done.stderr
