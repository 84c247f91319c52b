"""The report's charts (matplotlib, Agg canvas, no pyplot state): PNG bytes, written by the caller.

- :func:`task_chart`: GenEval accuracy per task (and Overall) for each model, bars with the scorers'
  bootstrap intervals, and the published figures as markers;
- :func:`pickscore_chart`: the per-image PickScore distribution of each model (histogram and
  violin), with each model's mean and published mean;
- :func:`heldout_chart`: the in-distribution gap, GenEval beside held-out GenEval per task and the
  paired differences with their intervals (numbers from the table's ``heldout`` section).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rdmeval.errors import require

MODEL_COLORS: dict[str, str] = {"teacher": "#4C72B0", "naive": "#DD8452", "student": "#55A868"}
_OTHER_COLORS = ("#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD")


def model_color(model: str, order: Sequence[str]) -> str:
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    others = [m for m in order if m not in MODEL_COLORS]
    return _OTHER_COLORS[others.index(model) % len(_OTHER_COLORS)] if model in others else _OTHER_COLORS[0]


def _figure(width: float, height: float):
    require("matplotlib", "report", "The report's charts")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


@dataclass(frozen=True)
class Bar:
    value: float | None  # None: no number (not run, incomplete ...): no bar drawn
    low: float | None = None
    high: float | None = None
    published: float | None = None


def task_chart(title: str, categories: Sequence[str], models: Sequence[str], bars: Mapping[tuple[str, str], Bar]) -> bytes:
    """Grouped bars: x = categories (tasks, then overall), one bar per model; values are fractions."""
    fig = _figure(max(6.0, 1.3 * len(categories) + 1.5), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(categories))
    published_drawn = False
    for i, m in enumerate(models):
        xs = x - 0.4 + width * (i + 0.5)
        vals = [bars[(c, m)].value if (c, m) in bars else None for c in categories]
        heights = [100.0 * v if v is not None else 0.0 for v in vals]
        color = model_color(m, models)
        ax.bar(xs, heights, width * 0.92, label=m, color=color)
        for xi, c in zip(xs, categories):
            b = bars.get((c, m))
            if b is None:
                continue
            if b.value is not None and b.low is not None and b.high is not None:
                ax.errorbar([xi], [100.0 * b.value], yerr=[[100.0 * (b.value - b.low)], [100.0 * (b.high - b.value)]],
                            fmt="none", ecolor="#222222", elinewidth=1.0, capsize=2.5)
            if b.value is None:
                ax.text(xi, 1.5, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="#777777")
            if b.published is not None:
                ax.plot([xi], [100.0 * b.published], marker="D", markersize=5, color="black", linestyle="none",
                        label=None if published_drawn else "published")
                published_drawn = True
    ax.set_xticks(x, [c.replace("_", " ") for c in categories])
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncols=min(len(models) + 1, 4), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    return _png(fig)


def pickscore_chart(title: str, models: Sequence[str], scores: Mapping[str, np.ndarray],
                    published: Mapping[str, float] | None = None) -> bytes:
    """Per-image PickScore of each model: overlaid histograms (left) and violins with means (right)."""
    published = published or {}
    shown = [m for m in models if m in scores and len(scores[m])]
    fig = _figure(9.0, 3.6)
    ax_h, ax_v = fig.subplots(1, 2, width_ratios=[1.3, 1.0])
    allv = np.concatenate([np.asarray(scores[m], dtype=float) for m in shown]) if shown else np.zeros(1)
    bins = np.linspace(float(allv.min()), float(allv.max()) + 1e-9, 31)
    for m in shown:
        v = np.asarray(scores[m], dtype=float)
        color = model_color(m, models)
        ax_h.hist(v, bins=bins, histtype="stepfilled", alpha=0.25, color=color)
        ax_h.hist(v, bins=bins, histtype="step", linewidth=1.4, color=color, label=f"{m} (mean {v.mean():.3f})")
        ax_h.axvline(v.mean(), color=color, linestyle="--", linewidth=1.0)
    ax_h.set_xlabel("PickScore per image")
    ax_h.set_ylabel("images")
    ax_h.legend(fontsize=8, frameon=False)
    ax_h.grid(alpha=0.3)
    if shown:
        data = [np.asarray(scores[m], dtype=float) for m in shown]
        if all(len(d) > 1 and np.ptp(d) > 0 for d in data):
            parts = ax_v.violinplot(data, showmeans=False, showextrema=False)
            for body, m in zip(parts["bodies"], shown):
                body.set_facecolor(model_color(m, models))
                body.set_alpha(0.45)
        else:
            for i, d in enumerate(data, start=1):
                ax_v.scatter(np.full(len(d), i), d, color=model_color(shown[i - 1], models), s=10)
        ax_v.boxplot(data, widths=0.12, showfliers=False)
        for i, (m, d) in enumerate(zip(shown, data), start=1):
            ax_v.plot([i], [d.mean()], marker="o", color="white", markeredgecolor="black", markersize=5)
            if m in published:
                ax_v.plot([i - 0.3, i + 0.3], [published[m]] * 2, color="black", linewidth=1.6)
        ax_v.set_xticks(range(1, len(shown) + 1), shown)
    ax_v.set_ylabel("PickScore")
    ax_v.grid(axis="y", alpha=0.3)
    if published:
        ax_v.set_title("o = mean; bar = published mean", fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _png(fig)


#: The two prompt sets of the in-distribution gap chart, and how each is drawn.
GAP_SETS: tuple[tuple[str, str], ...] = (("geneval", "GenEval"), ("heldout", "held-out"))


def heldout_chart(title: str, categories: Sequence[str], models: Sequence[str],
                  accuracy: Mapping[tuple[str, str, str], float | None],
                  differences: Mapping[tuple[str, str], Bar], diff_label: str = "student - teacher") -> bytes:
    """The in-distribution gap. Left: each model's accuracy per category on GenEval (solid) and held-out
    GenEval (hatched), ``accuracy[(category, model, set)]``. Right: the paired differences
    ``differences[(category, key)]`` for key ``geneval``, ``heldout`` and ``gap``, with their intervals,
    in percentage points. Values are fractions; None draws "n/a"."""
    fig = _figure(max(10.0, 1.5 * len(categories) + 2.0), 4.0)
    ax_a, ax_d = fig.subplots(1, 2, width_ratios=[1.25, 1.0])
    x = np.arange(len(categories))
    series = [(m, s, label) for m in models for s, label in GAP_SETS]
    width = 0.8 / max(len(series), 1)
    for i, (m, s, label) in enumerate(series):
        xs = x - 0.4 + width * (i + 0.5)
        vals = [accuracy.get((c, m, s)) for c in categories]
        held = s == "heldout"
        ax_a.bar(xs, [100.0 * v if v is not None else 0.0 for v in vals], width * 0.92, label=f"{m}, {label}",
                 color=model_color(m, models), alpha=0.55 if held else 1.0, hatch="///" if held else None,
                 edgecolor=model_color(m, models), linewidth=0.8)
        for xi, v in zip(xs, vals):
            if v is None:
                ax_a.text(xi, 1.5, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="#777777")
    ax_a.set_xticks(x, [c.replace("_", " ") for c in categories], fontsize=8)
    ax_a.set_ylim(0, 105)
    ax_a.set_ylabel("accuracy (%)")
    ax_a.set_title("accuracy: GenEval (solid) and held-out GenEval (hatched)", fontsize=9)
    ax_a.grid(axis="y", alpha=0.3)
    ax_a.legend(fontsize=7, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)

    keys = (("geneval", "GenEval", "o", "#4C4C4C"), ("heldout", "held-out", "s", "#9A9A9A"), ("gap", "gap", "D", "#C44E52"))
    for k, (key, label, marker, color) in enumerate(keys):
        labelled = False
        for xi, c in zip(x + (k - 1) * 0.22, categories):
            b = differences.get((c, key))
            if b is None or b.value is None:
                ax_d.text(xi, 0.0, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="#777777")
                continue
            err = None
            if b.low is not None and b.high is not None:
                err = [[100.0 * (b.value - b.low)], [100.0 * (b.high - b.value)]]
            ax_d.errorbar([xi], [100.0 * b.value], yerr=err, fmt=marker, color=color, ecolor=color, elinewidth=1.0,
                          capsize=2.5, markersize=5, label=None if labelled else label)
            labelled = True
    ax_d.axhline(0.0, color="black", linewidth=0.8)
    ax_d.set_xticks(x, [c.replace("_", " ") for c in categories], fontsize=8)
    ax_d.set_ylabel("percentage points")
    ax_d.set_title(f"{diff_label} on each set (paired), and gap = GenEval - held-out", fontsize=9)
    ax_d.grid(axis="y", alpha=0.3)
    ax_d.legend(fontsize=7, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    fig.suptitle(title, fontsize=11)
    return _png(fig)
