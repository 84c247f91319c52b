"""``rdmeval sweep``: a series of student checkpoints on a suite's benchmarks -> the table by step.

The sweep is ``rdmeval reproduce`` for one model whose weights change: each checkpoint
(:mod:`rdmeval.sweep.checkpoints`) is generated into ``OUT/runs/step_XXXXXXX/<benchmark>/`` with the
benchmark's protocol, every run is scored, then the table (with its ``by-step`` and ``selection``
sections, :mod:`rdmeval.results.by_step`) and the report are written.

- One pipeline load: the student generator is built once, with the first checkpoint that has work
  left; every later checkpoint is copied into its DiT in place (``swap_weights``) and every benchmark's
  text length set without reloading (``set_ctx_len``).
- Resumable: a (step, benchmark) run whose manifest is complete, for the same checkpoint file
  (sha256) and the same protocol, is skipped without loading anything; a partial run resumes
  (``generate_run``); a scored run is not scored again. The run store's one-writer locks apply.
- ``OUT/sweep.json`` records the series (the union over re-runs), the declared step, the suite and
  the settings every run shares; a re-run with other settings is refused (use another ``--out``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rdmeval.api import Benchmark, RunLayout
from rdmeval.errors import RdmevalError, RunStoreError
from rdmeval.generation import generate_run
from rdmeval.generators.noise import default_rng_device
from rdmeval.generators.registry import GeneratorOptions, build_generator
from rdmeval.io import sha256_file
from rdmeval.preflight import Preflight, check_base, check_out_folder, check_prompt_set, check_weights, scorer_inputs
from rdmeval.prompts import load_prompt_set
from rdmeval.prompts.schema import PromptSet
from rdmeval.reproduce import ReproduceOptions, _free_memory, check_named_inputs, run_dir, scorer_options
from rdmeval.results.by_step import SWEEP_RECORD, SweepRecord, read_sweep_record, save_sweep_record
from rdmeval.scorers.registry import SCORERS
from rdmeval.store import RunStore, diff_requests
from rdmeval.store.resume import resume_blockers
from rdmeval.suites import Suite
from rdmeval.sweep.checkpoints import Checkpoint, Series, find_checkpoints
from rdmeval.specs import did_you_mean

#: The generator every checkpoint runs as (the 1-step student preset).
PRESET = "student"
#: The settings every run of a sweep shares (recorded in sweep.json; a re-run must keep them).
SHARED_SETTINGS: tuple[str, ...] = ("base", "precision", "resolution", "rng_device", "batch_size", "limit", "smoke")


@runtime_checkable
class SwappableGenerator(Protocol):
    """A generator that takes another checkpoint and another text length in place."""

    def swap_weights(self, weights: str | os.PathLike[str]) -> None: ...

    def set_ctx_len(self, ctx_len: int) -> None: ...


@dataclass
class SweepOptions:
    weights: str  # --weights DIR_OR_GLOB
    run: ReproduceOptions  # out, base, device, precision, scorer settings ... as `rdmeval reproduce`
    subset: tuple[str, ...] | None = None  # benchmark names; None: the suite's sweep_subset (or all); ("all",): all
    declared_step: int | None = None  # None: the recorded one, else the last checkpoint
    report: bool = True


@dataclass
class SweepResult:
    out: Path
    checkpoints: list[Checkpoint]
    benchmarks: list[str]
    declared_step: int
    generated: int = 0  # (step, benchmark) runs that made images
    skipped: list[str] = field(default_factory=list)  # runs found complete and left as they are
    table: Path | None = None


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _log(msg: str) -> None:
    if _rank() == 0:
        print(f"[sweep] {msg}", flush=True)


def select_benchmarks(suite: Suite, subset: tuple[str, ...] | None) -> tuple[Benchmark, ...]:
    """The benchmarks to sweep: ``subset`` by name, ``("all",)`` for every one, None for the suite's
    ``sweep_subset`` (every benchmark when the suite declares none)."""
    by_name = {b.name: b for b in suite.benchmarks}
    if subset is None:
        subset = suite.sweep_subset or tuple(by_name)
    if tuple(subset) == ("all",):
        subset = tuple(by_name)
    unknown = [n for n in subset if n not in by_name]
    if unknown:
        raise RdmevalError(f"--subset {','.join(subset)}: suite {suite.name} has no benchmark {unknown[0]!r}"
                           f"{did_you_mean(unknown[0], by_name)}; its benchmarks: {', '.join(by_name)} (or 'all')")
    return tuple(by_name[n] for n in dict.fromkeys(subset))


def _settings(opts: ReproduceOptions) -> dict[str, Any]:
    return {k: getattr(opts, k) for k in SHARED_SETTINGS}


def _record(out: Path, series: Series, suite: Suite, benches: tuple[Benchmark, ...], opts: SweepOptions) -> SweepRecord:
    """The sweep record after this run: the union of the series, the declared step, the shared settings."""
    old = read_sweep_record(out)
    settings = _settings(opts.run)
    if old is not None:
        changed = [k for k in SHARED_SETTINGS if k in old.settings and old.settings[k] != settings[k]]
        if changed:
            listed = "; ".join(f"{k}: {old.settings[k]!r} -> {settings[k]!r}" for k in changed)
            raise RdmevalError(f"--out {out} holds a sweep made with other settings ({listed}); re-run with the same "
                               f"settings, or use another --out ({out / SWEEP_RECORD} records them)")
    checkpoints = dict(old.checkpoints) if old is not None else {}
    checkpoints.update({ck.step: str(ck.path) for ck in series.checkpoints})
    declared = opts.declared_step
    if declared is None:
        declared = old.declared_step if old is not None and old.declared_step in checkpoints else max(checkpoints)
    if declared not in checkpoints:
        raise RdmevalError(f"--declared-step {declared}: not a step of the sweep ({', '.join(map(str, sorted(checkpoints)))})")
    names = list(dict.fromkeys((old.benchmarks if old is not None else []) + [b.name for b in benches]))
    return SweepRecord(checkpoints=checkpoints, declared_step=declared, suite=suite.describe(), benchmarks=names,
                       settings=settings)


def sweep_preflight(series: Series, benches: tuple[Benchmark, ...], opts: SweepOptions, suite: Suite | None = None) -> Preflight:
    """Every input of the sweep (checkpoint files, base pipeline, prompt sets, scorers), before any model loads;
    with ``suite``, each ``--prompts-file BENCHMARK=`` must name one of its benchmarks."""
    run = opts.run
    if suite is not None:
        check_named_inputs(suite, run, [], [b.name for b in suite.benchmarks])
    pf = Preflight("rdmeval sweep")
    for ck in series.checkpoints:
        pf.add(f"checkpoint step {ck.step}", check_weights(str(ck.path)))
    pf.add("base pipeline", check_base(run.base))
    for bench in benches:
        name = run.prompt_overrides.get(bench.name, bench.prompts)
        pf.add(f"prompts of {bench.name}", check_prompt_set(
            name, run.prompts_files.get(bench.name), what=f"prompt set {name!r} (benchmark {bench.name})",
            flag=f"--prompts-file {bench.name}=PATH"))
    scorer_inputs(pf, {s for b in benches for s in b.scorers}, scorer_options(run).settings)
    pf.add("output folder", check_out_folder(run.out))
    return pf


def _prompt_set(bench: Benchmark, run: ReproduceOptions) -> PromptSet:
    name = run.prompt_overrides.get(bench.name, bench.prompts)
    return load_prompt_set(name, path=run.prompts_files.get(bench.name), **(bench.params if name == bench.prompts else {}))


def _finished(out: Path, ck: Checkpoint, bench: Benchmark, ps: PromptSet, run: ReproduceOptions) -> bool:
    """Whether the run of ``ck`` on ``bench`` is complete for this very checkpoint file and protocol.

    A run made from another file for this step is an error (the step would mean two checkpoints)."""
    if not RunLayout(out).manifest.is_file():
        return False
    manifest = RunStore(out).read_manifest()
    request = manifest.get("request", {})
    recorded = (request.get("model") or {}).get("weights") or {}
    sha = sha256_file(ck.path)
    if recorded.get("sha256") and recorded["sha256"] != sha:
        raise RdmevalError(
            f"{out} was generated from {recorded.get('path')} (sha256 {str(recorded['sha256'])[:12]}...), but step {ck.step} "
            f"is now {ck.path} (sha256 {sha[:12]}...): another checkpoint with the same step. Use another --out, or move "
            "that run folder aside")
    expected = {
        "prompt_set": ps.describe(),
        "prompt_indices": [p.index for p in ps.prompts[: run.limit]],
        "n_per_prompt": run.n_per_prompt_overrides.get(bench.name, bench.n_per_prompt),
        "seed_policy": bench.seed_policy.describe(),
        "batch_size": run.batch_size or bench.batch_size,
    }
    recorded_request = {k: request.get(k) for k in expected}
    diffs = resume_blockers(diff_requests(recorded_request, expected), recorded_request, expected)  # a moved prompt file is the same
    return bool(manifest.get("complete")) and not diffs


@dataclass
class _Planned:
    """One checkpoint's runs: where each goes, and those with work left."""

    checkpoint: Checkpoint
    runs: dict[str, Path]  # benchmark -> run folder
    todo: list[tuple[Benchmark, PromptSet, Path]]


