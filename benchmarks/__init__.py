"""flowjax_lab's benchmark suite: `python -m benchmarks [--quick] [--out file.json]`.

Each public module here (a name without a leading underscore) defines
``rows(quick: bool, repeats: int | None = None) -> list[dict]``; the runner discovers them.
"""
