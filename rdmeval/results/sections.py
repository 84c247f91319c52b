"""The section builder: result rows of a run root + the published numbers -> the table's sections.

``build_table(run_root)`` reads the run root (:mod:`rdmeval.results.runroot`) and
``results/published.toml`` (:mod:`rdmeval.results.published`) and returns a
:class:`~rdmeval.results.table_model.ResultsTable` whose sections are described in
:mod:`rdmeval.results.table`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from rdmeval.bootstrap import N_RESAMPLES, SEED
from rdmeval.api.layout import RunLayout
from rdmeval.errors import RdmevalError
from rdmeval.prompts.geneval import TAGS
from rdmeval.provenance import shown_model
from rdmeval.results.columns import (
    CARD_COLUMNS,
    CARD_MODELS,
    FAMILY_CELL,
    FAMILY_LABELS,
    FULL_PROMPTS,
    MODEL_LABELS,
    ColumnSpec,
    scorer_family,
    table_models,
)
from rdmeval.results.by_step import by_step_sections
from rdmeval.results.heldout_section import heldout_section
from rdmeval.results.protocol_text import PROVENANCE_SETTINGS, _find_key, _setting
from rdmeval.results.published import Published, PublishedRun, PublishedValue, load_published
from rdmeval.results.runroot import RunRoot, read_run_root
from rdmeval.results.steps import is_step_label
from rdmeval.results.table_model import (
    INCOMPLETE,
    NO_ROW,
    NOT_RUN,
    NOT_SCORED,
    STANDIN,
    SUBSET,
    TEXT,
    UNAVAILABLE,
    Cell,
    ResultsTable,
    Section,
    _int,
    _num,
    fmt_number,
)
from rdmeval.specs import did_you_mean
from rdmeval.standin import STANDIN_NOTE, rows_have_standin


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
        if models:
            self._check_named(models)
        self._groups: dict[tuple[str, str, str], pd.DataFrame] = {}
        self._not_scored: dict[Path, tuple[str, int | None, int | None]] = {}
        self._manifests: dict[str, dict[str, Any]] = {}
        if not rows.empty:
            for key, group in rows.groupby(["_model_key", "_bench_key", "scorer"], sort=False, dropna=False):
                self._groups[tuple(str(k) for k in key)] = group
        self.columns = self._columns()

    def _check_named(self, models: Sequence[str]) -> None:
        """A named row that was neither run here nor published is a misspelling, not a "not run" row."""
        found = set(self.rows["_model_key"].astype(str)) | {m for m, _ in self.rr.runs}
        known = found | set(CARD_MODELS) | {v.model for v in self.pub.values}
        for m in models:
            if m not in known:
                here = ", ".join(sorted(found)) or "none"
                raise RdmevalError(f"--model {m}: no run of that name under {self.rr.root / 'runs'}/ and no published numbers "
                                   f"for it{did_you_mean(m, known)}; models run here: {here}")

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
        if not col.card or is_step_label(model):  # a sweep's checkpoint is not the released one the numbers are for
            return None
        return self.pub.get(self.preset(model), col.benchmark, category, metric, run=run)

    def unpublished(self, model: str) -> str | None:
        """Why a model's card cells have no published number (its preset names no published row), or None."""
        found = list(dict.fromkeys(v.model for v in self.pub.select(run=self.pub.primary.id)))
        known = [m for m in CARD_MODELS if m in found] + [m for m in found if m not in CARD_MODELS]  # the card's row order
        preset = self.preset(model)
        if preset in known:
            return None
        named = f"model {shown_model(preset)!r}" + (f" (folder {model!r})" if preset != model else "")  # no machine path
        return f"no published number for {named}; published rows: {', '.join(known)}"

    def manifest(self, run_dir: str) -> dict[str, Any]:
        """A run's manifest.json ({} when absent or unreadable: rows without a run directory)."""
        if run_dir not in self._manifests:
            try:
                self._manifests[run_dir] = json.loads((Path(run_dir) / "manifest.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                self._manifests[run_dir] = {}
        return self._manifests[run_dir]

    # ---- sections
    def main(self) -> Section:
        cells = {}
        unpublished: list[str] = []
        for m in self.models:
            why = self.unpublished(m)
            if why is not None:
                unpublished.append(why)
            for col in self.columns:
                cells[(m, col.key)] = self.cell(m, col, col.category, col.metric, "", col.decimals,
                                                self._published(m, col, col.category, col.metric))
                if why is not None and col.card:
                    cells[(m, col.key)].extra["published_why"] = why
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
        notes += unpublished  # why a row's published cells are empty
        return Section("main", "The model card's table", "model", list(self.models),
                       [MODEL_LABELS.get(m, m) for m in self.models], [c.key for c in self.columns],
                       [c.label for c in self.columns], cells, notes, published_label=self.pub.primary.id)

    def _level_text(self) -> str:
        levels = set()
        for p in self.rows.get("protocol", pd.Series(dtype=object)):  # dicts (rows.read_rows decodes them)
            lvl = _find_key(p, "level")
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
            run_labels = {r.id: r.label for r in self._other_runs()}
            cells = {}
            for t in tasks + ["overall"]:
                metric = "overall" if t == "overall" else "accuracy"
                for m in models:
                    # published figures only for models with published per-task figures (the student);
                    # the others' published Overall is in the main table
                    has_tasks = col.card and not is_step_label(m) and bool(self.pub.task_values(self.preset(m)))
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

    def _shows(self, v: PublishedValue) -> bool:
        """Published values of the card's models always; of other models (the one-step field) where the run root holds them."""
        return v.model in CARD_MODELS or v.model in {self.preset(m) for m in self.models}

    def _other_runs(self) -> list[PublishedRun]:
        return [r for r in self.pub.other_runs() if any(self._shows(v) for v in self.pub.select(run=r.id))]

    def published_runs(self) -> Section:
        keys, labels, cells = [], [], {}
        differs = []
        for run in self._other_runs():
            for v in self.pub.select(run=run.id):
                if not self._shows(v):
                    continue
                col = next(c for c in CARD_COLUMNS if c.benchmark == v.benchmark)
                model = next((m for m in self.models if self.preset(m) == v.model and not is_step_label(m)), v.model)
                percent = v.metric == "accuracy"
                c = self.cell(model, col, v.category, v.metric, "%" if percent else "", 1 if percent else col.decimals, v)
                if not v.same_weights or v.differs:
                    c.delta = None  # another checkpoint or another protocol: a difference would not test the reproduction
                key = "/".join(v.key)
                keys.append(key)
                what = col.label if v.category in ("overall", "all") else f"{col.label} {v.category}"
                labels.append(f"{run.label}: {v.model}, {what}" + (" (protocol differs)" if v.differs else ""))
                cells[(key, "value")] = c
                differs += [f"{run.label}, {v.model}: protocol differs: {v.differs}."] if v.differs else []
        notes = [f"{r.label}: {r.description}" + (f" Protocol: {r.protocol}." if r.protocol else "") + f" Source: {r.source}"
                 for r in self._other_runs()]
        notes += differs
        notes.append("Δ = reproduced - that run's published value; none where the published run used other weights "
                     "(the paper's Table-2 student is a COCO-only checkpoint, not the released s180)"
                     + (" or another protocol (flagged)." if differs else "."))
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
            ("bootstrap", "intervals"), *PROVENANCE_SETTINGS,
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
                    row = (hit if not hit.empty else rows).iloc[0]
                    per_model[m] = _setting(key, row, self.manifest(str(row["_run_dir"])))
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
                 "Provenance (weights, base pipeline, git commit, command) comes from each run's manifest.json; "
                 "files are named, not located (sha256 prefixes identify them).",
                 "The card states no ctx_len, seeds or COCO-val definition for its numbers; rdmeval's choices are "
                 "those above (docs/protocol.md)."]
        return Section("protocol", "Protocol", "setting", [k for k, _ in settings], [l for _, l in settings],
                       [c.key for c in cols], [c.label for c in cols], cells, notes)


def build_table(
    run_root: str | Path | RunRoot,
    *,
    published: Published | None = None,
    models: Sequence[str] | None = None,
    pairs: Sequence[tuple[str, str]] = (("student", "teacher"),),
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> ResultsTable:
    """The full table of a run root (see the module docstring).

    ``models``: the table's rows (default: teacher, naive, student, then any other model found);
    ``pairs``: the (A, B) model pairs of the paired section; ``n_resamples``/``seed``: its bootstrap.
    """
    rr = run_root if isinstance(run_root, RunRoot) else read_run_root(run_root)
    pub = published or load_published()
    b = _Builder(rr, pub, models)
    by_step = by_step_sections(rr, n_resamples=n_resamples, seed=seed)  # a checkpoint sweep's root only
    held = {m for m, _ in rr.runs} | set(rr.rows["_model_key"].astype(str))
    if by_step:  # a sweep has no teacher: only the pairs of models it holds
        pairs = [p for p in pairs if set(p) <= held]
    paired = [b.paired(pairs, n_resamples, seed)] if pairs or not by_step else []
    # the released checkpoint's other published runs mean nothing to a sweep of one's own checkpoints
    published_runs = [b.published_runs()] if not by_step or set(CARD_MODELS) & held else []
    sections = [b.main(), *b.task_sections(), *by_step, *published_runs, *paired, b.protocol()]
    heldout = heldout_section(rr, *pairs[0], n_resamples, seed) if pairs else None  # only with held-out runs
    if heldout is not None:
        sections.insert(-1, heldout)
    if "protocol" in rr.rows and rows_have_standin(rr.rows["protocol"]):  # a smoke run: say it where GenEval shows
        for s in sections[:-1]:
            s.notes.insert(0, STANDIN_NOTE)
    # the run root by its folder name: a table cites no path of the machine that made it
    return ResultsTable(run_root=rr.root.resolve().name, published_version=pub.version, sections=sections)