def _plan(series: Series, benches: tuple[Benchmark, ...], opts: SweepOptions, result: SweepResult) -> list[_Planned]:
    """Which (step, benchmark) runs are complete (skipped) and which have work left; reads files only, so a
    step whose run was made from another checkpoint file is refused before anything is written."""
    run = opts.run
    prompt_sets = {b.name: _prompt_set(b, run) for b in benches}
    plan = []
    for ck in series.checkpoints:
        item = _Planned(ck, {}, [])
        for bench in benches:
            out = run_dir(run.out, ck.label, bench.name)
            item.runs[bench.name] = out
            if _finished(out, ck, bench, prompt_sets[bench.name], run):
                result.skipped.append(f"{ck.label}/{bench.name}")
            else:
                item.todo.append((bench, prompt_sets[bench.name], out))
        plan.append(item)
    return plan


def _generate(plan: list[_Planned], opts: SweepOptions, result: SweepResult) -> None:
    """Every run with work left: the pipeline loaded once, each later checkpoint swapped in."""
    run = opts.run
    generator = None
    for item in plan:
        ck = item.checkpoint
        if not item.todo:
            _log(f"step {ck.step}: {', '.join(item.runs)} complete, skipped")
            continue
        if generator is None:
            gopts = GeneratorOptions(base=run.base, weights=str(ck.path), ctx_len=item.todo[0][0].ctx_len, device=run.device,
                                     precision=run.precision, height=run.resolution, width=run.resolution)
            _log(f"load the {PRESET} pipeline once, with step {ck.step} ({ck.path})")
            generator = build_generator(PRESET, gopts)
            if not isinstance(generator, SwappableGenerator):
                raise RdmevalError(f"--model {PRESET}: its generator cannot swap checkpoints in place")
        else:
            _log(f"swap in step {ck.step} ({ck.path})")
            generator.swap_weights(ck.path)
        for bench, ps, out in item.todo:
            generator.set_ctx_len(bench.ctx_len)
            n = run.n_per_prompt_overrides.get(bench.name, bench.n_per_prompt)
            _log(f"generate step {ck.step} on {bench.name} ({ps.name} {ps.version}, {len(ps)} prompts x {n}, ctx {bench.ctx_len})")
            try:
                summary = generate_run(generator, ps, out, n_per_prompt=n, seed_policy=bench.seed_policy,
                                       rng_device=run.rng_device or default_rng_device(),
                                       batch_size=run.batch_size or bench.batch_size, limit=run.limit, progress=run.progress)
            except RunStoreError as exc:
                raise RunStoreError(str(exc).replace("Use another --out, or pass --fresh to move the old run aside and start again.",
                                                     "Use another --out, or move that run folder aside.")) from None
            result.generated += 1
            _log(summary.line())
    generator = None
    _free_memory()


