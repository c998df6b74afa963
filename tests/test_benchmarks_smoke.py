"""The benchmark suite runs end to end at tiny size; peers are skipped when absent."""

import importlib
import json

import pytest

pytest.importorskip("benchmarks", reason="benchmarks/ is only in a source checkout")

from benchmarks import __main__ as runner, _harness as H  # noqa: E402


def _row(group, impl, run_s, baseline=False, flops=None):
    timing = H.Timing(first=run_s + 1.0, median=run_s, iqr=0.0, repeats=3)
    return H.row(group=group, name="x", impl=impl, timing=timing, sizes={}, dtype="float32",
                 baseline=baseline, throughput=(10.0, "things/s"), flops=flops)


def test_ratios_compile_time_and_table():
    rows = [_row("g", "ours", 0.5, baseline=True, flops=1e9), _row("g", "peer", 1.5),
            _row("h", "alone", 2.0),
            H.skipped(group="g", name="x", impl="absent", sizes={}, dtype="float32", why="no")]
    H.add_ratios(rows, matmul_rate=4e9)
    assert rows[0]["time_vs_baseline"] == pytest.approx(1.0)
    assert rows[1]["time_vs_baseline"] == pytest.approx(3.0)
    assert rows[2]["time_vs_baseline"] is None  # no baseline in its group
    assert rows[0]["compile_s"] == pytest.approx(1.0)
    assert rows[0]["throughput"] == pytest.approx(20.0)
    assert rows[0]["matmul_fraction"] == pytest.approx(0.5)  # 2e9 FLOP/s of 4e9
    text = H.table(rows)
    assert "skipped: no" in text and "3.00" in text


def test_time_call_separates_first_call():
    calls = []

    def fn():
        calls.append(1)
        return len(calls)

    timing, out = H.time_call(fn, repeats=4, warmup=2, sync=lambda o: o)
    assert len(calls) == 1 + 2 + 4 and out == 7
    assert timing.repeats == 4 and timing.median >= 0 and timing.compile >= 0


def test_every_module_defines_rows():
    names = runner.modules()
    assert {"transport", "simulate"} <= set(names)
    for name in names:
        assert callable(importlib.import_module(f"benchmarks.{name}").rows), name


def test_suite_runs_at_quick_size(tmp_path, capsys):
    """The runner end to end on the transport and simulate modules (the other modules are
    smoke-tested beside their own code, to keep this file's CPU time small)."""
    out = tmp_path / "bench.json"
    mine = ["transport", "simulate"]
    assert runner.main(["--quick", "--repeats", "1", "--out", str(out), "--only", *mine]) == 0
    report = json.loads(out.read_text())
    assert not report["failures"]
    assert report["machine"]["matmul_flops_per_s_float32"] > 0
    assert {r["module"] for r in report["rows"]} == set(mine)
    groups = {r["group"] for r in report["rows"]}
    for group in groups:
        members = [r for r in report["rows"] if r["group"] == group]
        assert sum(r["baseline"] for r in members) == 1, group
    for r in report["rows"]:
        if r["skipped"]:
            assert r["run_s"] is None and r["skipped"].strip()
        else:
            assert r["run_s"] > 0 and r["compile_s"] >= 0 and r["time_vs_baseline"] > 0
    ours = [r for r in report["rows"] if r["impl"].startswith("flowjax_lab") and r["baseline"]]
    assert ours and all(r["throughput"] > 0 for r in ours)
    # transport.sinkhorn(momentum=...) has its own row: converged, in no more iterations.
    sink = {r["impl"]: r for r in report["rows"] if r["name"] == "sinkhorn" and not r["skipped"]}
    fast = next(r for impl, r in sink.items() if impl.startswith("flowjax_lab sinkhorn momentum"))
    assert fast["converged"] and not fast["baseline"]
    assert fast["iterations"] <= sink["flowjax_lab transport.sinkhorn (default)"]["iterations"]
    assert "written to" in capsys.readouterr().out


def test_unknown_module_is_refused(tmp_path, capsys):
    assert runner.main(["--only", "nope", "--out", str(tmp_path / "b.json")]) == 2
    assert "unknown module" in capsys.readouterr().err
