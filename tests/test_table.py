"""The table: published numbers, cells rebuilt from result rows, missing cells explained, paired
differences, and every renderer read back.

Two run roots:

- a *smoke* root made by the real pipeline (built by tests/_runroot.py, which test_report.py shares):
  the dummy generator on the demo sets for three models, GenEval scored by the real scorer with a
  stub detector and color classifier (whose verdicts follow a per-model success rate), PickScore
  scored by the real scorer on the tiny offline CLIP;
- a *card* root of hand-written result rows on the card's benchmarks (also in tests/_runroot.py),
  covering every kind of cell (complete, subset, incomplete, generated but not scored, not run, a
  second run of a preset).
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rdmeval.cli.main import main
from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import TAGS
from rdmeval.api.rows import write_rows
from rdmeval.results.paired import paired_geneval, read_geneval_images
from rdmeval.results.paper import paper_view, value_text
from rdmeval.results.published import (
    BENCHMARKS,
    PublishedFileError,
    load_published,
    parse_published,
    published_path,
    task_mean,
)
from rdmeval.results.table import (
    CARD_MODELS,
    INCOMPLETE,
    NOT_RUN,
    NOT_SCORED,
    OK,
    STANDIN,
    SUBSET,
    ResultsTable,
    build_table,
    latex_escape,
)

from _runroot import (  # shared with test_report.py
    STUDENT_TASKS,
    card_rows,
    make_card_root,
    make_suite_layout_root,
    shared_smoke_root,
)


# ----------------------------------------------------------------------------- the smoke run root (tests/_runroot.py)


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory) -> Path:
    return shared_smoke_root(tmp_path_factory)


# ----------------------------------------------------------------------------- the card run root


@pytest.fixture(scope="module")
def card_root(tmp_path_factory) -> Path:
    return make_card_root(tmp_path_factory.mktemp("card"))


# ----------------------------------------------------------------------------- published numbers


def test_published_file_has_every_card_cell_with_a_source():
    pub = load_published()
    assert pub.primary.id == "card"
    for model in CARD_MODELS:
        for bench in BENCHMARKS:
            metric = ("overall", "overall") if bench == "geneval" else ("all", "pickscore_mean")
            value = pub.get(model, bench, *metric)
            assert value is not None, (model, bench)
            assert value.source.strip()
    assert set(pub.task_values("student")) == set(TAGS)
    assert {r.id for r in pub.other_runs()} == {"authors-rerun", "paper-table2", "sana-sprint"}
    assert all(v.source for v in pub.values)


def test_card_geneval_overall_is_the_mean_of_its_per_task_figures():
    pub = load_published()
    tasks = pub.task_values("student")
    assert len(tasks) == 6
    overall = pub.get("student", "geneval", "overall", "overall")
    mean = task_mean(tasks.values())
    assert f"{mean:.4f}" == overall.text  # (99.4 + 92.4 + 92.3 + 75.6 + 70.8 + 65.0) / 6 = 0.82583...
    assert abs(mean - overall.value) < 0.5e-4
    # the authors' re-run prints its overall to 3 decimals
    rerun = pub.task_values("student", run="authors-rerun")
    assert f"{task_mean(rerun.values()):.3f}" == pub.get("student", "geneval", "overall", "overall", run="authors-rerun").text


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["runs"]["card"].pop("source"), "'source' is required"),
        (lambda d: d["values"][9].update(value=0.95), "disagree"),  # text "99.4" vs 0.95
        (lambda d: d["values"][6].update(value=82.58), "fractions in [0, 1]"),
        (lambda d: d["values"].append(dict(d["values"][1])), "duplicates entry"),
        (lambda d: d["values"][1].update(run="nowhere"), "has no [runs.nowhere]"),
        (lambda d: d["runs"]["authors-rerun"].update(primary=True), "exactly one run"),
        (lambda d: d["values"][0].update(approx=False), "set approx = true"),
        (lambda d: d["values"][1].update(benchmark="imagenet"), "benchmark 'imagenet'"),
        (lambda d: d["values"][1].update(colour="red"), "values[1]: unknown key 'colour'"),
    ],
)
def test_published_file_errors_name_the_entry_and_field(mutate, message):
    data = tomllib.loads(published_path().read_text())
    bad = copy.deepcopy(data)
    mutate(bad)
    with pytest.raises(PublishedFileError, match=re.escape(message)):
        parse_published(bad, "published.toml")
    parse_published(data)  # the untouched document is valid


# ----------------------------------------------------------------------------- the card root: every kind of cell


def test_card_cells_reproduced_published_delta_and_why(card_root):
    pub = load_published()
    t = build_table(card_root, n_resamples=100)
    main_ = t.section("main")
    assert main_.row_keys == ["teacher", "naive", "student", "student-ctx48"]

    student = main_.cell("student", "geneval")
    overall = float(np.mean(list(STUDENT_TASKS.values())))
    card = pub.get("student", "geneval", "overall", "overall").value
    assert student.status == OK and student.value == pytest.approx(overall)
    assert student.published == card and student.delta == pytest.approx(overall - card)
    assert student.shown() == f"{overall:.4f} [{overall - 0.02:.4f}, {overall + 0.02:.4f}]"
    assert student.shown_delta() == f"{overall - card:+.4f}"

    naive = main_.cell("naive", "geneval")
    assert naive.status == INCOMPLETE and naive.why == "incomplete run: 2,100/2,212 images"
    assert naive.shown() == naive.why and naive.delta is None and naive.shown_published() == "~0.42"

    teacher = main_.cell("teacher", "geneval")
    assert teacher.status == SUBSET and "subset: 100 of 553 prompts" in teacher.shown() and teacher.delta is None

    assert main_.cell("teacher", "pickapic-test").status == NOT_RUN
    assert main_.cell("teacher", "pickapic-test").shown() == "not run"
    not_scored = main_.cell("naive", "pickapic-test")
    assert not_scored.status == NOT_SCORED and not_scored.why == "incomplete run: 0/2 images, not scored"
    assert main_.cell("naive", "coco-val").shown() == "not run"

    # a second run of the student preset under another folder is compared with the student's published number
    ctx = main_.cell("student-ctx48", "pickapic-test")
    assert ctx.value == 21.2 and ctx.delta == pytest.approx(21.2 - pub.get("student", "pickapic-test", "all", "pickscore_mean").value)

    md = t.to_markdown()
    for why in ("incomplete run: 2,100/2,212 images", "not run", "incomplete run: 0/2 images, not scored", "subset: 100 of 553 prompts"):
        assert why in md


def test_card_per_task_table_against_the_card_and_the_rerun(card_root):
    pub = load_published()
    tasks = build_table(card_root, n_resamples=100).section("tasks:geneval")
    assert tasks.row_keys == ["single_object", "two_object", "colors", "counting", "color_attr", "position", "overall"]
    assert tasks.col_keys == list(CARD_MODELS)
    for tag, value in STUDENT_TASKS.items():
        c = tasks.cell(tag, "student")
        card = pub.get("student", "geneval", tag, "accuracy")
        assert c.shown().startswith(f"{100 * value:.1f} [")
        assert c.published_text == card.text and c.delta == pytest.approx(value - card.value)
        assert c.others["authors-rerun"] == pub.get("student", "geneval", tag, "accuracy", run="authors-rerun").text
        assert tasks.cell(tag, "teacher").published is None  # no per-task figures for the teacher
    assert tasks.cell("overall", "student").published_text == "82.58"
    assert "student: card" in tasks.header() and "student: authors' local re-run" in tasks.header()


def test_other_published_runs_and_protocol(card_root):
    t = build_table(card_root, n_resamples=100)
    runs = t.section("published-runs")
    rerun = runs.cell("authors-rerun/student/pickapic-test/all/pickscore_mean", "value")
    assert rerun.value == 21.9 and rerun.published == 21.83 and rerun.delta == pytest.approx(21.9 - 21.83)
    table2 = runs.cell("paper-table2/teacher/geneval/overall/overall", "value")
    assert table2.status == SUBSET and table2.published_text == "0.794"
    # the paper's Table-2 student is another checkpoint (COCO-only recipe): shown, never differenced
    other = runs.cell("paper-table2/student/pickapic-test/all/pickscore_mean", "value")
    assert other.published == 21.69 and other.value is not None and other.delta is None and other.shown_delta() == "—"

    proto = t.section("protocol")
    assert proto.cell("ctx_len", "geneval").text == "48"
    assert proto.cell("ctx_len", "pickapic-test").text == "232"
    assert proto.cell("steps", "geneval").text == "teacher: 4; naive: 1; student: 1"
    assert proto.cell("rng_device", "coco-val").text == "cuda"
    assert proto.cell("definition", "coco-val").text == "coco-val as defined for the test"
    assert proto.cell("bootstrap", "geneval").text.startswith("95% percentile bootstrap, 1000 resamples")


# ----------------------------------------------------------------------------- the smoke root: real scorer outputs


def test_smoke_table_from_real_scorer_rows(smoke_root):
    t = build_table(smoke_root, n_resamples=300)
    main_ = t.section("main")
    # the card's benchmarks were not run: every card cell says so, next to the published value
    for m in CARD_MODELS:
        for col in ("geneval", "coco-val", "pickapic-test"):
            assert main_.cell(m, col).status == NOT_RUN and main_.cell(m, col).published is not None
    assert "demo-geneval:geneval-mmdet" in main_.col_keys and "demo-captions:pickscore" in main_.col_keys
    for m in CARD_MODELS:
        run = smoke_root / "runs" / m / "demo-geneval" / "scores" / "geneval"
        per_image = pd.read_parquet(run / "per_image.parquet")
        expected = per_image.groupby("tag")["correct"].mean().mean()  # GenEval's Overall, from the per-image rows
        cell = main_.cell(m, "demo-geneval:geneval-mmdet")
        assert cell.status == OK and cell.value == pytest.approx(expected) and cell.published is None
        tasks = t.section("tasks:demo-geneval:geneval-mmdet")
        for tag, acc in per_image.groupby("tag")["correct"].mean().items():
            assert tasks.cell(tag, m).value == pytest.approx(acc)
    proto = t.section("protocol")
    assert proto.cell("rng_device", "demo-geneval:geneval-mmdet").text == "cpu"
    assert proto.cell("resolution", "demo-geneval:geneval-mmdet").text == "64x64"
    assert "threshold 0.3" in proto.cell("scorer_settings", "demo-geneval:geneval-mmdet").text


def test_paired_differences_match_the_per_prompt_files(smoke_root):
    t = build_table(smoke_root, n_resamples=500)
    paired = t.section("paired")
    # GenEval: the paired point estimate is the difference of the two runs' Overall
    g = paired.cell("student-teacher/demo-geneval:geneval-mmdet/overall", "diff")
    s_img = pd.read_parquet(smoke_root / "runs/student/demo-geneval/scores/geneval/per_image.parquet")
    t_img = pd.read_parquet(smoke_root / "runs/teacher/demo-geneval/scores/geneval/per_image.parquet")
    expected = s_img.groupby("tag")["correct"].mean().mean() - t_img.groupby("tag")["correct"].mean().mean()
    assert g.value == pytest.approx(expected) and g.ci_low <= g.value <= g.ci_high
    # PickScore: the mean over prompts of the per-prompt differences
    p = paired.cell("student-teacher/demo-captions:pickscore/all", "diff")
    a = pd.read_parquet(smoke_root / "runs/student/demo-captions/scores/pickscore/per_prompt.parquet").set_index("prompt_index")
    b = pd.read_parquet(smoke_root / "runs/teacher/demo-captions/scores/pickscore/per_prompt.parquet").set_index("prompt_index")
    assert p.value == pytest.approx((a["pickscore"] - b["pickscore"]).mean())
    assert p.extra["n_prompts"] == len(a)
    # the card's benchmarks: no runs, so no comparison, and the row says why
    assert paired.cell("student-teacher/geneval/overall", "diff").shown() == "student and teacher not run"


def test_suite_folders_with_stand_in_prompt_sets(smoke_root, tmp_path):
    root = make_suite_layout_root(smoke_root, tmp_path / "suite")
    t = build_table(root, n_resamples=100)
    main_ = t.section("main")
    assert main_.col_keys == ["geneval", "coco-val", "pickapic-test"]  # no extra columns
    demo = pd.read_parquet(smoke_root / "runs/student/demo-captions/scores/pickscore/summary.parquet")
    for col in ("coco-val", "pickapic-test"):
        c = main_.cell("student", col)
        assert c.status == STANDIN and c.value == pytest.approx(demo["value"].iloc[0])
        assert c.delta is None and c.shown().endswith(f"(on demo-captions, not {col})") and c.published is not None
    assert main_.cell("naive", "geneval").shown().endswith("(on demo-geneval, not geneval)")
    paired = t.section("paired")
    assert paired.cell("student-teacher/pickapic-test/all", "diff").status == OK
    assert paired.cell("student-teacher/geneval/overall", "diff").status == OK
    assert t.section("protocol").cell("prompt set", "coco-val").text == "demo-captions v1, 4 prompts"


def test_paired_geneval_bootstrap():
    def frame(hits: dict[int, int], tags: dict[int, str]) -> pd.DataFrame:
        rows = [{"prompt_index": i, "tag": tags[i], "prompt": f"p{i}", "correct": j < hits[i]} for i in hits for j in range(4)]
        return pd.DataFrame(rows)

    tags = {0: "a", 1: "a", 2: "b", 3: "b", 4: "b"}
    a = frame({0: 4, 1: 2, 2: 1, 3: 3, 4: 0}, tags)
    b = frame({0: 3, 1: 2, 2: 1, 3: 1, 4: 0}, tags)
    res = {r.category: r for r in paired_geneval(a, b, n_resamples=400, seed=1)}
    assert res["a"].diff == pytest.approx(6 / 8 - 5 / 8) and res["b"].diff == pytest.approx(4 / 12 - 2 / 12)
    assert res["overall"].diff == pytest.approx((1 / 8 + 2 / 12) / 2)
    assert (res["overall"].wins, res["overall"].losses, res["overall"].ties) == (2, 0, 3)
    # A never does worse on any prompt, so no resample can give a negative difference
    assert res["overall"].ci_low >= 0 and res["overall"].ci_high <= max(1 / 4, 2 / 4)
    same = {r.category: r for r in paired_geneval(a, a, n_resamples=50)}
    assert same["overall"].diff == 0 and same["overall"].ci_low == 0 and same["overall"].ci_high == 0
    with pytest.raises(RdmevalError, match="different prompts"):
        paired_geneval(a, b[b["prompt_index"] != 4])


def test_official_results_jsonl_is_read_like_per_image_parquet(smoke_root, tmp_path):
    scores = smoke_root / "runs" / "student" / "demo-geneval" / "scores" / "geneval"
    only_jsonl = tmp_path / "geneval"
    only_jsonl.mkdir()
    (only_jsonl / "results.jsonl").write_text((scores / "results.jsonl").read_text())
    a = read_geneval_images(scores).sort_values(["prompt_index", "sample_index"]).reset_index(drop=True)
    b = read_geneval_images(only_jsonl).sort_values(["prompt_index", "sample_index"]).reset_index(drop=True)
    for col in ("prompt_index", "sample_index", "tag", "correct", "reason", "image"):
        assert a[col].tolist() == b[col].tolist(), col
    assert [json.loads(x) for x in a["details"]] == [json.loads(x) for x in b["details"]]


# ----------------------------------------------------------------------------- renderers: every format reads back


def _md_unescape(text: str) -> str:
    """CommonMark backslash escapes: a backslash before ASCII punctuation stands for that character."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


