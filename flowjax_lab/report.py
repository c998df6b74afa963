"""The report of a set of runs: ``report.md`` and ``report.html`` (it renders; running is
``experiments.run_all`` and ``flowjax_lab.reproduce``).

The report is built from the run folders on disk (``OUT/<name>/metrics.json`` and its PNGs), so
it always shows what was saved. ``report.html`` is self-contained: figures are embedded as
base64 PNG, styles inline, no network access.
"""

import base64
import dataclasses
import datetime
import html
import platform
import warnings
from pathlib import Path

import jax

from . import experiments
from ._atomic import write_atomic
from .experiments._result import Result

NOT_RUN = "not run: interrupted"


def _fmt(value) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:d}"
    return f"{value:.4g}"


def _theme_title(theme: str) -> str:
    return theme[0].upper() + theme[1:]


def _anchor(name: str) -> str:
    return "exp-" + "".join(c if c.isalnum() else "-" for c in name)


@dataclasses.dataclass
class Summary:
    results: list[Result]
    seconds: float
    quick: bool
    seed: int

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def counts(self) -> dict:
        checks = [c for r in self.results for c in r.checks]
        return {
            "experiments": len(self.results),
            "experiments_passed": sum(r.passed for r in self.results),
            "experiments_failed": sum(r.error not in (None, NOT_RUN) for r in self.results),
            "checks": len(checks),
            "checks_passed": sum(c.passed for c in checks),
            "theory_checks": sum(c.kind == "theory" for c in checks),
            "theory_checks_passed": sum(c.passed and c.kind == "theory" for c in checks),
            "seconds": sum(r.seconds for r in self.results),  # as saved, also when resumed
        }

    def by_theme(self) -> list[tuple[str, list[Result]]]:
        themes = {name: experiments.get(name).theme for name in experiments.names()}
        groups = [(t, [r for r in self.results if themes.get(r.name) == t])
                  for t in experiments.THEMES]
        other = [r for r in self.results if r.name not in themes]
        return groups + ([("experiments that failed to load", other)] if other else [])

    def environment(self) -> str:
        device = jax.devices()[0]
        dtypes = sorted({str(r.config["dtype"]) for r in self.results if "dtype" in r.config})
        return (f"{'quick' if self.quick else 'full'} sizes, seed {self.seed}, "
                f"{' and '.join(dtypes) or 'no dtype'}, jax {jax.__version__} on "
                f"{device.platform} ({device.device_kind}), Python {platform.python_version()}")


def _description(name: str) -> str:
    try:
        return experiments.get(name).description
    except ValueError:
        return "This experiment module could not be imported."


def _status(r: Result) -> str:
    if r.error == NOT_RUN:
        return "not run"
    if r.error:
        return "error"
    return "pass" if r.passed else "fail"


def _check_rows(results: list[Result]) -> list[tuple[Result, object]]:
    """``(result, check)`` for every check, and ``(result, None)`` for a run with an error or
    without any check."""
    rows = []
    for r in results:
        if r.error or not r.checks:
            rows.append((r, None))
        rows += [(r, c) for c in r.checks]
    return rows


_CHECK_HEADER = ["check", "kind", "condition", "against", "result"]


def _check_cells(c) -> list[str]:
    return [c.name, c.kind, c.condition, c.against, "pass" if c.passed else "FAIL"]


def _no_check(r: Result) -> str:
    return f"run failed: {r.error}" if r.error else "no checks: the run cannot pass"


def counts_line(n: dict) -> str:
    return (f"{n['experiments_passed']} / {n['experiments']} experiments passed, "
            f"{n['checks_passed']} / {n['checks']} checks passed "
            f"({n['theory_checks_passed']} / {n['theory_checks']} against theory)")


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    clean = lambda cell: str(cell).replace("|", "\\|").replace("\n", " ")
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(clean(c) for c in row) + " |" for row in rows] + [""])


def write_markdown(summary: Summary, out: Path) -> None:
    """``out/report.md``: figures linked to the PNGs in the run folders."""
    n = summary.counts()
    lines = [
        "# flowjax_lab: reproduced results", "",
        f"**{counts_line(n)}**, run time of the experiments {n['seconds']:.0f} s "
        f"({summary.environment()}).", "",
    ]
    for theme, chosen in summary.by_theme():
        lines += [f"## {_theme_title(theme)}", ""]
        if not chosen:
            lines += ["_No experiment registered in this theme yet._", ""]
        for r in chosen:
            lines += [f"### {r.name} ({_status(r)}, {r.seconds:.1f} s)", "",
                      _description(r.name), ""]
            lines += [f"![{name}]({r.name}/{name}.png)" for name in r.figures] + [""]
            if r.error:
                lines += ["```", r.error, "```", ""]
            if r.metrics:
                lines += _markdown_table(["metric", "value"],
                                         [[k, _fmt(v)] for k, v in r.metrics.items()])
    lines += ["## Checks", "", _KINDS_TEXT, ""]
    rows = [[r.name, _no_check(r), "", "", "", "FAIL"] if c is None else
            [r.name, *_check_cells(c)] for r, c in _check_rows(summary.results)]
    lines += _markdown_table(["experiment", *_CHECK_HEADER], rows)
    write_atomic(out / "report.md", "\n".join(lines).encode())


