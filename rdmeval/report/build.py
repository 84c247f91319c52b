"""``build_report(run_root, out)``: the static HTML report of a run root, written atomically.

The report folder holds ``index.html``, ``report.css``, ``report.js``, ``charts/*.png``, the
gallery's thumbnails under ``img/`` and the table in every format (``table.md/.csv/.json/.tex``, and
the paper style's ``table-paper.md/.tex``).
All links are relative, so the folder can be copied anywhere and opened offline.

It is built in a temporary sibling folder and moved into place at the end, so ``out`` holds
either the previous report or the new one, never a half-written one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from rdmeval import __version__
from rdmeval.bootstrap import N_RESAMPLES, SEED
from rdmeval.errors import RdmevalError
from rdmeval.api.layout import RunLayout
from rdmeval.report.charts import GAP_SETS, Bar, heldout_chart, pickscore_chart, task_chart
from rdmeval.report.gallery import collect_galleries, write_thumbnails
from rdmeval.report.html import CSS, JS, Figure, page
from rdmeval.report.paper_html import PAPER_CSS, PAPER_TABLES
from rdmeval.report.step_charts import step_figures, sweep_gallery_models
from rdmeval.results.heldout_section import SECTION_KEY as HELDOUT_SECTION, section_models
from rdmeval.results.saved import TABLE_JSON, load_saved_table, rows_newer_than_saved, saved_table_path
from rdmeval.results.table import SHOWN, ResultsTable, RunRoot, build_table, read_run_root, scorer_family
from rdmeval.standin import STANDIN_NOTE

MARKER = ".rdmeval-report"
DEFAULT_THUMB = 256


@dataclass
class ReportResult:
    out: Path
    n_figures: int
    n_prompts: int
    n_images: int
    seconds: float
    table_source: str = ""  # where the table came from (the saved table.json, or computed and why)
    gallery: bool = True  # False with --no-gallery

    def line(self) -> str:
        shown = f"gallery of {self.n_prompts} prompts ({self.n_images} images)" if self.gallery else "no gallery (--no-gallery)"
        return (f"wrote {self.out / 'index.html'}: {self.n_figures} charts, {shown} [{self.seconds:.1f}s]"
                + (f"; table {self.table_source}" if self.table_source else ""))


def _task_figures(table: ResultsTable, dest: Path) -> list[Figure]:
    figures = []
    main = table.section("main")
    for s in table.sections:
        if not s.key.startswith("tasks:"):
            continue
        main_col = s.key.split(":", 1)[1]
        bars = {}
        for (row, col), c in s.cells.items():
            value = c.value if c.status in SHOWN else None
            published = c.published
            if published is None and row == "overall" and (col, main_col) in main.cells:
                published = main.cells[(col, main_col)].published  # e.g. the teacher's published Overall
            bars[(row, col)] = Bar(value, c.ci_low if value is not None else None, c.ci_high if value is not None else None, published)
        if all(b.value is None for b in bars.values()):
            continue
        name = f"charts/tasks-{_slug(s.key.split(':', 1)[1])}.png"
        (dest / name).write_bytes(task_chart(s.title, s.row_keys, s.col_keys, bars))
        missing = [f"{m}: {s.cells[('overall', m)].shown()}" for m in s.col_keys if s.cells[("overall", m)].value is None
                   or s.cells[("overall", m)].status not in SHOWN]
        figures.append(Figure(name, s.title, "Accuracy per task (%), error bars: the scorer's bootstrap interval; "
                              "diamonds: published figures." + (" No bar: " + "; ".join(missing) if missing else "")
                              + (f" {STANDIN_NOTE}" if STANDIN_NOTE in s.notes else "")))
    return figures


def _heldout_figures(table: ResultsTable, dest: Path) -> list[Figure]:
    """The in-distribution gap chart, drawn from the table's ``heldout`` section (its numbers are
    ``rdmeval.results.heldout_gap``'s); none when the run root has no held-out runs."""
    s = next((s for s in table.sections if s.key == HELDOUT_SECTION and s.row_keys), None)
    if s is None:
        return []
    student, teacher = section_models(s)

    def value(row: str, col: str) -> float | None:
        c = s.cells[(row, col)]
        return c.value if c.status in SHOWN else None

    accuracy = {(r, m, which): value(r, f"{role}_{which}") for r in s.row_keys
                for m, role in ((teacher, "teacher"), (student, "student")) for which, _ in GAP_SETS}
    differences = {}
    for r in s.row_keys:
        for key in ("geneval", "heldout", "gap"):
            c = s.cells[(r, key if key == "gap" else f"diff_{key}")]
            v = value(r, key if key == "gap" else f"diff_{key}")
            differences[(r, key)] = Bar(v, c.ci_low if v is not None else None, c.ci_high if v is not None else None)
    name = "charts/heldout-gap.png"
    (dest / name).write_bytes(heldout_chart(s.title, s.row_keys, [teacher, student], accuracy, differences,
                                            diff_label=f"{student} - {teacher}"))
    not_held = [r for r in s.row_keys if differences[(r, "gap")].value is None]
    caption = (f"Left: accuracy per task (%) of {teacher} and {student} on GenEval (solid) and on held-out GenEval "
               "(hatched); Overall is the mean over the held-out tasks, not GenEval's six-task Overall. Right: "
               f"{student} - {teacher} on each set (paired) and the gap = GenEval difference - held-out difference, "
               "in percentage points, with the bootstrap intervals of the table's In-distribution gap section."
               + (f" Not held out (GenEval only): {', '.join(not_held)}." if not_held else ""))
    return [Figure(name, s.title, caption)]