def _md_tables(text: str) -> dict[str, list[list[str]]]:
    tables, title = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            title = _md_unescape(line[3:])
        elif line.startswith("|") and not line.startswith("|---"):
            cells = [_md_unescape(c.strip()) for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            tables.setdefault(title, []).append(cells)
    return tables


_UNLATEX = [(r"$\Delta$", "Δ"), (r"$\pm$", "±"), (r"$\approx$", "≈"), (r"$\sim$", "~"), (r"$\times$", "×"), (r"$\cdot$", "·"), ("---", "—"),
            (r"\&", "&"), (r"\%", "%"), (r"\$", "$"), (r"\#", "#"), (r"\_", "_"), (r"\{", "{"), (r"\}", "}"),
            (r"\textasciicircum{}", "^"), (r"\textbackslash{}", "\\")]


def _latex_tables(text: str) -> dict[str, list[list[str]]]:
    tables, title, inside = {}, None, False
    for line in text.splitlines():
        if line.startswith("\\caption{"):
            title = line[len("\\caption{") : -1]
        elif line == "\\toprule":
            inside = True
        elif line == "\\bottomrule":
            inside = False
        elif inside and line != "\\midrule":
            cells = [c.strip() for c in line.removesuffix(" \\\\").split(" & ")]
            for old, new in _UNLATEX:
                cells = [c.replace(old, new) for c in cells]
            tables.setdefault(title, []).append(cells)
    for old, new in _UNLATEX:
        tables = {k.replace(old, new): v for k, v in tables.items()}
    return tables


@pytest.mark.parametrize("root_name", ["smoke_root", "card_root"])
def test_every_format_round_trips(root_name, request):
    t = build_table(request.getfixturevalue(root_name), n_resamples=200)
    assert ResultsTable.from_json(t.to_json()) == t
    assert ResultsTable.from_csv(t.to_csv()) == t
    md, tex = _md_tables(t.to_markdown()), _latex_tables(t.to_latex())
    for s in t.sections:
        if not s.row_keys:
            continue
        assert md[s.title] == [s.header(), *s.body()], s.key
        assert tex[s.title] == [s.header(), *s.body()], s.key
    # the printed numbers are the row values at the printed precision (an independent look at formatting)
    main_ = t.section("main")
    printed = {row[0]: row[1:] for row in md[main_.title][1:]}
    for m, label in zip(main_.row_keys, main_.row_labels):
        for c in main_.col_keys:
            cell = main_.cell(m, c)
            if cell.status == OK:
                shown = next(x for x in printed[label] if x.split(" [")[0] == f"{cell.value:.{cell.decimals}f}")
                lo, hi = (float(v) for v in shown.split(" [")[1].rstrip("]").split(", "))
                assert lo == pytest.approx(cell.ci_low, abs=0.51 * 10 ** -cell.decimals)
                assert hi == pytest.approx(cell.ci_high, abs=0.51 * 10 ** -cell.decimals)


def test_markdown_prints_user_text_literally(card_root, tmp_path):
    """A model folder, benchmark-free text from users, with Markdown's special characters: the table
    cell a Markdown parser reads is the name itself (no emphasis, no HTML, no extra table cells)."""
    import shutil

    import markdown_it
    root = tmp_path / "root"
    shutil.copytree(card_root / "runs", root / "runs")
    name = "my|*bold*_x_ <b>model<b> [a](x.y) ~~no~~ &amp; `c` \\"  # a folder name: no "/"
    write_rows(card_rows("student", "pickapic-test", "pickscore", {("all", "pickscore_mean"): 21.5}, n=499, n_prompts=499),
               root / "runs" / name / "pickapic-test" / "scores" / "pickscore" / "summary.parquet")
    t = build_table(root, n_resamples=50)
    main_ = t.section("main")
    assert name in main_.row_labels
    text = t.to_markdown()
    assert "<b>" not in text and "*bold*" not in text and "[a](" not in text and "~~no" not in text

    tokens = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text)
    assert not [tok for tok in tokens if tok.type in ("html_block", "html_inline")]
    rows, row, title, in_heading = {}, None, None, False
    for tok in tokens:
        if tok.type == "heading_open" and tok.tag == "h2":
            in_heading = True
        elif tok.type == "inline" and in_heading:
            title, in_heading = tok.content, False
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "inline" and row is not None:
            assert all(c.type in ("text", "softbreak") for c in tok.children or []), (tok.content, [c.type for c in tok.children])
            row.append("".join(c.content for c in tok.children or []))
        elif tok.type == "tr_close":
            rows.setdefault(title, []).append(row)
            row = None
    parsed = next(v for k, v in rows.items() if k.startswith("The model card"))
    assert parsed == [main_.header(), *main_.body()]  # every cell, the odd name included, reads as itself