def _score(plan: list[_Planned], benches: tuple[Benchmark, ...], opts: SweepOptions) -> None:
    """Each scorer built once and run over every run that needs it (a scored run is skipped)."""
    need: dict[str, list[Path]] = {}
    for bench in benches:
        for item in plan:
            run = item.runs[bench.name]
            for scorer in bench.scorers:
                if not RunLayout(run).is_scored(scorer):
                    need.setdefault(scorer, []).append(run)
    for name, todo in need.items():
        scorer = SCORERS.get(name)(scorer_options(opts.run))
        for run in todo:
            _log(f"score {name} {run}")
            _log(scorer.score_run(run, allow_incomplete=opts.run.allow_incomplete, progress=opts.run.progress).message)
        scorer = None
        _free_memory()


def sweep(suite: Suite, opts: SweepOptions) -> SweepResult:
    """Evaluate the series ``opts.weights`` on the selected benchmarks of ``suite``; write the table and report."""
    t0 = time.time()
    benches = select_benchmarks(suite, opts.subset)
    series = find_checkpoints(opts.weights)
    for path in series.left_out:
        _log(f"left out {path} (its name has no step)")
    sweep_preflight(series, benches, opts, suite).raise_if_missing()
    out = opts.run.out
    record = _record(out, series, suite, benches, opts)
    result = SweepResult(out, series.checkpoints, [b.name for b in benches], record.declared_step)
    plan = _plan(series, benches, opts, result)  # refuses a step whose runs were made from another file
    if _rank() == 0:
        save_sweep_record(out, record)
    _log(f"{len(series.checkpoints)} checkpoints (steps {', '.join(str(c.step) for c in series.checkpoints)}) on "
         f"{', '.join(b.name for b in benches)} of suite {suite.name}; declared step {record.declared_step}")
    _generate(plan, opts, result)
    _score(plan, benches, opts)
    if _rank() != 0:
        return result
    from rdmeval.results.table import build_table, save_table

    result.table = save_table(build_table(out), out)
    if opts.report:
        from rdmeval.report import build_report

        _log(build_report(out, out / "report").line())
    _log(f"done in {time.time() - t0:.0f}s ({result.generated} runs generated, {len(result.skipped)} complete and skipped); "
         f"table: {result.table}")
    return result