def _pickscore_figures(rr: RunRoot, table: ResultsTable, models: Sequence[str], dest: Path) -> list[Figure]:
    if rr.rows.empty:
        return []
    rows = rr.rows[[scorer_family(s) == "pickscore" for s in rr.rows["scorer"]]]
    main = table.section("main")
    figures = []
    for bench in sorted(set(rows["_bench_key"].astype(str))):
        scores: dict[str, np.ndarray] = {}
        prompt_sets = sorted(set(rows.loc[rows["_bench_key"] == bench, "benchmark"].astype(str)))
        for m in models:
            r = rows[(rows["_bench_key"] == bench) & (rows["_model_key"] == m)]
            if r.empty:
                continue
            path = RunLayout(r["_run_dir"].iloc[0]).per_image(str(r["_scorer_dir"].iloc[0]))
            if path.is_file():
                df = pd.read_parquet(path, columns=["pickscore"])
                scores[m] = df["pickscore"].to_numpy(dtype=float)
        if not scores:
            continue
        col = next((k for k in main.col_keys if k == bench or k.startswith(f"{bench}:")), None)
        published = {}
        if col is not None:
            for m in models:
                c = main.cells.get((m, col))
                if c is not None and c.published is not None:
                    published[m] = c.published
        name = f"charts/pickscore-{_slug(bench)}.png"
        on = bench if prompt_sets == [bench] else f"{bench} ({', '.join(prompt_sets)} prompts)"
        (dest / name).write_bytes(pickscore_chart(f"PickScore on {on}: per-image distribution", models, scores, published))
        figures.append(Figure(name, f"PickScore {on}", f"PickScore of every image on {on}, per model "
                              f"({', '.join(f'{m}: {len(v)} images' for m, v in scores.items())}); the reported number is the mean over prompts."))
    return figures


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)


def _prepare_target(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise RdmevalError(f"--out {out} is a file; give a folder for the report")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise RdmevalError(f"--out {out} is a non-empty folder that is not an rdmeval report; choose a new or empty folder")


def _swap_into_place(tmp: Path, out: Path) -> None:
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{int(time.time())}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_report(
    run_root: str | Path,
    out: str | Path,
    *,
    thumb_size: int = DEFAULT_THUMB,
    max_prompts: int | None = None,
    gallery: bool = True,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    title: str = "rdmeval report",
    workers: int = 4,
    recompute: bool = False,
) -> ReportResult:
    """Write the report of ``run_root`` to the folder ``out`` (replacing a previous report there).

    The table is the one ``rdmeval reproduce`` saved (``run_root/table.json``), so the report shows
    exactly that table; it is computed from the result rows instead (with ``n_resamples`` and
    ``seed`` for the paired section) when ``recompute`` is set or no table was saved.
    """
    t0 = time.time()
    if not isinstance(thumb_size, int) or not 32 <= thumb_size <= 1024:
        raise RdmevalError(f"--thumb-size must be an integer in 32..1024 (pixels), got {thumb_size!r}")
    if max_prompts is not None and max_prompts < 1:
        raise RdmevalError(f"--max-prompts must be >= 1, got {max_prompts}")
    out = Path(out)
    _prepare_target(out)
    rr = read_run_root(run_root)
    table, table_source = _table(rr, recompute, n_resamples, seed)
    models = list(table.section("main").row_keys)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "charts").mkdir()
        figures = (step_figures(table, tmp) + _task_figures(table, tmp) + _heldout_figures(table, tmp)
                   + _pickscore_figures(rr, table, models, tmp))
        shown = sweep_gallery_models(table) or models  # a sweep's gallery: the declared and the best steps
        galleries = collect_galleries(rr, shown, max_prompts=max_prompts) if gallery else []
        n_images = write_thumbnails(galleries, tmp, thumb_size, workers=workers) if galleries else 0
        for fmt, name in (("md", "table.md"), ("csv", "table.csv"), ("json", "table.json"), ("latex", "table.tex")):
            (tmp / name).write_text(table.render(fmt), encoding="utf-8")
        for name, fmt in PAPER_TABLES:  # the card's table as a paper prints it
            (tmp / name).write_text(table.render(fmt, style="paper"), encoding="utf-8")
        (tmp / "report.css").write_text(CSS + PAPER_CSS, encoding="utf-8")
        (tmp / "report.js").write_text(JS, encoding="utf-8")
        generated = time.strftime("%Y-%m-%d %H:%M:%S %z")
        html = page(table, figures, galleries, title=title, generated=generated, version=__version__,
                    thumb_size=thumb_size, models=shown,
                    gallery_note="" if gallery else "Gallery left out (--no-gallery).")
        (tmp / "index.html").write_text(html, encoding="utf-8")
        (tmp / MARKER).write_text(json.dumps({"rdmeval": __version__, "run_root": rr.root.resolve().name, "generated": generated}) + "\n")
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
        _swap_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    n_prompts = sum(len(g.prompts) for g in galleries)
    return ReportResult(out, len(figures), n_prompts, n_images, time.time() - t0, table_source, gallery=gallery)


def _table(rr: RunRoot, recompute: bool, n_resamples: int, seed: int) -> tuple[ResultsTable, str]:
    """The report's table and a note saying where it came from."""
    saved = None if recompute else load_saved_table(rr.root)
    if saved is None:
        why = "--recompute" if recompute else f"no {TABLE_JSON} in {rr.root} (`rdmeval reproduce` saves one)"
        return build_table(rr, n_resamples=n_resamples, seed=seed), f"computed from the result rows ({why})"
    note = f"read from {saved_table_path(rr.root)}"
    newer = rows_newer_than_saved(rr.rows, rr.root)
    if newer:
        note += f"; WARNING: {newer} result rows are newer than it (rescored?), pass --recompute to rebuild the table"
    return saved, note
