"""The paper view of a :class:`ResultsTable`: the card's layout, one number per cell, footnotes.

``paper_view(table)`` turns the table's ``main`` section (and, with ``tasks=True``, its GenEval
per-task sections) into a :class:`PaperTable`:

- rows = models; columns = each benchmark's reproduced value, then the published value and Δ;
- a value cell prints one number: the value, with ``ci="pm"`` ± half the width of its bootstrap
  interval, ``ci="interval"`` the interval itself, ``ci="none"`` nothing more;
- the published column appears where a row has a published value, the Δ column only where a
  reproduction used the published number's prompts (all of them): only those cells have a delta;
- a reason (``not run``, ``on demo-geneval, not geneval``, ``subset: 100 of 553 prompts``, no
  published row for the model) is a footnote mark on the cell, its text printed once below;
- the protocol section, one line per setting (provenance included), follows the table.

It is a rendering: every number comes from the table's cells, so the Markdown, LaTeX and HTML
paper tables (:mod:`rdmeval.results.table_render`, :mod:`rdmeval.report.paper_html`) print the
same text as :meth:`Cell.shown` at the same precision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from rdmeval.errors import RdmevalError
from rdmeval.results.table_model import OK, SHOWN, STANDIN, SUBSET, TEXT, Cell, ResultsTable, Section, fmt_number
from rdmeval.standin import STANDIN_NOTE

CI_MODES: tuple[str, ...] = ("pm", "interval", "none")
STYLES: tuple[str, ...] = ("paper", "full")
#: Footnote marks, in order of first use.
MARKS = "abcdefghijklmnopqrstuvwxyz"
TASK_LABELS = {"single_object": "single obj.", "two_object": "two obj.", "counting": "counting", "colors": "colors",
               "position": "position", "color_attr": "color attr."}


@dataclass(frozen=True)
class PaperCell:
    """One printed cell: its text (without marks), footnote marks, kind and the source cell's status."""

    text: str
    marks: tuple[str, ...] = ()
    kind: str = "value"  # value | published | delta
    status: str = OK
    delta: float | None = None
    run: str = ""  # the run folder under the run root (value cells)


@dataclass(frozen=True)
class PaperColumn:
    key: str  # the main section's column (or "<column>/<task>")
    label: str
    kind: str  # value | published | delta | task
    marks: tuple[str, ...] = ()  # marks shared by every cell of the column, printed once in its heading


@dataclass
class PaperTable:
    title: str
    stub: str
    columns: list[PaperColumn]
    rows: list[tuple[str, list[PaperCell]]]  # (model label, one cell per column)
    footnotes: list[tuple[str, str]]  # (mark, text)
    notes: list[str]
    protocol: list[tuple[str, str]] = field(default_factory=list)  # (setting, text)

    def header(self) -> list[str]:
        return [self.stub] + [c.label for c in self.columns]


def _half_width(c: Cell) -> float | None:
    if c.ci_low is None or c.ci_high is None:
        return None
    return (c.ci_high - c.ci_low) / 2.0


def value_text(c: Cell, ci: str) -> str:
    """The one number of a value cell (with its interval as ``ci`` asks), or '—' when it has none."""
    if c.status not in SHOWN or c.value is None:
        return "—"
    out = fmt_number(c.value, c.decimals, c.unit)
    if ci == "pm" and _half_width(c) is not None:
        out += f" ± {fmt_number(_half_width(c), c.decimals, c.unit)}"
    elif ci == "interval" and c.ci_low is not None and c.ci_high is not None:
        out += f" [{fmt_number(c.ci_low, c.decimals, c.unit)}, {fmt_number(c.ci_high, c.decimals, c.unit)}]"
    return out


def _reason(c: Cell) -> str | None:
    """The footnote of a value cell, or None for a plain reproduced number."""
    if c.status == OK:
        return None
    if c.status == STANDIN:
        return f"reproduced {c.why} (a stand-in prompt set): no Δ to the published value"
    if c.status == SUBSET:
        return f"{c.why}: no Δ to the published value"
    return c.why or c.status


def _reasons(*texts: str | None) -> tuple[str, ...]:
    """Footnote texts of a cell while the table is built (letters are given once it is laid out)."""
    return tuple(t for t in texts if t)


def _lettered(columns: list[PaperColumn], rows: list[tuple[str, list[PaperCell]]]
              ) -> tuple[list[PaperColumn], list[tuple[str, list[PaperCell]]], list[tuple[str, str]]]:
    """Replace footnote texts by letters in reading order (headings, then the rows left to right)."""
    letters: dict[str, str] = {}

    def mark(texts: tuple[str, ...]) -> tuple[str, ...]:
        for t in texts:
            if t not in letters:
                if len(letters) >= len(MARKS):
                    raise RdmevalError(f"the paper table needs more than {len(MARKS)} footnotes; use --style full")
                letters[t] = MARKS[len(letters)]
        return tuple(letters[t] for t in texts)

    columns = [replace(c, marks=mark(c.marks)) for c in columns]
    rows = [(label, [replace(c, marks=mark(c.marks)) for c in cells]) for label, cells in rows]
    return columns, rows, [(m, t) for t, m in letters.items()]


def _level(notes: list[str]) -> str:
    found = re.search(r"(\d+% (?:/ \d+% )*)percentile bootstrap", " ".join(notes))
    return found.group(1) if found else ""


