"""The notebooks (jupytext percent scripts paired with .ipynb) are in sync and execute at small
size (FLOWJAX_LAB_SMALL=1, set by conftest.py); each asserts its own agreement with theory."""

import os
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext", reason="install the `test` extra (jupytext)")
nbclient = pytest.importorskip("nbclient", reason="install the `test` extra (nbclient)")

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.py"))


def _sources(notebook):
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_one_notebook_per_theme():
    # 01-04 follow the themes; 05_real_data shows the real-data experiments, across themes
    import flowjax_lab as fl

    assert len([p for p in NOTEBOOKS if p.stem != "05_real_data"]) == len(fl.experiments.THEMES)


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_paired_and_executes(script, tmp_path):
    notebook = jupytext.read(script)
    paired = script.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} missing: run `jupytext --sync {script}`"
    assert _sources(jupytext.read(paired)) == _sources(notebook), f"run jupytext --sync {script}"
    assert os.environ["FLOWJAX_LAB_SMALL"] == "1"
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was drawn"
