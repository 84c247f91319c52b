"""The table computed once: ``reproduce`` saves it as ``OUT/table.json`` (+ ``OUT/table.md``, and the
paper style's ``OUT/table-paper.md`` and ``.tex``), and
``rdmeval report`` reads that file instead of recomputing, so the report shows exactly the saved table.

``table.json`` is :meth:`ResultsTable.to_json`; it reads back into an equal table.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import pandas as pd

from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_text
from rdmeval.results.table_model import ResultsTable

TABLE_JSON = "table.json"
TABLE_MD = "table.md"
#: The paper style of the same table (:mod:`rdmeval.results.paper`): (file name, format).
TABLE_PAPER: tuple[tuple[str, str], ...] = (("table-paper.md", "md"), ("table-paper.tex", "latex"))


def saved_table_path(run_root: str | Path) -> Path:
    return Path(run_root) / TABLE_JSON


def save_table(table: ResultsTable, run_root: str | Path) -> Path:
    """Write ``table.json``, ``table.md`` (full) and the paper style's ``table-paper.md/.tex`` into
    ``run_root`` (atomically); returns the ``table.md`` path."""
    root = Path(run_root)
    atomic_write_text(root / TABLE_JSON, table.to_json())
    md = root / TABLE_MD
    atomic_write_text(md, table.render("md"))
    for name, fmt in TABLE_PAPER:
        atomic_write_text(root / name, table.render(fmt, style="paper"))
    return md


def load_saved_table(run_root: str | Path) -> ResultsTable | None:
    """The saved table of ``run_root``, or None when there is no ``table.json``."""
    path = saved_table_path(run_root)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return ResultsTable.from_json(text)
    except RdmevalError as exc:
        raise RdmevalError(f"{path}: {exc}; delete it or pass --recompute to rebuild the table from the result rows") from None


def rows_newer_than_saved(rows: pd.DataFrame, run_root: str | Path) -> int:
    """How many result rows were written after ``table.json`` (their ``timestamp``, to the second)."""
    path = saved_table_path(run_root)
    if rows.empty or "timestamp" not in rows.columns or not path.is_file():
        return 0
    saved = int(os.stat(path).st_mtime)
    newer = 0
    for stamp in rows["timestamp"].dropna():
        try:
            t = _dt.datetime.strptime(str(stamp), "%Y-%m-%dT%H:%M:%S%z").timestamp()
        except ValueError:
            continue  # no zone or another format: not comparable
        newer += t > saved
    return newer
