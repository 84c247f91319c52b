"""The model card's table, regenerated from tidy result rows, beside the published numbers.

``build_table(run_root)`` reads every ``<root>/runs/*/*/scores/*/summary.parquet`` (the rows the
scorers write, :mod:`rdmeval.api.rows`) and ``results/published.toml``, and returns a
:class:`ResultsTable` of sections, each a grid of :class:`Cell`:

- ``main``: models (teacher / naive / student, then any other) x the card's three columns
  (GenEval, PickScore COCO-val, PickScore Pick-a-Pic), with reproduced value, bootstrap interval,
  published value and delta; benchmarks outside the card (demo sets) get extra columns;
- ``tasks:<benchmark>``: GenEval per task for every model, with the card's (and the authors'
  re-run's) per-task figures for the student;
- ``published-runs``: the paper's other reported runs against the reproduced values;
- ``paired``: student - teacher on the same prompts (paired bootstrap; :mod:`rdmeval.results.paired`);
- ``protocol``: the choices behind each column (ctx_len, steps, seeds, RNG device, precision,
  prompt-set definition, scorer and library versions).

A cell that has no number says why (``not run``, ``incomplete run: 2,100/2,212 images``, ...).
Renderers: :meth:`ResultsTable.to_markdown`, ``to_csv``, ``to_latex``, ``to_json``; CSV and JSON
read back (``from_csv``, ``from_json``) into an equal table.

This module is the public face of the table; the work is split by job:

- :mod:`rdmeval.results.table_model`: statuses, :class:`Cell`, :class:`Section`, :class:`ResultsTable`;
- :mod:`rdmeval.results.table_render`: the Markdown, CSV, LaTeX and JSON renderers;
- :mod:`rdmeval.results.runroot`: the run-root reader (result rows and run directories);
- :mod:`rdmeval.results.columns`: the card's models and columns;
- :mod:`rdmeval.results.sections`: the section builder (:func:`build_table`);
- :mod:`rdmeval.results.protocol_text`: the protocol section's text;
- :mod:`rdmeval.results.saved`: the table saved once by ``reproduce`` (``table.json``) and read by the report.
"""

from __future__ import annotations

from rdmeval.results.columns import (
    CARD_COLUMNS,
    CARD_MODELS,
    FAMILY_CELL,
    FAMILY_LABELS,
    FULL_PROMPTS,
    MODEL_LABELS,
    ColumnSpec,
    scorer_family,
    table_models,
)
from rdmeval.results.runroot import RunRoot, read_run_root, runs_dir
from rdmeval.results.saved import TABLE_JSON, load_saved_table, save_table
from rdmeval.results.sections import build_table
from rdmeval.results.table_model import (
    INCOMPLETE,
    NO_ROW,
    NOT_RUN,
    NOT_SCORED,
    OK,
    SHOWN,
    STANDIN,
    STATUSES,
    SUBSET,
    TABLE_FORMAT,
    TABLE_VERSION,
    TEXT,
    UNAVAILABLE,
    Cell,
    ResultsTable,
    Section,
    fmt_number,
)
from rdmeval.results.table_render import latex_escape

__all__ = [
    "CARD_COLUMNS", "CARD_MODELS", "FAMILY_CELL", "FAMILY_LABELS", "FULL_PROMPTS", "MODEL_LABELS", "ColumnSpec",
    "scorer_family", "table_models", "RunRoot", "read_run_root", "runs_dir", "build_table", "INCOMPLETE", "NO_ROW",
    "NOT_RUN", "NOT_SCORED", "OK", "SHOWN", "STANDIN", "STATUSES", "SUBSET", "TABLE_FORMAT", "TABLE_VERSION", "TEXT",
    "UNAVAILABLE", "Cell", "ResultsTable", "Section", "fmt_number", "latex_escape", "TABLE_JSON", "load_saved_table",
    "save_table",
]
