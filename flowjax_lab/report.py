"""``reproduce``: run every registered experiment and write report.md and report.html."""

import base64
import html
import io
from pathlib import Path

from tqdm.auto import tqdm

from . import experiments
from .experiments._io import save_run, write_atomic
from .experiments._result import Result


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _check_rows(results: list[Result]) -> list[tuple]:
    rows = []
    for r in results:
        if r.error:
            rows.append((r.name, "run failed", "", "", r.error, "FAIL"))
        for c in r.checks:
            rows.append((r.name, c.name, f"{c.value:.4g}", f"{c.reference:.4g}",
                         f"{c.error:.3g} <= {c.tolerance:.3g}", "pass" if c.passed else "FAIL"))
    return rows


def write_markdown(results: list[Result], out: Path) -> None:
    lines = ["# flowjax_lab report", ""]
    for theme in experiments.THEMES:
        chosen = [r for r in results if experiments.get(r.name).theme == theme]
        if not chosen:
            continue
        lines += [f"## {theme.capitalize()}", ""]
        for r in chosen:
            lines += [f"### {r.name} ({'pass' if r.passed else 'FAIL'}, {r.seconds:.1f} s)", "",
                      experiments.get(r.name).description, ""]
            lines += [f"![{name}]({r.name}/{name}.png)" for name in r.figures] + [""]
            lines += [f"- {k}: {v:.6g}" for k, v in r.metrics.items()] + [""]
    lines += ["## Theory checks", "", "| experiment | check | value | reference | error | result |",
              "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in _check_rows(results)]
    write_atomic(out / "report.md", ("\n".join(lines) + "\n").encode())


def write_html(results: list[Result], out: Path) -> None:
    esc = html.escape
    body = ["<h1>flowjax_lab report</h1>"]
    for theme in experiments.THEMES:
        chosen = [r for r in results if experiments.get(r.name).theme == theme]
        if not chosen:
            continue
        body.append(f"<h2>{esc(theme.capitalize())}</h2>")
        for r in chosen:
            description = esc(experiments.get(r.name).description)
            body.append(f"<h3>{esc(r.name)} <small>{'pass' if r.passed else 'FAIL'}, "
                        f"{r.seconds:.1f} s</small></h3><p>{description}</p>")
            for name, fig in r.figures.items():
                data = base64.b64encode(_png(fig)).decode()
                body.append(f'<img alt="{esc(name)}" src="data:image/png;base64,{data}">')
            if r.metrics:
                body.append("<ul>" + "".join(f"<li>{esc(k)}: {v:.6g}</li>"
                                             for k, v in r.metrics.items()) + "</ul>")
    body.append("<h2>Theory checks</h2><table><tr><th>experiment</th><th>check</th><th>value</th>"
                "<th>reference</th><th>error</th><th>result</th></tr>")
    for row in _check_rows(results):
        body.append("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>")
    body.append("</table>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>flowjax_lab report</title>"
            "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
            "img{max-width:100%}td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    write_atomic(out / "report.html", page.encode())


def reproduce(out: Path, *, quick: bool = False, seed: int = 0) -> bool:
    """Run every experiment, save each run folder and the report; True when all checks pass."""
    results = []
    for name in (bar := tqdm(experiments.names(), desc="experiments", unit="exp")):
        bar.set_postfix_str(name)
        result = experiments.run(name, quick=quick, seed=seed)
        save_run(result, out / name)
        tqdm.write(result.table())
        results.append(result)
    write_markdown(results, out)
    write_html(results, out)
    print(f"report: {out / 'report.html'}")
    return all(r.passed for r in results)
