"""``rdmeval demo`` runs every stage end to end and leaves its outputs where it says."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from rdmeval.cli.main import main
from rdmeval.prompts.geneval import TAGS
from rdmeval.results.table import ResultsTable

#: The demo's benchmarks by their column in the table's first section, and the models by a word of their row.
COLUMNS = {"GenEval": "geneval", "PickScore COCO-val": "coco-val", "PickScore Pick-a-Pic": "pickapic-test"}
MODELS = ("teacher", "naive", "student")


def md_section(markdown: str, title: str) -> tuple[list[str], list[list[str]]]:
    """The header and body rows of the first table under ``## title`` in a markdown document."""
    lines = markdown.split(f"## {title}\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))  # cells split at unescaped pipes
        block.append([re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", c).strip() for c in cells])  # CommonMark escapes
    return block[0], block[2:]  # block[1] is the |---| line


def printed_number(cell: str) -> tuple[float, int]:
    """The leading number of a printed cell and its decimals, e.g. '0.7083 [0.7, 0.7] (...)' -> (0.7083, 4)."""
    m = re.match(r"(-?\d+)(?:\.(\d+))?", cell)
    assert m, f"no number at the start of {cell!r}"
    return float(m.group(0)), len(m.group(2) or "")


def assert_printed(cell: str, value: float, what: str) -> None:
    """The printed number is ``value`` rounded to the decimals it shows (half a unit of its last digit)."""
    shown, decimals = printed_number(cell)
    assert abs(shown - value) <= 0.5 * 10.0**-decimals + 1e-12, f"{what}: table prints {cell!r}, recomputed {value}"


def geneval_from_results(run: Path) -> tuple[float, dict[str, float]]:
    """Overall and per-task accuracy recomputed from the official per-image rows (results.jsonl)."""
    rows = pd.read_json(run / "scores" / "geneval" / "results.jsonl", lines=True)
    tasks = rows.groupby("tag")["correct"].mean()
    return float(tasks.mean()), {tag: float(v) for tag, v in tasks.items()}


def pickscore_from_per_image(run: Path) -> float:
    """Mean over prompts of each prompt's mean PickScore, from the per-image scores."""
    rows = pd.read_parquet(run / "scores" / "pickscore" / "per_image.parquet")
    return float(rows.groupby("prompt_index")["pickscore"].mean().mean())


def assert_table_matches_per_image_files(table_md: str, runs: Path) -> None:
    header, body = md_section(table_md, "The model card's table")
    assert len(body) == len(MODELS)
    for row in body:
        model = next(m for m in MODELS if m in row[0])
        for column, bench in COLUMNS.items():
            cell = row[header.index(column)]
            run = runs / model / bench
            value = geneval_from_results(run)[0] if bench == "geneval" else pickscore_from_per_image(run)
            assert_printed(cell, value, f"{model} / {bench}")
    header, body = md_section(table_md, "GenEval: per task")
    scores = {model: geneval_from_results(runs / model / "geneval") for model in MODELS}
    tasks = {model: {**per_task, "overall": overall} for model, (overall, per_task) in scores.items()}
    assert sorted(row[0] for row in body) == sorted(tasks["student"])  # the six tasks and overall
    for row in body:
        for model in MODELS:
            assert_printed(row[header.index(model)], 100 * tasks[model][row[0]], f"{model} / {row[0]} (%)")


def assert_gap_section_matches_per_image_files(table_md: str, runs: Path) -> None:
    """The in-distribution gap section: each model's accuracies on both sets and the paired differences,
    recomputed from the per-image verdicts of the demo's GenEval and tiny held-out GenEval runs."""
    header, body = md_section(table_md, "In-distribution gap: GenEval vs held-out GenEval")
    acc = {(m, which): geneval_from_results(runs / m / bench)[1] for m in ("teacher", "student")
           for which, bench in (("GenEval", "geneval"), ("held-out", "geneval-heldout"))}
    held = sorted(acc[("teacher", "held-out")])
    assert held == sorted(["two_object", "counting", "colors", "position", "color_attr"])  # one prompt of each
    for which in ("GenEval", "held-out"):
        for m in ("teacher", "student"):
            acc[(m, which)]["overall"] = sum(acc[(m, which)][t] for t in held) / len(held)  # over the held-out tasks
    assert [row[0] for row in body] == ["single_object", *[t for t in TAGS if t in held], "overall"]
    for row in body:
        task = row[0]
        for which in ("GenEval", "held-out"):
            cell = row[header.index(f"student - teacher, {which}")]
            if task == "single_object" and which == "held-out":
                assert cell.startswith("not held out"), cell
                continue
            for m in ("teacher", "student"):
                assert_printed(row[header.index(f"{m}, {which}")], 100 * acc[(m, which)][task], f"{m} / {which} / {task}")
            assert_printed(cell, 100 * (acc[("student", which)][task] - acc[("teacher", which)][task]), f"diff {which} / {task}")


def test_demo_runs_every_stage(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("runs", "table.md", "report/index.html", "audit/report.md"):
        assert str((out / name).resolve()) in printed, name
        assert (out / name).exists(), name
    for model in ("teacher", "naive", "student"):
        for bench in ("geneval", "coco-val", "pickapic-test"):
            run = out / "runs" / model / bench
            manifest = json.loads((run / "manifest.json").read_text())
            assert manifest["complete"] is True
            assert manifest["request"]["model"]["preset"] == model
            scorer = "geneval" if bench == "geneval" else "pickscore"
            rows = pd.read_parquet(run / "scores" / scorer / "summary.parquet")
            assert len(rows) and rows["complete"].all()
    for model in ("teacher", "student"):  # the tiny held-out GenEval (geneval-heldout's smoke, paper-table's [smoke] also)
        run = out / "runs" / model / "geneval-heldout"
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["complete"] is True and manifest["request"]["prompt_set"]["name"] == "demo-geneval-heldout"
    assert not (out / "runs" / "naive" / "geneval-heldout").exists()
    assert json.loads((out / "runs" / "student" / "geneval" / "manifest.json").read_text())["request"]["model"]["weights"]
    table = (out / "table.md").read_text()
    # Every reproduced number of the table is what the per-image files the demo wrote give.
    assert_table_matches_per_image_files(table, out / "runs")
    assert_gap_section_matches_per_image_files(table, out / "runs")
    assert (out / "report" / "charts" / "heldout-gap.png").is_file()
    assert 'src="charts/heldout-gap.png"' in (out / "report" / "index.html").read_text()
    # the table is computed once: table.md and the report are renderings of the saved table.json
    saved = ResultsTable.from_json((out / "table.json").read_text())
    assert saved.render("md") == table
    assert ResultsTable.from_json((out / "report" / "table.json").read_text()) == saved
    assert (out / "audit" / "audit.json").exists()
