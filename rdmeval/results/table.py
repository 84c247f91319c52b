"""The model card's table, regenerated from tidy result rows, beside the published numbers.

``build_table(run_root)`` reads every ``<root>/runs/*/*/scores/*/summary.parquet`` (the rows the
scorers write, :mod:`rdmeval.results.rows`) and ``results/published.toml``, and returns a
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
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from rdmeval.api.layout import RunLayout, RunRootLayout
from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import TAGS
from rdmeval.results.published import Published, PublishedValue, load_published
from rdmeval.results.rows import read_rows

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

#: The card's rows, in the order the table prints them, and their labels.
CARD_MODELS: tuple[str, ...] = ("teacher", "naive", "student")
MODEL_LABELS: dict[str, str] = {
    "teacher": "4-step FLUX.2 klein teacher",
    "naive": "naive klein @ 1 step (no distillation)",
    "student": "1-step RDM student (s180)",
}
#: Full prompt counts of the card's benchmarks: fewer prompts make a "subset" cell.
FULL_PROMPTS: dict[str, int] = {"geneval": 553, "pickapic-test": 499}


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the main table: which rows fill it and how its numbers print."""

    key: str
    label: str
    benchmark: str
    family: str  # "geneval" or "pickscore": the scorer name's prefix
    category: str
    metric: str
    decimals: int
    card: bool = True
    scorer: str | None = None  # a specific scorer name (None: the family's only scorer)


CARD_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("geneval", "GenEval", "geneval", "geneval", "overall", "overall", 4),
    ColumnSpec("coco-val", "PickScore COCO-val", "coco-val", "pickscore", "all", "pickscore_mean", 3),
    ColumnSpec("pickapic-test", "PickScore Pick-a-Pic", "pickapic-test", "pickscore", "all", "pickscore_mean", 3),
)
FAMILY_LABELS = {"geneval": "GenEval", "pickscore": "PickScore"}
FAMILY_CELL = {"geneval": ("overall", "overall", 4), "pickscore": ("all", "pickscore_mean", 3)}