_KINDS_TEXT = (
    "Kinds: *theory* compares with an independent closed form or exact solver; *comparison* "
    "sets one run against another (trained against untrained, one method against another); "
    "*sanity* bounds a value or states a fact (training finished, mass conserved). A NaN or inf "
    "fails every check, and an experiment without checks does not pass.")

_CSS = """
:root{--ink:#1d2330;--muted:#5d6677;--line:#e2e6ee;--bg:#f6f7fb;--card:#fff;--ok:#1a7f4b;
--okbg:#e3f5ea;--bad:#b42318;--badbg:#fde8e6;--warnbg:#fff4d6;--warn:#8a5a00;--accent:#3257d6}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.55 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 24px 60px}
h1{font-size:28px;margin:0 0 4px}h2{font-size:21px;margin:40px 0 12px;padding-bottom:6px;
border-bottom:2px solid var(--line)}h3{font-size:17px;margin:0}
.sub{color:var(--muted);margin:0 0 20px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:14px;margin:18px 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.card .big{font-size:26px;font-weight:650}.card .label{color:var(--muted);font-size:13px}
.card.ok{border-left:5px solid var(--ok)}.card.bad{border-left:5px solid var(--bad)}
nav{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px 18px}
nav ul{margin:4px 0 8px;padding-left:18px;columns:2}nav a{color:var(--accent);text-decoration:none}
nav .theme{font-weight:600;margin-top:6px}
article{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:18px 20px;
margin:16px 0;box-shadow:0 1px 2px rgba(20,30,60,.05)}
article header{display:flex;align-items:center;gap:10px;flex-wrap:wrap}
.time{color:var(--muted);font-size:13px;margin-left:auto}
.desc{color:var(--muted);margin:6px 0 12px}
.badge{display:inline-block;font-size:12px;font-weight:650;border-radius:999px;padding:2px 9px;
text-transform:uppercase;letter-spacing:.03em}
.badge.pass{background:var(--okbg);color:var(--ok)}.badge.fail,.badge.error{background:var(--badbg);
color:var(--bad)}.badge.not-run{background:var(--warnbg);color:var(--warn)}
figure{margin:8px 0 14px;text-align:center}figure img{max-width:100%;height:auto;
border-radius:6px}figcaption{color:var(--muted);font-size:13px}
.tables{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.6fr);gap:18px}
@media (max-width:800px){.tables{grid-template-columns:1fr}nav ul{columns:1}}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th{text-align:left;color:var(--muted);font-weight:600;border-bottom:2px solid var(--line);
padding:5px 8px}td{border-bottom:1px solid var(--line);padding:5px 8px;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;font-family:ui-monospace,
SFMono-Regular,Menlo,monospace;white-space:nowrap}
tr.failed td{background:var(--badbg)}
.error{background:var(--badbg);border-radius:8px;padding:10px 14px;color:var(--bad)}
.error pre{white-space:pre-wrap;color:var(--ink);font-size:12px;max-height:320px;overflow:auto}
.empty{color:var(--muted);font-style:italic}
footer{color:var(--muted);font-size:13px;margin-top:40px}
code{background:#eef1f7;border-radius:4px;padding:1px 5px}
summary{cursor:pointer;color:var(--accent);margin-bottom:6px}
"""

