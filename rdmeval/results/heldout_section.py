"""The table's ``heldout`` section: GenEval and held-out GenEval side by side, and the gap.

It appears only when a run root holds GenEval verdicts of both models on ``geneval`` and on
``geneval-heldout`` (``find_heldout_runs``); a run root without held-out runs gets the same table
as before. The numbers are :func:`rdmeval.results.heldout_gap.heldout_gap` (docs/heldout.md).
"""

from __future__ import annotations

from pathlib import Path

from rdmeval.api.layout import RunLayout
from rdmeval.results.heldout_gap import GapRow, heldout_gap
from rdmeval.results.paired import read_geneval_images
from rdmeval.results.runroot import RunRoot
from rdmeval.results.table_model import UNAVAILABLE, Cell, Section

HELDOUT_SET = "geneval-heldout"
SECTION_KEY = "heldout"
COLUMNS: tuple[tuple[str, str], ...] = (
    ("teacher_geneval", "teacher, GenEval"),
    ("student_geneval", "student, GenEval"),
    ("diff_geneval", "student - teacher, GenEval"),
    ("teacher_heldout", "teacher, held-out"),
    ("student_heldout", "student, held-out"),
    ("diff_heldout", "student - teacher, held-out"),
    ("gap", "gap (GenEval - held-out)"),
)


def find_heldout_runs(rr: RunRoot, student: str, teacher: str) -> dict[tuple[str, str], Path] | None:
    """``{(model, "geneval" | "heldout"): scores folder}`` when both models were scored by GenEval on
    both sets (prompt set ``geneval`` and ``geneval-heldout``, or else the run root's benchmarks of
    those names, as in a smoke run where demo sets stand in), else None."""
    found = _find(rr, student, teacher)
    return None if found is None else found[0]


def _find(rr: RunRoot, student: str, teacher: str) -> tuple[dict[tuple[str, str], Path], list[str]] | None:
    """``find_heldout_runs`` and the stand-ins used (``"demo-geneval for geneval"``)."""
    if rr.rows.empty:
        return None
    found: dict[tuple[str, str], Path] = {}
    stand_ins: dict[str, None] = {}
    geneval = rr.rows[rr.rows["scorer"].astype(str).str.startswith("geneval")]
    for model in (student, teacher):
        mine = geneval[geneval["_model_key"] == model]
        for which, prompt_set in (("geneval", "geneval"), ("heldout", HELDOUT_SET)):
            hit = mine[mine["benchmark"] == prompt_set]
            if hit.empty:
                hit = mine[mine["_bench_key"] == prompt_set]
                if not hit.empty:
                    stand_ins[f"{hit['benchmark'].iloc[0]} for {prompt_set}"] = None
            if hit.empty:
                return None
            found[(model, which)] = RunLayout(Path(hit["_run_dir"].iloc[0])).scores(str(hit["_scorer_dir"].iloc[0]))
    return found, list(stand_ins)


def _cell(value: float | None, ci: tuple[float, float] | None, n_prompts: int, decimals: int) -> Cell:
    if value is None:
        return Cell(status=UNAVAILABLE, why="not held out (every structure of the task is in GenEval)")
    lo, hi = ci if ci is not None else (None, None)
    return Cell(value=value, ci_low=lo, ci_high=hi, n_prompts=n_prompts, unit="%", decimals=decimals)


def section_from_rows(rows: list[GapRow], student: str = "student", teacher: str = "teacher") -> Section:
    cells: dict[tuple[str, str], Cell] = {}
    for r in rows:
        dec = 2 if r.category == "overall" else 1
        ng, nh = r.n_prompts_geneval, r.n_prompts_heldout
        values = {
            "teacher_geneval": (r.teacher_geneval, None, ng), "student_geneval": (r.student_geneval, None, ng),
            "diff_geneval": (r.diff_geneval, r.diff_geneval_ci, ng),
            "teacher_heldout": (r.teacher_heldout, None, nh), "student_heldout": (r.student_heldout, None, nh),
            "diff_heldout": (r.diff_heldout, r.diff_heldout_ci, nh), "gap": (r.gap, r.gap_ci, ng + nh),
        }
        for key, (value, ci, n) in values.items():
            cells[(r.category, key)] = _cell(value, ci, n, dec)
    first = rows[0]
    labels = [c[1].replace("student", student).replace("teacher", teacher) for c in COLUMNS]
    notes = [
        "Accuracies in %, per task (correct images / images) and Overall = unweighted mean over the tasks held out "
        f"({rows[-1].note.split('(')[-1].rstrip(')')}); this Overall is not GenEval's six-task Overall.",
        f"Intervals: {int(round(first.level * 100))}% percentile bootstrap over prompts ({first.n_resamples} resamples, "
        f"seed {first.seed}), within each task; the models are paired within a set, the two sets resampled independently.",
        "gap = (student - teacher on GenEval) - (student - teacher on held-out GenEval). The held-out prompts share "
        "GenEval's templates: held-out instantiations, not a new distribution (docs/heldout.md).",
    ]
    if any(not r.held_out for r in rows):
        notes.append("single_object is not held out: GenEval already uses all 80 objects (GenEval columns only).")
    return Section(SECTION_KEY, "In-distribution gap: GenEval vs held-out GenEval", "task",
                   [r.category for r in rows], [r.category for r in rows], [c[0] for c in COLUMNS], labels, cells, notes)


def section_models(section: Section) -> tuple[str, str]:
    """(student, teacher) of a ``heldout`` section, read back from its column labels."""
    label = dict(zip(section.col_keys, section.col_labels))
    suffix = ", " + COLUMNS[0][1].split(", ", 1)[1]  # ", GenEval"
    return label["student_geneval"].removesuffix(suffix), label["teacher_geneval"].removesuffix(suffix)


def heldout_section(rr: RunRoot, student: str, teacher: str, n_resamples: int, seed: int) -> Section | None:
    """The section for a run root, or None when it lacks a held-out comparison."""
    found = _find(rr, student, teacher)
    if found is None:
        return None
    runs, stand_ins = found
    images = {k: read_geneval_images(v) for k, v in runs.items()}
    rows = heldout_gap(images[(teacher, "geneval")], images[(student, "geneval")], images[(teacher, "heldout")],
                       images[(student, "heldout")], n_resamples=n_resamples, seed=seed)
    section = section_from_rows(rows, student, teacher)
    if stand_ins:
        section.notes.append(f"Prompt sets standing in (a smoke run): {'; '.join(stand_ins)}.")
    return section