def test_cli_table_writes_every_format(smoke_root, tmp_path, capsys):
    for fmt in ("md", "csv", "latex", "json"):
        out = tmp_path / f"table.{fmt}"
        assert main(["table", str(smoke_root), "--format", fmt, "--out", str(out), "--n-resamples", "200"]) == 0
        assert out.stat().st_size > 0
    assert ResultsTable.from_json((tmp_path / "table.json").read_text()) == build_table(smoke_root, n_resamples=200)
    assert main(["table", str(smoke_root), "--n-resamples", "200"]) == 0
    assert "## The model card's table" in capsys.readouterr().out


def test_cli_table_errors_are_clear(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 2
    assert "has no runs/ folder" in capsys.readouterr().err
    (tmp_path / "runs").mkdir()
    assert main(["table", str(tmp_path)]) == 2
    assert "no run directories" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["table", str(tmp_path), "--pair", "student"])
    assert main(["table", str(tmp_path), "--model", "student", "--model", "teacher", "--model", "student"]) == 2
    assert "--model student is given twice" in capsys.readouterr().err  # not two rows of one model
    with pytest.raises(RdmevalError, match="not an rdmeval table CSV"):
        ResultsTable.from_csv("a,b\n1,2\n")


def test_cli_table_refuses_a_model_neither_run_nor_published(smoke_root, capsys):
    assert main(["table", str(smoke_root), "--model", "studnet", "--n-resamples", "200"]) == 2
    err = capsys.readouterr().err
    assert "--model studnet" in err and "did you mean 'student'" in err and "models run here:" in err
    assert f"under {smoke_root / 'runs'}/ and" in err
    # a model with published numbers is a row even where it was not run here: its numbers beside "not run"
    assert "flux1-schnell" not in {p.parent.name for p in (smoke_root / "runs").glob("*/*")}
    assert main(["table", str(smoke_root), "--model", "student", "--model", "flux1-schnell", "--format", "csv",
                 "--n-resamples", "200"]) == 0
    assert "flux1-schnell" in capsys.readouterr().out