# Marks the page once every figure has loaded (read by the headless-browser test).
_SCRIPT = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.documentElement.setAttribute('data-figures', loaded.length + '/' + images.length);
});
"""


def _html_cell(i: int, cell: str, numeric: set[int], badge: int | None) -> str:
    esc = html.escape
    if i == badge:
        kind = {"pass": "pass", "FAIL": "fail", "not run": "not-run"}.get(cell, "error")
        return f"<td><span class='badge {kind}'>{esc(cell)}</span></td>"
    return f"<td class='num'>{esc(cell)}</td>" if i in numeric else f"<td>{esc(cell)}</td>"


def _html_table(header: list[str], rows: list[tuple[list[str], str]], numeric: set[int],
                badge: int | None = None) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        f"<tr class='{cls}'>" + "".join(_html_cell(i, c, numeric, badge)
                                        for i, c in enumerate(cells)) + "</tr>"
        for cells, cls in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_experiment(r: Result) -> str:
    esc = html.escape
    status = _status(r)
    parts = [f"<article id='{_anchor(r.name)}'><header><h3>{esc(r.name)}</h3>"
             f"<span class='badge {status.replace(' ', '-')}'>{status}</span>"
             f"<span class='time'>{r.seconds:.1f} s"
             + (f" &middot; seeds {esc(', '.join(map(str, r.seeds)))}" if len(r.seeds) > 1 else "")
             + f"</span></header><p class='desc'>{esc(_description(r.name))}</p>"]
    for name, png in r.figures.items():
        data = base64.b64encode(png).decode()
        parts.append(f"<figure><img alt='{esc(r.name)}: {esc(name)}' "
                     f"src='data:image/png;base64,{data}'><figcaption>{esc(name)}</figcaption>"
                     "</figure>")
    if r.error:
        trace = f"<details><summary>traceback</summary><pre>{esc(r.traceback)}</pre></details>" \
            if r.traceback else ""
        parts.append(f"<div class='error'><strong>{esc(r.error)}</strong>{trace}</div>")
    tables = []
    if r.metrics:
        table = _html_table(["metric", "value"],
                            [([k, _fmt(v)], "") for k, v in r.metrics.items()], {1})
        if len(r.metrics) > 12:  # a long list folds away so the checks stay in view
            table = f"<details><summary>{len(r.metrics)} metrics</summary>{table}</details>"
        tables.append(table)
    if r.checks:
        tables.append(_html_table(
            _CHECK_HEADER, [(_check_cells(c), "" if c.passed else "failed") for c in r.checks],
            {2}, badge=4))
    elif not r.error:
        parts.append("<div class='error'><strong>no checks: the run cannot pass</strong></div>")
    if tables:
        parts.append("<div class='tables'>" + "".join(f"<div>{t}</div>" for t in tables)
                     + "</div>")
    parts.append("</article>")
    return "".join(parts)


def write_html(summary: Summary, out: Path) -> None:
    """``out/report.html``: one self-contained page."""
    esc = html.escape
    n = summary.counts()
    ok = lambda good: "ok" if good else "bad"
    cards = [
        (f"{n['experiments_passed']} / {n['experiments']}", "experiments passed",
         ok(n["experiments_passed"] == n["experiments"])),
        (f"{n['checks_passed']} / {n['checks']}", "checks passed",
         ok(n["checks_passed"] == n["checks"])),
        (f"{n['theory_checks_passed']} / {n['theory_checks']}", "of them against theory",
         ok(n["theory_checks_passed"] == n["theory_checks"])),
        (str(n["experiments_failed"]), "runs that raised an error",
         ok(n["experiments_failed"] == 0)),
        (f"{n['seconds'] / 60:.1f} min", "run time of the experiments", ""),
    ]
    body = [
        "<main><h1>flowjax_lab: reproduced results</h1>",
        f"<p class='sub'>Particle clouds moved by vector fields, checked against theory. "
        f"{esc(summary.environment())}; "
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC.</p>",
        "<div class='cards'>" + "".join(
            f"<div class='card {cls}'><div class='big'>{esc(big)}</div>"
            f"<div class='label'>{esc(label)}</div></div>" for big, label, cls in cards)
        + "</div>",
        "<nav>",
    ]
    groups = summary.by_theme()
    for theme, chosen in groups:
        items = "".join(f"<li><a href='#{_anchor(r.name)}'>{esc(r.name)}</a> "
                        f"<span class='badge {_status(r).replace(' ', '-')}'>{_status(r)}</span>"
                        "</li>" for r in chosen) or "<li class='empty'>none yet</li>"
        body.append(f"<div class='theme'>{esc(_theme_title(theme))}</div><ul>{items}</ul>")
    body.append("<div class='theme'><a href='#checks'>All checks</a></div></nav>")
    for theme, chosen in groups:
        body.append(f"<section><h2>{esc(_theme_title(theme))}</h2>")
        if not chosen:
            body.append("<p class='empty'>No experiment registered in this theme yet.</p>")
        body += [_html_experiment(r) for r in chosen]
        body.append("</section>")
    rows = []
    for r, c in _check_rows(summary.results):
        link = r.name
        if c is None:
            rows.append(([link, _no_check(r), "", "", "", _status(r)], "failed"))
        else:
            rows.append(([link, *_check_cells(c)], "" if c.passed else "failed"))
    body.append(f"<section id='checks'><h2>All checks</h2><p class='desc'>{esc(_KINDS_TEXT)} "
                "In a condition, <code>|a - b| -&gt; e</code> is the distance of the value to "
                "its reference (relative unless the reference is 0) and <code>a &lt;= b - m"
                "</code> a bound with a margin.</p>" + _html_table(
                    ["experiment", *_CHECK_HEADER], rows, {3}, badge=5) + "</section>")
    body.append("<footer>Rerun one experiment at full size with <code>flowjax-lab run NAME</code>;"
                " change its configuration with <code>--set key=value</code>.</footer></main>")
    page = ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>flowjax_lab report</title><style>{_CSS}</style>"
            f"<script>{_SCRIPT}</script></head><body>" + "\n".join(body) + "</body></html>")
    write_atomic(out / "report.html", page.encode())


def write(results: list[Result], out, *, seconds: float, quick: bool, seed: int) -> Summary:
    """Write ``out/report.md`` and ``out/report.html`` for `results` (run folders in `out`)."""
    summary = Summary(results, seconds, quick, seed)
    write_markdown(summary, Path(out))
    write_html(summary, Path(out))
    return summary


def __getattr__(name: str):
    if name == "reproduce":  # moved in 0.2: the report only renders
        warnings.warn("flowjax_lab.report.reproduce is deprecated; use flowjax_lab.reproduce.",
                      DeprecationWarning, stacklevel=2)
        from ._reproduce import reproduce
        return reproduce
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
