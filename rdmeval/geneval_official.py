"""Reading GenEval's official ``results.jsonl`` (the rows ``evaluate_images.py`` writes, and
``rdmeval score geneval`` too): the results layer reads it back without scorer code, and
:mod:`rdmeval.scorers.geneval.summary` re-exports it next to the writer."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from rdmeval.errors import RdmevalError

#: The columns the summary needs.
REQUIRED_COLUMNS: tuple[str, ...] = ("tag", "metadata", "correct")


def read_official_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a ``results.jsonl`` the way the official summary script does."""
    p = Path(path)
    if not p.is_file():
        raise RdmevalError(f"GenEval results file not found: {p}")
    try:
        df = pd.read_json(p, orient="records", lines=True)
    except ValueError as exc:
        raise RdmevalError(f"{p} is not a GenEval results JSONL file: {exc}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise RdmevalError(f"{p} lacks column(s) {missing}; is it an evaluate_images.py results file?")
    return df