def scorer_family(scorer: str) -> str | None:
    for fam in FAMILY_LABELS:
        if str(scorer).startswith(fam) and not str(scorer).endswith("-paired"):
            return fam
    return None


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

    # ---- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TABLE_FORMAT,
            "version": TABLE_VERSION,
            "run_root": self.run_root,
            "published_version": self.published_version,
            "sections": [
                {"key": s.key, **_section_meta(s),
                 "cells": [{"row": r, "col": c, **asdict(s.cells[(r, c)])} for r in s.row_keys for c in s.col_keys]}
                for s in self.sections
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResultsTable":
        if d.get("format") != TABLE_FORMAT or d.get("version") != TABLE_VERSION:
            raise RdmevalError(f"not an {TABLE_FORMAT} v{TABLE_VERSION} document (format={d.get('format')!r}, version={d.get('version')!r})")
        names = {f.name for f in fields(Cell)}
        sections = [
            _section_from_meta(s["key"], s, {(c["row"], c["col"]): Cell(**{k: v for k, v in c.items() if k in names})
                                             for c in s["cells"]})
            for s in d["sections"]
        ]
        return cls(run_root=d["run_root"], published_version=d["published_version"], sections=sections)

    @classmethod
    def from_json(cls, text: str) -> "ResultsTable":
        try:
            return cls.from_dict(json.loads(text))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RdmevalError(f"cannot read the table JSON: {exc}") from None

    # ---- CSV: one line per cell (long format), plus one line per section and one for the table
    CSV_FIELDS: tuple[str, ...] = ("kind", "section", "row", "col", "label", "shown") + tuple(f.name for f in fields(Cell))

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(self.CSV_FIELDS), lineterminator="\n")
        w.writeheader()
        w.writerow({"kind": "table", "label": json.dumps({"run_root": self.run_root, "published_version": self.published_version,
                                                         "format": TABLE_FORMAT, "version": TABLE_VERSION})})
        for s in self.sections:
            w.writerow({"kind": "section", "section": s.key, "label": json.dumps(_section_meta(s), ensure_ascii=False)})
            for r, rl in zip(s.row_keys, s.row_labels):
                for c in s.col_keys:
                    cell = s.cells[(r, c)]
                    line: dict[str, Any] = {"kind": "cell", "section": s.key, "row": r, "col": c, "label": rl, "shown": cell.shown()}
                    for f in fields(Cell):
                        v = getattr(cell, f.name)
                        line[f.name] = json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else ("" if v is None else repr(v) if isinstance(v, float) else v)
                    w.writerow(line)
        return buf.getvalue()

    @classmethod
    def from_csv(cls, text: str) -> "ResultsTable":
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None or list(reader.fieldnames) != list(cls.CSV_FIELDS):
            raise RdmevalError(f"not an rdmeval table CSV: expected the columns {', '.join(cls.CSV_FIELDS)}")
        table_meta: dict[str, Any] | None = None
        sections: dict[str, dict[str, Any]] = {}
        kinds = {f.name: f.type for f in fields(Cell)}
        for line in reader:
            if line["kind"] == "table":
                table_meta = json.loads(line["label"])
            elif line["kind"] == "section":
                sections[line["section"]] = {**json.loads(line["label"]), "cells": {}}
            elif line["kind"] == "cell":
                values: dict[str, Any] = {}
                for name, typ in kinds.items():
                    raw = line[name]
                    if "dict" in str(typ):
                        values[name] = json.loads(raw) if raw else {}
                    elif "float" in str(typ):
                        values[name] = float(raw) if raw != "" else None
                    elif "int" in str(typ) and "str" not in str(typ):
                        values[name] = int(raw) if raw != "" else None
                    elif "bool" in str(typ):
                        values[name] = raw == "True"
                    else:
                        values[name] = raw
                sections[line["section"]]["cells"][(line["row"], line["col"])] = Cell(**values)
            else:
                raise RdmevalError(f"unknown line kind {line['kind']!r} in the table CSV")
        if table_meta is None:
            raise RdmevalError("the table CSV has no 'table' line")
        out = [_section_from_meta(key, s, s["cells"]) for key, s in sections.items()]
        return cls(run_root=table_meta["run_root"], published_version=table_meta["published_version"], sections=out)

    # ---- Markdown
    def to_markdown(self) -> str:
        out = [f"# Results: {self.run_root}", "",
               f"Reproduced values from the scorers' result rows; published values from results/published.toml (version {self.published_version}).", ""]
        for s in self.sections:
            out += [f"## {s.title}", ""]
            if s.row_keys:
                header = s.header()
                out.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
                out.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
                for line in s.body():
                    out.append("| " + " | ".join(_md_escape(x) for x in line) + " |")
                out.append("")
            out += [f"- {_md_escape_text(n)}" for n in s.notes]
            out.append("")
        return "\n".join(out).rstrip("\n") + "\n"

    # ---- LaTeX (booktabs)
    def to_latex(self) -> str:
        out = ["% rdmeval results table; needs \\usepackage{booktabs}",
               f"% run root: {latex_escape(self.run_root)}; published numbers v{latex_escape(self.published_version)}", ""]
        for s in self.sections:
            if not s.row_keys:
                continue
            header = s.header()
            out += ["\\begin{table}[t]", "\\centering", "\\small",
                    f"\\caption{{{latex_escape(s.title)}}}", f"\\label{{tab:rdmeval-{_label(s.key)}}}",
                    "\\begin{tabular}{l" + "r" * (len(header) - 1) + "}", "\\toprule",
                    " & ".join(latex_escape(h) for h in header) + " \\\\", "\\midrule"]
            out += [" & ".join(latex_escape(x) for x in line) + " \\\\" for line in s.body()]
            out += ["\\bottomrule", "\\end{tabular}"]
            if s.notes:
                out.append("\\par\\smallskip\\footnotesize " + " ".join(latex_escape(n) for n in s.notes))
            out += ["\\end{table}", ""]
        return "\n".join(out)

    def render(self, fmt: str) -> str:
        renderers = {"md": self.to_markdown, "csv": self.to_csv, "latex": self.to_latex, "json": self.to_json}
        if fmt not in renderers:
            raise RdmevalError(f"--format {fmt!r}: choose one of {', '.join(renderers)}")
        return renderers[fmt]()


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_escape_text(text: str) -> str:
    return text.replace("\n", " ")


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"$\sim$", "^": r"\textasciicircum{}", "Δ": r"$\Delta$", "≈": r"$\approx$",
          "—": "---", "−": "-", "×": r"$\times$", "·": r"$\cdot$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def _label(key: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in key)