def paper_view(table: ResultsTable, *, ci: str = "pm", tasks: bool = False) -> PaperTable:
    """The paper layout of ``table`` (see the module docstring)."""
    if ci not in CI_MODES:
        raise RdmevalError(f"--ci {ci!r}: choose one of {', '.join(CI_MODES)}")
    main = table.section("main")
    columns: list[PaperColumn] = []
    grid: dict[str, list[PaperCell]] = {}  # column key -> one cell per model row
    unpublished_whys: set[str] = set()
    for col, label in zip(main.col_keys, main.col_labels):
        cells = [main.cell(m, col) for m in main.row_keys]
        values = [PaperCell(value_text(c, ci), _reasons(_reason(c)), "value", c.status, run=c.run) for c in cells]
        _add(columns, grid, PaperColumn(col, label, "value"), values)
        why_unpublished = [str(c.extra.get("published_why") or "") for c in cells]
        unpublished_whys.update(w for w in why_unpublished if w)
        if any(c.published is not None for c in cells):
            pub = [PaperCell(c.shown_published(), _reasons(w) if c.published is None else (), "published", c.status)
                   for c, w in zip(cells, why_unpublished)]
            _add(columns, grid, PaperColumn(f"{col}:published", main.published_label, "published"), pub)
        elif any(why_unpublished):  # no row has a published value: the reason goes under the value
            grid[col] = [replace(v, marks=v.marks + _reasons(w)) for v, w in zip(values, why_unpublished)]
        if any(c.delta is not None for c in cells):
            _add(columns, grid, PaperColumn(f"{col}:delta", "Δ", "delta"),
                 [PaperCell(c.shown_delta(), (), "delta", c.status, c.delta) for c in cells])
        if tasks and f"tasks:{col}" in {s.key for s in table.sections}:
            for key, tlabel, tcells in _task_columns(table.section(f"tasks:{col}"), main.row_keys, cells, ci):
                if any(c.text != "—" for c in tcells):  # a task column of "—" only would add nothing
                    _add(columns, grid, PaperColumn(key, tlabel, "task"), tcells)
    columns = [_hoist(c, grid) for c in columns]
    columns, rows, footnotes = _lettered(columns, [(label, [grid[c.key][i] for c in columns])
                                                   for i, label in enumerate(main.row_labels)])

    level = _level(main.notes)
    ci_note = {"pm": f"± half the width of the {level}percentile bootstrap interval over prompts",
               "interval": f"[the {level}percentile bootstrap interval over prompts]",
               "none": ""}[ci]
    # the main section's notes but its own "[interval]" one (this view says how its cells show the interval):
    # a stand-in warning first, then the published source, Δ, metric definitions
    kept = [n for n in main.notes if n not in unpublished_whys and not n.startswith("Reproduced value [interval]")]
    notes = [n for n in kept if n == STANDIN_NOTE]
    notes.append(f"Reproduced value{(' ' + ci_note) if ci_note else ''}; every number comes from the scorers' result rows.")
    notes += [n for n in kept if n != STANDIN_NOTE]
    notes.append("Δ only where the reproduction used the prompts of the published number (all of them); "
                 "a footnote says why a cell has none.")
    if tasks:
        notes.append("Task columns: accuracy per GenEval task in % (the card publishes them for the student only; "
                     "the full style prints them beside the card's).")
    return PaperTable(title=main.title, stub="Model", columns=columns, rows=rows, footnotes=footnotes,
                      notes=notes, protocol=_protocol_lines(table))


def _add(columns: list[PaperColumn], grid: dict[str, list[PaperCell]], column: PaperColumn, cells: list[PaperCell]) -> None:
    columns.append(column)
    grid[column.key] = cells


def _hoist(column: PaperColumn, grid: dict[str, list[PaperCell]]) -> PaperColumn:
    """Marks every cell of a column carries are printed once, in its heading."""
    cells = grid[column.key]
    shared = tuple(m for m in cells[0].marks if all(m in c.marks for c in cells)) if cells else ()
    if not shared:
        return column
    grid[column.key] = [replace(c, marks=tuple(m for m in c.marks if m not in shared)) for c in cells]
    return replace(column, marks=shared)


def _task_columns(section: Section, models: list[str], overall: list[Cell], ci: str) -> list[tuple[str, str, list[PaperCell]]]:
    """Per-task columns; a task cell without a plain number carries its model's overall footnote (the
    run's reason, e.g. its whole image count, not the task's share of it)."""
    out = []
    for task in section.row_keys:
        if task == "overall":
            continue
        cells = []
        for m, main_cell in zip(models, overall):
            c = section.cells.get((task, m))
            if c is None:  # the model has no run of this benchmark
                cells.append(PaperCell("—", _reasons(_reason(main_cell) or "no per-task figures"), "task", main_cell.status))
                continue
            reason = _reason(main_cell) if c.status == main_cell.status else _reason(c)
            cells.append(PaperCell(value_text(c, ci), _reasons(reason), "task", c.status, run=c.run))
        out.append((f"{section.key}/{task}", TASK_LABELS.get(task, task), cells))
    return out


def _protocol_lines(table: ResultsTable) -> list[tuple[str, str]]:
    """The protocol section as (setting, text): one text when every column agrees, else per column."""
    try:
        proto = table.section("protocol")
    except RdmevalError:
        return []
    out = []
    for key, label in zip(proto.row_keys, proto.row_labels):
        texts = [(cl, proto.cells[(key, c)].text if proto.cells[(key, c)].status == TEXT else proto.cells[(key, c)].shown())
                 for c, cl in zip(proto.col_keys, proto.col_labels)]
        shown = [(cl, t) for cl, t in texts if t and t != "—"]
        if not shown:
            continue
        if len({t for _, t in shown}) == 1 and len(shown) == len(texts):
            out.append((label, shown[0][1]))
        else:
            out.append((label, "; ".join(f"{cl}: {t}" for cl, t in texts)))
    return out