def test_cli_table_model_error_names_the_runs_folder_of_a_relative_root(smoke_root, capsys, monkeypatch):
    monkeypatch.chdir(smoke_root)  # RUN_ROOT '.': its folder name is '', which made the message say 'under /runs/'
    assert main(["table", ".", "--model", "studnet", "--n-resamples", "200"]) == 2
    err = capsys.readouterr().err
    assert "no run of that name under runs/ and" in err and "/runs/" not in err, err


# ----------------------------------------------------------------------------- the paper style


def _split_marks(text: str) -> tuple[str, str]:
    """A printed paper cell -> (its text, its footnote letters): superscript letters are marks."""
    from rdmeval.results.table_render import _SUPERSCRIPT

    letters = {v: k for k, v in _SUPERSCRIPT.items()}
    i = len(text)
    while i > 0 and text[i - 1] in letters:
        i -= 1
    return text[:i], "".join(letters[ch] for ch in text[i:])


def _md_footnotes(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("* "):
            mark, note = line[2:].split(" ", 1)
            out[_split_marks(mark)[1]] = _md_unescape(note)
    return out


def test_paper_table_prints_one_number_per_cell_from_the_rows(card_root):
    pub = load_published()
    t = build_table(card_root, n_resamples=50)
    md = t.render("md", style="paper")
    table = _md_tables(md)["The model card's table"]
    header = [_split_marks(h)[0] for h in table[0]]
    assert header == ["Model", "GenEval", "card", "Δ", "PickScore COCO-val", "card", "Δ", "PickScore Pick-a-Pic", "card", "Δ"]
    rows = {r[0]: [_split_marks(c) for c in r[1:]] for r in table[1:]}
    notes = _md_footnotes(md)

    # the student: every card column reproduced on the card's prompts -> value ± half-width, card, delta
    student = rows["1-step RDM student (s180)"]
    overall = float(np.mean(list(STUDENT_TASKS.values())))  # what the rows hold (card_rows' values, ci ± 0.02 / 0.1)
    card = pub.get("student", "geneval", "overall", "overall")
    assert student[0:3] == [(f"{overall:.4f} ± 0.0200", ""), (card.text, ""), (f"{overall - card.value:+.4f}", "")]
    pick = pub.get("student", "pickapic-test", "all", "pickscore_mean")
    assert student[6:9] == [("21.900 ± 0.100", ""), (pick.text, ""), (f"{21.9 - pick.value:+.3f}", "")]
    # the teacher's GenEval is a 100-prompt subset: its number, a footnote, no delta
    teacher = rows["4-step FLUX.2 klein teacher"]
    assert teacher[0][0] == f"{overall - 0.03:.4f} ± 0.0200" and teacher[2] == ("—", "")
    assert notes[teacher[0][1]] == "subset: 100 of 553 prompts: no Δ to the published value"
    # cells without a number: a dash and the reason, printed once below the table
    naive = rows["naive klein @ 1 step (no distillation)"]
    assert naive[0][0] == "—" and notes[naive[0][1]] == "incomplete run: 2,100/2,212 images"
    assert naive[1] == ("~0.42", "")
    assert notes[teacher[6][1]] == "not run" and md.count("not run") == 1
    # every mark has one footnote and every footnote is used
    used = {m for r in rows.values() for _, marks in r for m in marks}
    assert used == set(notes) and len(notes) == len(set(notes.values()))

    for ci, shown in (("interval", f"{overall:.4f} [{overall - 0.02:.4f}, {overall + 0.02:.4f}]"), ("none", f"{overall:.4f}")):
        other = _md_tables(t.render("md", style="paper", ci=ci))["The model card's table"]
        assert next(r for r in other if r[0].startswith("1-step"))[1] == shown


def test_paper_tasks_columns_and_footnotes_instead_of_repeated_reasons(card_root, smoke_root, tmp_path):
    t = build_table(card_root, n_resamples=50)
    table = _md_tables(t.render("md", style="paper", tasks=True))["The model card's table"]
    header = [_split_marks(h)[0] for h in table[0]]
    assert header[1:5] == ["GenEval", "card", "Δ", "single obj."]
    student = next(r for r in table if r[0].startswith("1-step"))
    for tag, label in (("single_object", "single obj."), ("position", "position"), ("color_attr", "color attr.")):
        assert student[header.index(label)] == f"{100 * STUDENT_TASKS[tag]:.1f} ± 2.0"

    # the suite layout: demo sets stand in for the card's; the reason is one footnote per column, not in every cell
    root = make_suite_layout_root(smoke_root, tmp_path / "suite")
    t = build_table(root, n_resamples=50)
    full, paper = t.render("md"), t.render("md", style="paper")
    assert full.count("(on demo-geneval, not geneval)") >= 3  # in every cell of the main table (and more sections)
    assert paper.count("on demo-geneval, not geneval") == 1
    table = _md_tables(paper)["The model card's table"]
    geneval, mark = _split_marks(table[0][1])
    assert geneval == "GenEval" and _md_footnotes(paper)[mark] == (
        "reproduced on demo-geneval, not geneval (a stand-in prompt set): no Δ to the published value")
    assert "Δ" not in [_split_marks(h)[0] for h in table[0]]  # no reproduction on the card's prompts: no delta column
    main_ = t.section("main")
    for row in table[1:]:
        m = main_.row_keys[main_.row_labels.index(row[0])]
        assert row[1] == value_text(main_.cell(m, "geneval"), "pm") and _split_marks(row[1])[1] == ""


def test_paper_latex_escapes_names_and_explains_an_empty_card_column(card_root, tmp_path):
    import shutil

    root = tmp_path / "root"
    shutil.copytree(card_root / "runs", root / "runs")
    name, preset = "my_model 50% & #1 {x} ~y ^z \\ $", "odd&_preset"  # a folder name and a preset no published row has
    write_rows(card_rows(preset, "pickapic-test", "pickscore", {("all", "pickscore_mean"): 21.5}, n=499, n_prompts=499),
               root / "runs" / name / "pickapic-test" / "scores" / "pickscore" / "summary.parquet")
    t = build_table(root, n_resamples=50)
    why = f"no published number for model {preset!r} (folder {name!r}); published rows: teacher, naive, student"
    assert why in t.section("main").notes  # the full view says it too
    assert t.section("main").cell(name, "pickapic-test").extra["published_why"] == why

    paper = paper_view(t)
    tex = t.render("latex", style="paper")
    assert "\\textsuperscript" in tex and "% run root: root;" in tex
    body = _latex_tables(re.sub(r"\\textsuperscript\{[a-z,]+\}", "", tex))["The model card's table"]
    assert body == [paper.header(), *[[label, *(c.text for c in cells)] for label, cells in paper.rows]]
    # the odd model's published cells carry the reason, printed once under the table
    label, cells = next((lbl, cs) for lbl, cs in paper.rows if lbl == name)
    marks = {m for c, col in zip(cells, paper.columns) if col.kind == "published" for m in c.marks}
    assert len(marks) == 1 and dict(paper.footnotes)[marks.pop()] == why
    assert f"~{latex_escape(why)}\\par" in tex
    assert cells[[c.key for c in paper.columns].index("pickapic-test")].text == "21.500 ± 0.020"


def test_cli_table_styles(card_root, tmp_path, capsys):
    t = build_table(card_root, n_resamples=50)
    common = [str(card_root), "--n-resamples", "50"]
    for extra, expected in (([], t.render("md", style="paper")), (["--style", "full"], t.to_markdown()),
                            (["--format", "latex"], t.render("latex", style="paper")),
                            (["--format", "latex", "--style", "full"], t.to_latex()),
                            (["--ci", "none", "--tasks"], t.render("md", style="paper", ci="none", tasks=True)),
                            (["--format", "json"], t.to_json()), (["--format", "csv"], t.to_csv())):
        assert main(["table", *common, *extra]) == 0
        assert capsys.readouterr().out == expected, extra
    assert main(["table", *common, "--format", "csv", "--style", "paper"]) == 2
    assert "--style paper is for --format md or latex" in capsys.readouterr().err
    assert main(["table", *common, "--style", "full", "--ci", "interval"]) == 2
    assert "--ci and --tasks shape the paper table" in capsys.readouterr().err


def test_paper_notes_keep_the_stand_in_warning_and_one_interval_note(card_root):
    """The paper view says once how its cells show the interval (not also the full table's "[interval]" note), and
    keeps the warning that GenEval came from the stand-in detector (build_table puts it first in every section)."""
    from rdmeval.standin import STANDIN_NOTE

    t = build_table(card_root, n_resamples=50)
    for ci in ("pm", "interval", "none"):
        notes = paper_view(t, ci=ci).notes
        assert [n for n in notes if n.startswith("Reproduced value")] == [notes[0]], notes
    t.section("main").notes.insert(0, STANDIN_NOTE)  # as build_table does for rows scored by the stand-in detector
    notes = paper_view(t).notes
    assert notes[0] == STANDIN_NOTE and notes[1].startswith("Reproduced value ±") and notes.count(STANDIN_NOTE) == 1
    assert STANDIN_NOTE in t.render("md", style="paper").replace("\\", "")