# ----------------------------------------------------------------------------- reading a run root


@dataclass
class RunRoot:
    """What is under ``<root>/runs``: the result rows and the run directories (generated or not)."""

    root: Path
    rows: pd.DataFrame  # read_rows + _run_dir, _model_key, _scorer_dir
    runs: dict[tuple[str, str], Path]  # (model folder, benchmark) -> run dir
    presets: dict[str, str]  # model folder -> generator preset (for published lookups)


def runs_dir(root: str | Path) -> Path:
    runs = RunRootLayout(root).runs
    if runs.is_dir():
        return runs
    raise RdmevalError(
        f"{root} has no runs/ folder; RUN_ROOT is the folder that holds runs/<model>/<benchmark>/ "
        "(the --out of `rdmeval reproduce`)"
    )


def read_run_root(root: str | Path) -> RunRoot:
    root = Path(root)
    base = runs_dir(root)
    frames = []
    for path in RunRootLayout(root).summaries():
        try:
            df = read_rows([path])
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise RdmevalError(f"{path}: cannot read the result rows ({exc}); rescore that run") from None
        run_dir = RunLayout.of_summary(path)[0].root
        df["_run_dir"] = str(run_dir)
        df["_model_key"] = run_dir.parent.name
        df["_bench_key"] = run_dir.name  # the suite's benchmark (a smoke run may use a stand-in prompt set)
        df["_scorer_dir"] = path.parent.name
        frames.append(df)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["_run_dir", "_model_key", "_bench_key", "_scorer_dir", "model", "benchmark", "scorer"])
    runs: dict[tuple[str, str], Path] = {}
    presets: dict[str, str] = {}
    for manifest in RunRootLayout(root).manifests():
        try:
            req = json.loads(manifest.read_text()).get("request", {})
        except (OSError, json.JSONDecodeError):
            continue  # a broken manifest leaves the run "not run"; `rdmeval generate` explains it
        run_dir = manifest.parent
        runs[(run_dir.parent.name, run_dir.name)] = run_dir
        model = req.get("model", {})
        presets.setdefault(run_dir.parent.name, str(model.get("preset") or model.get("name") or run_dir.parent.name))
    for _, r in rows.drop_duplicates("_run_dir").iterrows():
        presets[r["_model_key"]] = str(r.get("model") or r["_model_key"])
        runs.setdefault((r["_model_key"], r["_bench_key"]), Path(r["_run_dir"]))
    if rows.empty and not runs:
        raise RdmevalError(
            f"nothing under {base}: no run directories (runs/<model>/<benchmark>/manifest.json) and no score summaries "
            "(runs/*/*/scores/*/summary.parquet). Generate and score runs first (`rdmeval reproduce` does both)"
        )
    return RunRoot(root=root, rows=rows, runs=runs, presets=presets)


# ----------------------------------------------------------------------------- building


def _why_not_scored(run_dir: Path) -> tuple[str, int | None, int | None]:
    from rdmeval.store import RunStore

    try:
        cov = RunStore(run_dir).coverage()
    except (RdmevalError, KeyError, OSError, ValueError):
        return "generated, not scored", None, None
    if cov["complete"]:
        return f"generated ({cov['present_images']:,} images), not scored", cov["present_images"], cov["expected_images"]
    return (f"incomplete run: {cov['present_images']:,}/{cov['expected_images']:,} images, not scored",
            cov["present_images"], cov["expected_images"])


