"""The table model: cell statuses, :class:`Cell`, :class:`Section` and :class:`ResultsTable`.

A :class:`ResultsTable` is a list of sections, each a titled grid of cells; a cell holds a reproduced
number (or the reason it has none) and what it is compared with. The display strings live here
(every renderer prints the same text); the renderers themselves are :mod:`rdmeval.results.table_render`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from rdmeval.errors import RdmevalError

TABLE_FORMAT = "rdmeval-table"
TABLE_VERSION = 1

# ----------------------------------------------------------------------------- statuses

OK = "ok"
NOT_RUN = "not run"
NOT_SCORED = "not scored"
INCOMPLETE = "incomplete"
SUBSET = "subset"
STANDIN = "stand-in"
NO_ROW = "no row"
UNAVAILABLE = "unavailable"
TEXT = "text"
STATUSES = (OK, NOT_RUN, NOT_SCORED, INCOMPLETE, SUBSET, STANDIN, NO_ROW, UNAVAILABLE, TEXT)
SHOWN = (OK, SUBSET, STANDIN)  # statuses whose number is printed (with the reason for the last two)

# ----------------------------------------------------------------------------- cells and sections


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _int(x: Any) -> int | None:
    v = _num(x)
    return None if v is None else int(round(v))


def fmt_number(x: float | None, decimals: int, unit: str = "", signed: bool = False) -> str:
    """``x`` with ``decimals`` decimals (``unit="%"``: ``x`` is a fraction printed as a percentage)."""
    if x is None:
        return "—"
    v = x * 100.0 if unit == "%" else x
    text = f"{v:.{decimals}f}"
    if float(text) == 0:
        text = text.lstrip("-")  # no "-0.0000"
    if signed and not text.startswith("-"):
        text = "+" + text
    return text


@dataclass
class Cell:
    """One grid cell: a reproduced number (or why there is none) and what it is compared with."""

    status: str = OK
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    n_prompts: int | None = None
    n_expected: int | None = None
    why: str = ""
    run: str = ""
    unit: str = ""
    decimals: int = 4
    published: float | None = None
    published_text: str = ""
    published_approx: bool = False
    delta: float | None = None
    others: dict[str, str] = field(default_factory=dict)  # other published run id -> printed value
    text: str = ""  # text cells (protocol)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise RdmevalError(f"cell status {self.status!r} is not one of {STATUSES}")

    # ---- display strings (plain text; renderers escape them)
    def shown(self) -> str:
        if self.status == TEXT:
            return self.text
        if self.status in SHOWN:
            out = fmt_number(self.value, self.decimals, self.unit)
            if self.ci_low is not None and self.ci_high is not None:
                out += f" [{fmt_number(self.ci_low, self.decimals, self.unit)}, {fmt_number(self.ci_high, self.decimals, self.unit)}]"
            if self.status != OK:
                out += f" ({self.why})"
            return out
        return self.why or self.status

    def shown_published(self) -> str:
        return self.published_text if self.published is not None else "—"

    def shown_delta(self) -> str:
        if self.delta is None:
            return "—"
        return ("≈" if self.published_approx else "") + fmt_number(self.delta, self.decimals, self.unit, signed=True)

    def shown_extra(self, key: str) -> str:
        v = self.extra.get(key)
        if v is None:
            return "—"
        if isinstance(v, float):
            return fmt_number(v, self.decimals, self.unit)
        return str(v)


@dataclass
class Section:
    """A titled grid of cells with row and column labels and notes printed under it."""

    key: str
    title: str
    stub: str  # heading of the row-label column
    row_keys: list[str]
    row_labels: list[str]
    col_keys: list[str]
    col_labels: list[str]
    cells: dict[tuple[str, str], Cell]
    notes: list[str] = field(default_factory=list)
    extra_fields: list[tuple[str, str]] = field(default_factory=list)  # (Cell.extra key, heading)
    run_labels: dict[str, str] = field(default_factory=dict)  # other published run id -> heading
    published_label: str = "published"  # heading of the published sub-column

    def __post_init__(self) -> None:
        if len(self.row_keys) != len(self.row_labels) or len(self.col_keys) != len(self.col_labels):
            raise RdmevalError(f"section {self.key}: row/column keys and labels differ in length")
        missing = [(r, c) for r in self.row_keys for c in self.col_keys if (r, c) not in self.cells]
        if missing:
            raise RdmevalError(f"section {self.key}: no cell at {missing[:3]}")

    def cell(self, row: str, col: str) -> Cell:
        try:
            return self.cells[(row, col)]
        except KeyError:
            raise RdmevalError(f"section {self.key} has no cell ({row!r}, {col!r}); rows {self.row_keys}, columns {self.col_keys}") from None

    def column_layout(self, col: str) -> list[tuple[str, str]]:
        """The printed sub-columns of one column: (kind, heading)."""
        label = self.col_labels[self.col_keys.index(col)]
        cells = [self.cells[(r, col)] for r in self.row_keys]
        prefix = f"{label}: " if len(self.col_keys) > 1 else ""
        parts = [("value", label)]
        if any(c.published is not None for c in cells):
            parts += [("published", f"{prefix}{self.published_label}"), ("delta", "Δ")]
        for run_id, run_label in self.run_labels.items():
            if any(run_id in c.others for c in cells):
                parts.append((f"other:{run_id}", f"{prefix}{run_label}"))
        return parts

    def header(self) -> list[str]:
        out = [self.stub]
        for col in self.col_keys:
            out += [h for _, h in self.column_layout(col)]
        out += [h for _, h in self.extra_fields]
        return out

    def body_cells(self) -> list[tuple[str, list[tuple[str, str, Cell]]]]:
        """Per row: its label and the printed sub-cells as (kind, text, cell); kinds: value, published,
        delta, other:<run id>, extra:<key>."""
        layouts = {col: self.column_layout(col) for col in self.col_keys}
        rows = []
        for r, label in zip(self.row_keys, self.row_labels):
            parts: list[tuple[str, str, Cell]] = []
            for col in self.col_keys:
                cell = self.cells[(r, col)]
                for kind, _ in layouts[col]:
                    if kind == "value":
                        parts.append((kind, cell.shown(), cell))
                    elif kind == "published":
                        parts.append((kind, cell.shown_published(), cell))
                    elif kind == "delta":
                        parts.append((kind, cell.shown_delta(), cell))
                    else:
                        parts.append((kind, cell.others.get(kind.split(":", 1)[1], "—"), cell))
            # extra fields come from the row's first cell
            first = self.cells[(r, self.col_keys[0])] if self.col_keys else Cell()
            parts += [(f"extra:{k}", first.shown_extra(k), first) for k, _ in self.extra_fields]
            rows.append((label, parts))
        return rows

    def body(self) -> list[list[str]]:
        """The printed rows: label, then the text of every sub-cell (what every renderer shows)."""
        return [[label] + [text for _, text, _ in parts] for label, parts in self.body_cells()]


def _section_meta(s: Section) -> dict[str, Any]:
    """A section without its key and cells, as JSON-ready data (the JSON and CSV renderers share it)."""
    return {"title": s.title, "stub": s.stub, "row_keys": s.row_keys, "row_labels": s.row_labels,
            "col_keys": s.col_keys, "col_labels": s.col_labels, "notes": s.notes,
            "extra_fields": [list(x) for x in s.extra_fields], "run_labels": s.run_labels,
            "published_label": s.published_label}


def _section_from_meta(key: str, meta: dict[str, Any], cells: dict[tuple[str, str], Cell]) -> Section:
    return Section(key=key, title=meta["title"], stub=meta["stub"], row_keys=list(meta["row_keys"]),
                   row_labels=list(meta["row_labels"]), col_keys=list(meta["col_keys"]), col_labels=list(meta["col_labels"]),
                   cells=cells, notes=list(meta["notes"]), extra_fields=[tuple(x) for x in meta["extra_fields"]],
                   run_labels=dict(meta["run_labels"]), published_label=meta["published_label"])



# ----------------------------------------------------------------------------- the table


@dataclass
class ResultsTable:
    run_root: str
    published_version: str
    sections: list[Section]

    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise RdmevalError(f"the table has no section {key!r}; sections: {', '.join(s.key for s in self.sections)}")

    # ---- renderers (rdmeval.results.table_render); CSV and JSON read back into an equal table
    #: The CSV's columns: one line per cell (long format), plus one line per section and one for the table.
    CSV_FIELDS: tuple[str, ...] = ("kind", "section", "row", "col", "label", "shown") + tuple(f.name for f in fields(Cell))

    def to_dict(self) -> dict[str, Any]:
        from rdmeval.results.table_render import to_dict

        return to_dict(self)

    def to_json(self) -> str:
        from rdmeval.results.table_render import to_json

        return to_json(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResultsTable":
        from rdmeval.results.table_render import from_dict

        return from_dict(d)

    @classmethod
    def from_json(cls, text: str) -> "ResultsTable":
        from rdmeval.results.table_render import from_json

        return from_json(text)

    def to_csv(self) -> str:
        from rdmeval.results.table_render import to_csv

        return to_csv(self)

    @classmethod
    def from_csv(cls, text: str) -> "ResultsTable":
        from rdmeval.results.table_render import from_csv

        return from_csv(text)

    def to_markdown(self) -> str:
        from rdmeval.results.table_render import to_markdown

        return to_markdown(self)

    def to_latex(self) -> str:
        from rdmeval.results.table_render import to_latex

        return to_latex(self)

    def render(self, fmt: str, style: str = "full", ci: str = "pm", tasks: bool = False) -> str:
        """``fmt`` = md | csv | latex | json; ``style="paper"`` (md, latex): :mod:`rdmeval.results.paper`."""
        from rdmeval.results.table_render import render

        return render(self, fmt, style=style, ci=ci, tasks=tasks)
