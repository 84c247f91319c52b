"""A checkpoint sweep in the report: metric-vs-step charts with confidence bands, one per benchmark.

Each ``by-step:<benchmark>`` section of the table (:mod:`rdmeval.results.by_step`) becomes one chart
with a panel per column (every GenEval task and Overall, or the PickScore mean): the value at each
training step, the scorer's bootstrap interval as a band, a star on the best step (the cell flagged
``best``) and a dashed line at the declared step (``declared``). The charts are drawn from the saved
table alone, like the rest of the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdmeval.report.charts import _figure, _png
from rdmeval.report.html import Figure
from rdmeval.results.steps import label_step
from rdmeval.results.table import SHOWN, ResultsTable, Section, fmt_number

LINE = "#55A868"
BEST = "#E3B505"


@dataclass(frozen=True)
class StepPanel:
    """One column of a by-step section: values (fractions when ``unit`` is '%') and interval per step."""

    name: str
    steps: tuple[int, ...]
    values: tuple[float | None, ...]
    lows: tuple[float | None, ...]
    highs: tuple[float | None, ...]
    unit: str = ""
    best_step: int | None = None
    declared_step: int | None = None


def _array(xs: tuple[float | None, ...], scale: float) -> np.ndarray:
    return np.array([np.nan if x is None else scale * x for x in xs], dtype=float)


def step_chart(title: str, panels: list[StepPanel]) -> bytes:
    """PNG of one panel per metric: value vs step, interval band, best step and declared step marked."""
    ncols = min(4, max(len(panels), 1))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig = _figure(max(6.5, 3.1 * ncols + 0.4), 2.5 * nrows + 0.9 + (0.6 if ncols == 1 else 0.0))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, p in zip(axes, panels):
        scale = 100.0 if p.unit == "%" else 1.0
        x = np.array(p.steps, dtype=float)
        y, lo, hi = _array(p.values, scale), _array(p.lows, scale), _array(p.highs, scale)
        ax.fill_between(x, lo, hi, color=LINE, alpha=0.25, linewidth=0, label="interval")
        ax.plot(x, y, color=LINE, marker="o", markersize=3.5, linewidth=1.4, label="value")
        if p.declared_step is not None:
            ax.axvline(p.declared_step, color="#555555", linestyle="--", linewidth=1.0, label="declared step")
        if p.best_step is not None and p.best_step in p.steps:
            i = p.steps.index(p.best_step)
            ax.plot([x[i]], [y[i]], marker="*", markersize=13, color=BEST, markeredgecolor="black", linestyle="none",
                    label="best step")
        if p.unit == "%" and np.isfinite(y).any():  # accuracies: within [0, 100], at least 10 points tall
            top, bottom = np.nanmax(np.fmax(hi, y)), np.nanmin(np.fmin(lo, y))
            mid = (top + bottom) / 2
            half = max((top - bottom) / 2 + 3, 5)
            ax.set_ylim(max(0.0, mid - half), min(100.0, mid + half) + 3.0)
        ax.set_title(p.name.replace("_", " "), fontsize=9)
        ax.set_ylabel("%" if p.unit == "%" else "score", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax in axes[(nrows - 1) * ncols:]:
        ax.set_xlabel("training step", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


def panels_of(section: Section) -> list[StepPanel]:
    """The panels of a by-step section: one per column, steps from the row keys (``step_0000180``)."""
    steps = tuple(label_step(r) or 0 for r in section.row_keys)
    declared = next((label_step(r) for r in section.row_keys
                     if any(section.cells[(r, c)].extra.get("declared") for c in section.col_keys)), None)
    panels = []
    for col, name in zip(section.col_keys, section.col_labels):
        cells = [section.cells[(r, col)] for r in section.row_keys]
        shown = [c.status in SHOWN and c.value is not None for c in cells]
        best = next((label_step(r) for r, c in zip(section.row_keys, cells) if c.extra.get("best")), None)
        panels.append(StepPanel(
            name=name, steps=steps,
            values=tuple(c.value if ok else None for c, ok in zip(cells, shown)),
            lows=tuple(c.ci_low if ok else None for c, ok in zip(cells, shown)),
            highs=tuple(c.ci_high if ok else None for c, ok in zip(cells, shown)),
            unit=cells[0].unit if cells else "", best_step=best, declared_step=declared,
        ))
    return panels


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)


def step_figures(table: ResultsTable, dest: Path) -> list[Figure]:
    """The metric-vs-step charts of a sweep's table (none for other tables), written under ``dest/charts``."""
    figures = []
    for s in table.sections:
        if not s.key.startswith("by-step:"):
            continue
        panels = panels_of(s)
        if not any(v is not None for p in panels for v in p.values):
            continue
        bench = s.key.split(":", 1)[1]
        name = f"charts/by-step-{_slug(bench)}.png"
        (dest / name).write_bytes(step_chart(s.title, panels))
        bests = "; ".join(f"{p.name} step {p.best_step} ({fmt_number(p.values[p.steps.index(p.best_step)], 1 if p.unit == '%' else 3, p.unit)})"
                          for p in panels if p.best_step is not None)
        declared = panels[0].declared_step if panels else None
        figures.append(Figure(name, s.title, (
            f"{s.title}: each panel is one column of the table against the training step, the band the scorer's "
            "bootstrap interval over prompts; star: the best step (ties: the earliest)"
            + (f"; dashed line: the declared step {declared}" if declared is not None else "")
            + (f". Best: {bests}" if bests else "")
            + ". Choosing the step on these prompts is a selection on the test set: the selection table gives the "
            "size of the effect.")))
    return figures


def sweep_gallery_models(table: ResultsTable) -> list[str] | None:
    """A sweep report's gallery shows the declared step and each benchmark's best step (not every checkpoint);
    None for a table without by-step sections."""
    keep: set[str] = set()
    sections = [s for s in table.sections if s.key.startswith("by-step:")]
    for s in sections:
        last = s.col_keys[-1]  # GenEval Overall, or the PickScore mean
        keep |= {r for r in s.row_keys if s.cells[(r, last)].extra.get("best") or s.cells[(r, last)].extra.get("declared")}
    if not sections:
        return None
    rows = list(dict.fromkeys(r for s in sections for r in s.row_keys))
    return [r for r in rows if r in keep] or rows