class _Builder:
    def __init__(self, rr: RunRoot, published: Published, models: Sequence[str] | None):
        self.rr = rr
        self.pub = published
        rows = rr.rows
        self.rows = rows
        self.models = table_models(rr, models)
        self._groups: dict[tuple[str, str, str], pd.DataFrame] = {}
        self._not_scored: dict[Path, tuple[str, int | None, int | None]] = {}
        if not rows.empty:
            for key, group in rows.groupby(["_model_key", "_bench_key", "scorer"], sort=False, dropna=False):
                self._groups[tuple(str(k) for k in key)] = group
        self.columns = self._columns()

    # ---- columns: the card's three, then one per other (benchmark, scorer) found
    def _columns(self) -> list[ColumnSpec]:
        cols = list(CARD_COLUMNS)
        pairs = self.rows[["_bench_key", "scorer"]].drop_duplicates().itertuples(index=False) if not self.rows.empty else []
        seen_card: dict[tuple[str, str], str] = {}
        extra: list[ColumnSpec] = []
        # the card's scorer fills a card column when a benchmark was scored more than one way
        preferred = {"geneval": "geneval-mmdet", "pickscore": "pickscore"}
        found = sorted(((str(b), str(s)) for b, s in pairs),
                       key=lambda bs: (bs[0], bs[1] != preferred.get(scorer_family(bs[1]) or "", ""), bs[1]))
        for bench, scorer in found:
            fam = scorer_family(scorer)
            if fam is None:
                continue
            card = next((c for c in CARD_COLUMNS if c.benchmark == bench and c.family == fam), None)
            if card is not None and (bench, fam) not in seen_card:
                seen_card[(bench, fam)] = scorer
                continue
            category, metric, decimals = FAMILY_CELL[fam]
            label = f"{FAMILY_LABELS[fam]} [{bench}]" if card is None else f"{FAMILY_LABELS[fam]} [{bench}, {scorer}]"
            extra.append(ColumnSpec(f"{bench}:{scorer}", label, bench, fam, category, metric, decimals, card=False, scorer=scorer))
        self.card_scorers = seen_card
        return cols + extra

    def _scorer_for(self, col: ColumnSpec) -> str | None:
        return col.scorer if col.scorer else self.card_scorers.get((col.benchmark, col.family))

    def _rows_for(self, model: str, col: ColumnSpec) -> pd.DataFrame:
        scorer = self._scorer_for(col)
        found = self._groups.get((model, col.benchmark, str(scorer))) if scorer is not None else None
        return found if found is not None else self.rows.iloc[0:0]

    def preset(self, model: str) -> str:
        return self.rr.presets.get(model, model)

    def cell(self, model: str, col: ColumnSpec, category: str, metric: str, unit: str, decimals: int,
             published: PublishedValue | None) -> Cell:
        cell = Cell(unit=unit, decimals=decimals)
        if published is not None:
            cell.published, cell.published_text, cell.published_approx = published.value, published.text, published.approx
        rows = self._rows_for(model, col)
        if rows.empty:
            run_dir = self.rr.runs.get((model, col.benchmark))
            if run_dir is None:
                cell.status, cell.why = NOT_RUN, "not run"
            else:
                cell.status = NOT_SCORED
                if run_dir not in self._not_scored:
                    self._not_scored[run_dir] = _why_not_scored(run_dir)
                cell.why, cell.n, cell.n_expected = self._not_scored[run_dir]
                cell.run = self._rel(run_dir)
            return cell
        hit = rows[(rows["category"] == category) & (rows["metric"] == metric)]
        cell.run = self._rel(Path(rows["_run_dir"].iloc[0]))
        if hit.empty:
            cell.status = NO_ROW
            cell.why = f"{rows['scorer'].iloc[0]} wrote no {category}/{metric} row"
            return cell
        if len(hit) > 1:
            raise RdmevalError(
                f"{hit['_run_dir'].iloc[0]}: {len(hit)} result rows for {category}/{metric} of scorer "
                f"{hit['scorer'].iloc[0]}; a summary holds one row per (category, metric). Rescore the run"
            )
        row = hit.iloc[0]
        cell.value, cell.ci_low, cell.ci_high = _num(row["value"]), _num(row.get("ci_low")), _num(row.get("ci_high"))
        cell.n, cell.n_prompts = _int(row.get("n")), _int(row.get("n_prompts"))
        complete = row.get("complete")
        coverage = _num(row.get("coverage"))
        if complete is not None and not bool(complete):
            cell.status = INCOMPLETE
            if cell.n is not None and coverage:
                cell.n_expected = int(round(cell.n / coverage))
                cell.why = f"incomplete run: {cell.n:,}/{cell.n_expected:,} images"
            else:
                cell.why = "incomplete run"
            return cell
        used = str(rows["benchmark"].iloc[0])
        if col.card and used != col.benchmark:  # e.g. a smoke run: demo-captions standing in for pickapic-test
            cell.status = STANDIN
            cell.why = f"on {used}, not {col.benchmark}"
            return cell
        full = FULL_PROMPTS.get(col.benchmark)
        run_prompts = _int(rows.loc[rows["category"] == col.category, "n_prompts"].max())  # the whole run's prompts
        if full is not None and run_prompts is not None and run_prompts < full:
            cell.status = SUBSET
            cell.why = f"subset: {run_prompts:,} of {full:,} prompts"
            return cell
        if cell.published is not None and cell.value is not None:
            cell.delta = cell.value - cell.published
        return cell

    def _rel(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.rr.root))
        except ValueError:
            return str(path)

    def _published(self, model: str, col: ColumnSpec, category: str, metric: str, run: str | None = None) -> PublishedValue | None:
        if not col.card:
            return None
        return self.pub.get(self.preset(model), col.benchmark, category, metric, run=run)

    # ---- sections
    def main(self) -> Section:
        cells = {}
        for m in self.models:
            for col in self.columns:
                cells[(m, col.key)] = self.cell(m, col, col.category, col.metric, "", col.decimals,
                                                self._published(m, col, col.category, col.metric))
        notes = [
            f"Reproduced value [interval]: the scorers' result rows; the interval is the scorer's {self._level_text()}"
            "percentile bootstrap over prompts (GenEval: prompts resampled within each task).",
            f"Published: {self.pub.primary.label} ({self.pub.primary.source}). Δ = reproduced - published; "
            "≈ marks a published value printed as approximate.",
            "GenEval = unweighted mean of the six task accuracies (553 prompts x 4 images); PickScore = mean over "
            "prompts of logit_scale * cos (no softmax).",
        ]
        if any(not c.card for c in self.columns):
            notes.append("Columns in brackets are benchmarks outside the card (no published value).")
        return Section("main", "The model card's table", "model", list(self.models),
                       [MODEL_LABELS.get(m, m) for m in self.models], [c.key for c in self.columns],
                       [c.label for c in self.columns], cells, notes, published_label=self.pub.primary.id)

    def _level_text(self) -> str:
        levels = set()
        for p in self.rows.get("protocol", pd.Series(dtype=object)).dropna().unique():
            lvl = _find_key(_loads(p), "level")
            if isinstance(lvl, (int, float)):
                levels.add(float(lvl))
        return " / ".join(f"{int(round(v * 100))}%" for v in sorted(levels)) + " " if levels else ""

    def task_sections(self) -> list[Section]:
        out = []
        for col in self.columns:
            if col.family != "geneval":
                continue
            has = [m for m in self.models if not self._rows_for(m, col).empty or (m, col.benchmark) in self.rr.runs]
            if not col.card and not has:
                continue
            models = [m for m in self.models if (col.card and m in CARD_MODELS) or m in has]
            present = self.rows[(self.rows["_bench_key"] == col.benchmark) & (self.rows["metric"] == "accuracy")] if not self.rows.empty else self.rows
            order = [v.category for v in self.pub.select(run=self.pub.primary.id, benchmark="geneval", metric="accuracy")]
            order = list(dict.fromkeys(order + list(TAGS) + sorted(set(present.get("category", [])) - set(TAGS))))
            found = set(present.get("category", []))
            tasks = [t for t in order if t in found or (col.card and t in TAGS)]
            run_labels = {r.id: r.label for r in self.pub.other_runs()}
            cells = {}
            for t in tasks + ["overall"]:
                metric = "overall" if t == "overall" else "accuracy"
                for m in models:
                    # published figures only for models with published per-task figures (the student);
                    # the others' published Overall is in the main table
                    has_tasks = col.card and bool(self.pub.task_values(self.preset(m)))
                    pv = self._published(m, col, t, metric) if has_tasks else None
                    c = self.cell(m, col, t, metric, "%", 2 if t == "overall" else 1, pv)
                    if pv is not None and metric == "overall":  # the card prints Overall as a fraction
                        c.published_text = ("~" if pv.approx else "") + fmt_number(pv.value, max(pv.decimals - 2, 0), "%")
                    if has_tasks:
                        for run_id in run_labels:
                            if not self.pub.task_values(self.preset(m), run=run_id):
                                continue
                            pv = self.pub.get(self.preset(m), col.benchmark, t, metric, run=run_id)
                            if pv is not None:
                                c.others[run_id] = pv.text if metric == "accuracy" else fmt_number(pv.value, max(pv.decimals - 2, 0), "%")
                    cells[(t, m)] = c
            notes = [
                "Task accuracy = correct images / images of the task, in %; Overall = unweighted mean of the task accuracies.",
                f"Intervals: {self._level_text()}percentile bootstrap, prompts resampled within each task.",
            ]
            if col.card:
                notes.append("Published per-task figures exist for the student only: the model card's, and the authors' "
                             "local re-run of the same checkpoint (see 'Other published runs'). Δ = reproduced - card.")
            out.append(Section(f"tasks:{col.key}", f"{col.label}: per task", "task", tasks + ["overall"],
                               tasks + ["overall"], models, models, cells, notes,
                               run_labels=dict(run_labels), published_label=self.pub.primary.id))
        return out

    def published_runs(self) -> Section:
        keys, labels, cells = [], [], {}
        for run in self.pub.other_runs():
            for v in self.pub.select(run=run.id):
                col = next(c for c in CARD_COLUMNS if c.benchmark == v.benchmark)
                model = next((m for m in self.models if self.preset(m) == v.model), v.model)
                percent = v.metric == "accuracy"
                c = self.cell(model, col, v.category, v.metric, "%" if percent else "", 1 if percent else col.decimals, v)
                if not v.same_weights:
                    c.delta = None  # another checkpoint: a difference would not test the reproduction
                key = "/".join(v.key)
                keys.append(key)
                what = col.label if v.category in ("overall", "all") else f"{col.label} {v.category}"
                labels.append(f"{run.label}: {v.model}, {what}")
                cells[(key, "value")] = c
        notes = [f"{r.label}: {r.description} Source: {r.source}" for r in self.pub.other_runs()]
        notes.append("Δ = reproduced - that run's published value; none where the published run used other weights "
                     "(the paper's Table-2 student is a COCO-only checkpoint, not the released s180).")
        return Section("published-runs", "Other published runs", "published run", keys, labels, ["value"],
                       ["reproduced"], cells, notes)

    def paired(self, pairs: Sequence[tuple[str, str]], n_resamples: int, seed: int) -> Section:
        from rdmeval.results.paired import compare_geneval_runs, compare_pickscore_runs

        keys, labels, cells = [], [], {}
        for a, b in pairs:
            for col in self.columns:
                ra, rb = self.rr.runs.get((a, col.benchmark)), self.rr.runs.get((b, col.benchmark))
                scored = not self._rows_for(a, col).empty and not self._rows_for(b, col).empty
                if not col.card and not scored:
                    continue
                label = f"{a} - {b}"
                why = None
                if not scored:
                    missing = [m for m in (a, b) if self._rows_for(m, col).empty]
                    why = " and ".join(missing) + (" not scored" if all((m, col.benchmark) in self.rr.runs for m in missing) else " not run")
                else:
                    incomplete = [m for m in (a, b) if not bool(self._rows_for(m, col)["complete"].fillna(False).all())]
                    if incomplete:
                        why = " and ".join(incomplete) + ": incomplete run"
                results = []
                if why is None:
                    try:
                        if col.family == "geneval":
                            results = compare_geneval_runs(ra, rb, labels=(a, b), n_resamples=n_resamples, seed=seed,
                                                           scores_a=RunLayout(ra).scores(self._scorer_dir(a, col)),
                                                           scores_b=RunLayout(rb).scores(self._scorer_dir(b, col)))
                        else:
                            results = [compare_pickscore_runs(ra, rb, labels=(a, b), n_resamples=n_resamples, seed=seed)]
                    except RdmevalError as exc:
                        why = f"not comparable: {str(exc).splitlines()[0]}"
                if why is not None:
                    key = f"{a}-{b}/{col.key}/{col.category}"
                    keys.append(key)
                    labels.append(f"{label}: {col.label}")
                    cells[(key, "diff")] = Cell(status=UNAVAILABLE, why=why)
                    continue
                for r in results:
                    key = f"{a}-{b}/{col.key}/{r.category}"
                    is_task = r.metric == "accuracy"
                    unit = "%" if col.family == "geneval" else ""
                    dec = 1 if is_task else (2 if col.family == "geneval" else col.decimals)
                    keys.append(key)
                    labels.append(f"{label}: {col.label}" + (f" {r.category}" if r.category not in ("overall", "all") else ""))
                    cells[(key, "diff")] = Cell(
                        value=r.diff, ci_low=r.ci_low, ci_high=r.ci_high, n_prompts=r.n_prompts, unit=unit, decimals=dec,
                        run=f"{self._rel(Path(r.run_a))} vs {self._rel(Path(r.run_b))}",
                        extra={"mean_a": r.mean_a, "mean_b": r.mean_b, "prompts": f"{r.wins}/{r.losses}/{r.ties}",
                               "n_prompts": r.n_prompts, "level": r.level, "method": r.method},
                    )
        notes = [
            "A - B on the prompts both runs share: the difference of the reproduced values, with a paired percentile "
            f"bootstrap interval ({n_resamples} resamples, seed {seed}; prompts resampled together, GenEval within each task). "
            "An interval that excludes 0 means the difference is not resampling noise of the prompt set.",
            "prompts +/-/=: prompts where A scores higher / lower / the same (GenEval: correct images of 4).",
        ]
        return Section("paired", "Paired differences (same prompts)", "comparison", keys, labels, ["diff"], ["A - B [interval]"],
                       cells, notes, extra_fields=[("mean_a", "A"), ("mean_b", "B"), ("prompts", "prompts +/-/="),
                                                   ("n_prompts", "n prompts")])

    def _scorer_dir(self, model: str, col: ColumnSpec) -> str:
        return str(self._rows_for(model, col)["_scorer_dir"].iloc[0])

    def protocol(self) -> Section:
        settings = [
            ("prompt set", "prompt set"), ("definition", "prompt-set definition"), ("n_per_prompt", "images per prompt"),
            ("ctx_len", "ctx_len (text tokens the DiT sees)"), ("steps", "sampling steps"), ("precision", "precision"),
            ("seeds", "seeds"), ("rng_device", "RNG device"), ("resolution", "resolution"), ("scorer", "scorer"),
            ("scorer_settings", "scorer settings"), ("scorer_libs", "scorer libraries"), ("generation_libs", "generation libraries"),
            ("bootstrap", "intervals"),
        ]
        cols = [c for c in self.columns if any(not self._rows_for(m, c).empty for m in self.models)]
        cells = {}
        for key, _ in settings:
            for col in cols:
                per_model: dict[str, str] = {}
                for m in self.models:
                    rows = self._rows_for(m, col)
                    if rows.empty:
                        continue
                    hit = rows[rows["category"] == col.category]
                    per_model[m] = _setting(key, (hit if not hit.empty else rows).iloc[0])
                vals = [v for v in per_model.values() if v]
                if not vals:
                    text = "—"
                elif len(set(vals)) == 1 and len(vals) == len(per_model):
                    text = vals[0]
                else:
                    text = "; ".join(f"{m}: {v or '—'}" for m, v in per_model.items())
                cells[(key, col.key)] = Cell(status=TEXT, text=text)
        notes = ["Read from the protocol field of each result row (what the run manifests and scorers recorded). "
                 "A setting that differs between models is listed per model.",
                 "The card states no ctx_len, seeds or COCO-val definition for its numbers; rdmeval's choices are "
                 "those above (shared/docs/protocol.md)."]
        return Section("protocol", "Protocol", "setting", [k for k, _ in settings], [l for _, l in settings],
                       [c.key for c in cols], [c.label for c in cols], cells, notes)


