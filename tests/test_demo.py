"""``rdmeval demo`` runs every stage end to end, leaves its outputs where it says, prints no third-party
warning, and labels the stand-in detector's GenEval verdicts wherever they show.

The demo runs once per module, in a subprocess as a user runs it (no pytest warning capture, no
``-W`` flags), and every test reads that run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rdmeval.prompts.geneval import TAGS
from rdmeval.results.table import ResultsTable
from rdmeval.standin import STANDIN_NOTE

REPO = Path(__file__).resolve().parents[1]

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



@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``rdmeval demo`` run once in a subprocess (offline, its own cache, default warning filters)."""
    root = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "RDMEVAL_PROMPTS_PATH", "RDMEVAL_DEBUG")}
    env.update(RDMEVAL_CACHE=str(root / "cache"), RDMEVAL_OFFLINE="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, "-m", "rdmeval", "demo", "--out", str(root / "demo")],
                          capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "demo", proc


#: What third-party output looks like: a warning's "file:line: Category: message" and its source line,
#: a library's own log prefix, a tqdm bar.
THIRD_PARTY = re.compile(r"site-packages|dist-packages|\w+Warning\b|warnings\.warn|^\s*\[(transformers|diffusers)\]"
                         r"|\d+%\|.*\||it/s\]")


def test_demo_prints_no_third_party_warning(demo):
    _, proc = demo
    offending = [line for line in (proc.stdout + proc.stderr).splitlines() if THIRD_PARTY.search(line)]
    assert offending == [], "third-party output in the demo:\n" + "\n".join(offending)
    for line in proc.stderr.splitlines():  # what stderr holds: rdmeval's own status lines, each saying so
        assert line.startswith("rdmeval: "), line
    assert THIRD_PARTY.search("/x/site-packages/torch/functional.py:504: UserWarning: torch.meshgrid")  # the check bites
    assert THIRD_PARTY.search("Loading weights: 100%|██████████| 78/78 [00:00<00:00, 36804.56it/s]")


def test_demo_labels_the_stand_in_detector_wherever_geneval_shows(demo):
    out, proc = demo
    judged = [line for line in proc.stdout.splitlines() if "images judged" in line]
    scored = sorted((out / "runs").glob("*/*/scores/geneval/summary.json"))  # GenEval and the tiny held-out GenEval
    assert len(judged) == len(scored) >= 3 and all("stand-in detector with random weights" in line for line in judged)
    assert "stand-in detector with random weights" in proc.stdout.splitlines()[-1]
    table = ResultsTable.from_json((out / "table.json").read_text())
    geneval_sections = [s for s in table.sections if s.key != "protocol"]
    assert geneval_sections and all(s.notes[0] == STANDIN_NOTE for s in geneval_sections)
    assert STANDIN_NOTE not in table.section("protocol").notes
    html = (out / "report" / "index.html").read_text()
    gallery = html[html.index('<section id="galleries">'):]
    n_galleries = gallery.count('<section class="gallery"')
    assert n_galleries >= 1 and gallery.count('class="why standin"') == n_galleries  # each says it at its top
    assert f"Note: student, teacher: {STANDIN_NOTE}" in (out / "audit" / "report.md").read_text()


def test_demo_runs_every_stage(demo):
    out, proc = demo
    printed = proc.stdout
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