def _loads(text: Any) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    try:
        v = json.loads(text) if isinstance(text, str) and text else {}
    except json.JSONDecodeError:
        return {}
    return v if isinstance(v, dict) else {}


def _find_key(d: Any, key: str) -> Any:
    """The first value of ``key`` in a nested dict (depth first)."""
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def _first(d: dict[str, Any], *names: str) -> Any:
    for n in names:
        if d.get(n) is not None:
            return d[n]
    return None


def _compact(d: Any, keys: Iterable[str] | None = None) -> str:
    if not isinstance(d, dict):
        return "" if d is None else str(d)
    items = [(k, d[k]) for k in (keys or d.keys()) if k in d and d[k] is not None]
    return ", ".join(f"{k} {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in items)


def _setting(key: str, row: pd.Series) -> str:
    """One protocol setting of one result row, as text ('' when the row does not record it)."""
    p = _loads(row.get("protocol"))
    model = p.get("model", {}) if isinstance(p.get("model"), dict) else {}
    if key == "prompt set":
        n = _int(row.get("n_prompts"))
        return f"{row.get('benchmark')} v{row.get('benchmark_version')}" + (f", {n:,} prompts" if n else "")
    if key == "definition":
        return str(row.get("benchmark_definition") or "")
    if key == "n_per_prompt":
        return str(p.get("n_per_prompt") or "")
    if key == "ctx_len":
        return str(_first(model, "ctx_len", "max_sequence_length") or p.get("ctx_len") or "")
    if key == "steps":
        return str(_first(model, "steps", "num_inference_steps", "num_steps") or p.get("steps") or "")
    if key == "precision":
        prec = _first(model, "precision", "dtype") or p.get("precision") or ""
        if isinstance(prec, dict):  # the klein regime: name first, then its parts
            name = prec.get("name", "")
            return (f"{name}: " if name else "") + ", ".join(f"{k} {v}" for k, v in prec.items() if k != "name")
        return str(prec)
    if key == "seeds":
        sp = p.get("seed_policy")
        return str(sp.get("formula") or sp.get("kind")) if isinstance(sp, dict) else str(sp or "")
    if key == "rng_device":
        return str(p.get("rng_device") or "")
    if key == "resolution":
        res = p.get("resolution")
        return f"{res[0]}x{res[1]}" if isinstance(res, list) and len(res) == 2 else str(res or "")
    if key == "scorer":
        return f"{row.get('scorer')} v{row.get('scorer_version')}"
    if key == "scorer_settings":
        g = p.get("geneval")
        if isinstance(g, dict):
            det = g.get("detector") or {}
            parts = [_compact(g.get("judge_options"))]
            if isinstance(det, dict) and det:
                parts.append(f"detector {det.get('detector', '?')}"
                             + "".join(f", {k} {det[k]}" for k in ("config", "config_builtin", "checkpoint", "mmdet", "mmcv") if k in det))
            return "; ".join(x for x in parts if x)
        s = p.get("scorer")
        if isinstance(s, dict):
            model_src = s.get("model") if isinstance(s.get("model"), dict) else {}
            return "; ".join(x for x in (
                f"model {_first(model_src, 'id', 'path') or '?'}" + (f"@{model_src['commit'][:10]}" if model_src.get("commit") else ""),
                f"dtype {s.get('dtype')}" if s.get("dtype") else "", str(s.get("text") or ""), str(s.get("images") or ""),
            ) if x)
        return ""
    if key == "scorer_libs":
        libs = _find_key(p, "scorer_versions")
        return _compact(libs) if isinstance(libs, dict) else ""
    if key == "generation_libs":
        v = _loads(row.get("versions"))
        return _compact(v, ("torch", "diffusers", "transformers")) if v else ""
    if key == "bootstrap":
        b = _find_key(p, "bootstrap")
        if isinstance(b, dict):
            lvl = b.get("level")
            return (f"{int(round(lvl * 100))}% " if isinstance(lvl, (int, float)) else "") + \
                f"percentile bootstrap, {b.get('n_resamples')} resamples, seed {b.get('seed')}, {b.get('resampling', 'prompts')}"
        return ""
    raise KeyError(key)


def build_table(
    run_root: str | Path | RunRoot,
    *,
    published: Published | None = None,
    models: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] = (("student", "teacher"),),
    n_resamples: int = 2000,
    seed: int = 0,
) -> ResultsTable:
    """The full table of a run root (see the module docstring).

    ``models``: the table's rows (default: teacher, naive, student, then any other model found);
    ``pairs``: the (A, B) model pairs of the paired section; ``n_resamples``/``seed``: its bootstrap.
    """
    rr = run_root if isinstance(run_root, RunRoot) else read_run_root(run_root)
    pub = published or load_published()
    b = _Builder(rr, pub, models)
    sections = [b.main(), *b.task_sections(), b.published_runs(), b.paired(pairs, n_resamples, seed), b.protocol()]
    return ResultsTable(run_root=str(rr.root), published_version=pub.version, sections=sections)


def table_models(rr: RunRoot, models: Sequence[str] | None = None) -> list[str]:
    """The table's model order for a run root: ``models`` if given, else the card's three, then any other."""
    if models:
        return list(models)
    found = dict.fromkeys(rr.rows["_model_key"].astype(str).tolist() + [k[0] for k in rr.runs])
    return list(CARD_MODELS) + sorted(m for m in found if m not in CARD_MODELS)
