"""``rdmeval reproduce``: generate -> score -> table for every (model, benchmark) of a suite.

Each step is the library function a single command would run (``generate_run``, then each
scorer the suite names, built once from the scorer registry and run with ``score_run``), so a
reproduce run and hand-run commands write identical run directories. Complete runs are skipped,
partial ones resumed; under torchrun every rank takes its share of generation and detection, and
rank 0 writes the table.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from rdmeval.api import RunLayout, RunRootLayout, ScorerOptions
from rdmeval.errors import RdmevalError
from rdmeval.generation import generate_run
from rdmeval.generators.noise import default_rng_device
from rdmeval.generators.diffusers_presets import is_diffusers_model
from rdmeval.generators.registry import KLEIN_BASE, GeneratorOptions, build_generator, default_resolution
from rdmeval.preflight import Preflight, check_out_folder, check_prompt_set, diffusers_inputs, model_inputs, scorer_inputs
from rdmeval.prompts import load_prompt_set
from rdmeval.scorers.registry import SCORERS
from rdmeval.specs import SpecError, did_you_mean
from rdmeval.suites import Suite, SuiteBenchmark, SuiteModel


@dataclass
class ReproduceOptions:
    out: Path
    weights: str | None = None
    base: str = KLEIN_BASE
    device: str | None = None
    precision: str = "faithful"
    rng_device: str | None = None
    resolution: int = 512  # klein models (the paper table's)
    field_resolution: int | None = None  # diffusers models; None: each preset's native resolution (the pipeline's default)
    model_bases: dict[str, str] = field(default_factory=dict)  # diffusers model (suite name or preset) -> pipeline folder/id
    model_weights: dict[str, str] = field(default_factory=dict)  # diffusers model (suite name or preset) -> swap weights file
    batch_size: int | None = None  # override the suite's per-benchmark batch size (part of the protocol)
    prompts_files: dict[str, str] = field(default_factory=dict)  # benchmark name -> local copy
    prompt_overrides: dict[str, str] = field(default_factory=dict)  # benchmark name -> prompt set (smoke)
    n_per_prompt_overrides: dict[str, int] = field(default_factory=dict)
    limit: int | None = None
    # scorers
    detector_config: str | None = None
    detector_checkpoint: str | None = None
    random_detector: bool = False
    detector_test_scale: tuple[int, int] | None = None  # smoke only: departs from the protocol (recorded)
    clip_pretrained: str = "openai"
    pickscore_model: str = "yuvalkirstain/PickScore_v1"
    pickscore_processor: str = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    allow_incomplete: bool = False
    progress: bool = True
    smoke: bool = False
    also: tuple[Suite, ...] = ()  # smoke: suites also run into the same run root (the suite's [smoke] also)


def run_dir(out: Path, model: str, benchmark: str) -> Path:
    return RunRootLayout(out).run(model, benchmark).root


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _log(msg: str) -> None:
    if _rank() == 0:
        print(f"[reproduce] {msg}", flush=True)


def _free_memory() -> None:
    """Collect freed models (call after dropping the last reference) and return CUDA memory."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover
        pass


Job = tuple[SuiteModel, SuiteBenchmark]


def suite_jobs(suite: Suite, opts: ReproduceOptions) -> list[Job]:
    """Every (model, benchmark) to run: the suite's, then those of ``opts.also`` it lacks. A model or
    benchmark name that two of the suites define differently is an error."""
    models: dict[str, SuiteModel] = {}
    benches: dict[str, SuiteBenchmark] = {}
    jobs: dict[tuple[str, str], Job] = {}
    for s in (suite, *opts.also):
        for m in s.models:
            if models.setdefault(m.name, m) != m:
                raise SpecError(f"{s.source}: model {m.name!r} differs from the one of the same name in {suite.source}")
        for b in s.benchmarks:
            if benches.setdefault(b.name, b) != b:
                raise SpecError(f"{s.source}: benchmark {b.name!r} differs from the one of the same name in {suite.source}")
        for m in s.models:
            for b in s.benchmarks:
                jobs.setdefault((m.name, b.name), (m, b))
    return list(jobs.values())


def _per_model(mapping: dict[str, str], model: SuiteModel) -> str | None:
    return mapping.get(model.name) or mapping.get(model.preset)


def generator_options(model: SuiteModel, opts: ReproduceOptions, ctx_len: int) -> GeneratorOptions:
    """How ``model`` of a suite is built: klein presets share --base/--weights; a diffusers model has its own."""
    if is_diffusers_model(model.preset):
        res = opts.field_resolution if opts.field_resolution is not None else default_resolution(model.preset)
        return GeneratorOptions(pipeline=_per_model(opts.model_bases, model), weights=_per_model(opts.model_weights, model),
                                ctx_len=ctx_len, device=opts.device, precision=opts.precision, height=res, width=res)
    return GeneratorOptions(base=opts.base, weights=opts.weights if model.preset == "student" else None, ctx_len=ctx_len,
                            device=opts.device, precision=opts.precision, height=opts.resolution, width=opts.resolution)


def _generate_all(jobs: list[Job], opts: ReproduceOptions) -> dict[tuple[str, str], Path]:
    runs: dict[tuple[str, str], Path] = {}
    # one pipeline load per model: a generator that can change its text length in place (klein's set_ctx_len)
    # takes each benchmark's ctx_len; any other is built again for another ctx_len. Benchmarks sharing a
    # ctx_len run together; a diffusers model's text length is its preset's, so all its benchmarks share one.
    plan: dict[str, dict[int, list[SuiteBenchmark]]] = {}
    models = {m.name: m for m, _ in jobs}
    for m, bench in jobs:
        plan.setdefault(m.name, {}).setdefault(0 if is_diffusers_model(m.preset) else bench.ctx_len, []).append(bench)
    for name, by_ctx in plan.items():
        model = models[name]
        generator, loaded_ctx = None, None
        for ctx_len, benches in by_ctx.items():
            if generator is not None and ctx_len != loaded_ctx:
                if hasattr(generator, "set_ctx_len"):
                    generator.set_ctx_len(ctx_len)
                    loaded_ctx = ctx_len
                else:
                    generator = None
                    _free_memory()
            for bench in benches:
                out = run_dir(opts.out, model.name, bench.name)
                runs[(model.name, bench.name)] = out
                set_name = opts.prompt_overrides.get(bench.name, bench.prompts)
                ps = load_prompt_set(set_name, path=opts.prompts_files.get(bench.name), **(bench.params if set_name == bench.prompts else {}))
                n = opts.n_per_prompt_overrides.get(bench.name, bench.n_per_prompt)
                if generator is None:
                    generator, loaded_ctx = build_generator(model.preset, generator_options(model, opts, ctx_len)), ctx_len
                ctx = "the preset's text length" if is_diffusers_model(model.preset) else f"ctx {ctx_len}"
                _log(f"generate {model.name} on {bench.name} ({ps.name} {ps.version}, {len(ps)} prompts x {n}, {ctx})")
                summary = generate_run(generator, ps, out, n_per_prompt=n, seed_policy=bench.seed_policy,
                                       rng_device=opts.rng_device or default_rng_device(), batch_size=opts.batch_size or bench.batch_size,
                                       limit=opts.limit, progress=opts.progress)
                _log(summary.line())
        generator = None
        _free_memory()
    return runs


def scorer_options(opts: ReproduceOptions) -> ScorerOptions:
    """What the scorer factories get: the device, and every scorer setting of the options by name."""
    settings = {k: getattr(opts, k) for k in ("detector_config", "detector_checkpoint", "random_detector",
                                              "detector_test_scale", "clip_pretrained", "pickscore_model",
                                              "pickscore_processor")}
    return ScorerOptions(device=opts.device, progress=opts.progress, settings=settings)


def _score_all(jobs: list[Job], opts: ReproduceOptions, runs: dict[tuple[str, str], Path]) -> None:
    """Each scorer the suite names, built once (from the scorer registry), over every run that needs it."""
    need: dict[str, list[Path]] = {}
    benches = list(dict.fromkeys(b.name for _, b in jobs))
    for model, bench in sorted(jobs, key=lambda j: benches.index(j[1].name)):  # benchmark by benchmark
        run = runs[(model.name, bench.name)]
        for name in bench.scorers:
            if RunLayout(run).is_scored(name):
                _log(f"{name} of {run}: up to date, skipped")
            else:
                need.setdefault(name, []).append(run)
    for name, todo in need.items():
        _log(f"load scorer {name} for {len(todo)} run{'s' if len(todo) != 1 else ''} ...")
        scorer = SCORERS.get(name)(scorer_options(opts))
        for run in todo:
            _log(f"score {name} {run}")
            _log(scorer.score_run(run, allow_incomplete=opts.allow_incomplete, progress=opts.progress).message)
        scorer = None
        _free_memory()


def check_named_inputs(suite: Suite, opts: ReproduceOptions, models: Sequence[SuiteModel], benchmarks: Sequence[str]) -> None:
    """Each ``--prompts-file BENCHMARK=``, ``--model-base MODEL=`` and ``--model-weights MODEL=`` names a benchmark or a
    diffusers model of the suite: a misspelt name is an error, never a local copy silently left unused."""
    benches = list(dict.fromkeys(benchmarks))
    for key, path in opts.prompts_files.items():
        if key not in benches:
            raise RdmevalError(f"--prompts-file {key}={path}: suite {suite.name} has no benchmark {key!r}"
                               f"{did_you_mean(key, benches)}; its benchmarks: {', '.join(benches)}")
    diffusers_models = list(dict.fromkeys(n for m in models if is_diffusers_model(m.preset) for n in (m.name, m.preset)))
    for flag, given in (("--model-base", opts.model_bases), ("--model-weights", opts.model_weights)):
        for key, path in given.items():
            if key not in diffusers_models:
                raise RdmevalError(f"{flag} {key}={path}: suite {suite.name} has no diffusers model {key!r}"
                                   f"{did_you_mean(key, diffusers_models)}; its diffusers models: {', '.join(diffusers_models) or 'none'} "
                                   "(klein's teacher, naive and student take --base and --weights)")


def reproduce_preflight(suite: Suite, opts: ReproduceOptions) -> Preflight:
    """Every input of the whole suite (prompt sets, models, scorers), checked before any model loads."""
    pf = Preflight("rdmeval reproduce")
    jobs = suite_jobs(suite, opts)
    check_named_inputs(suite, opts, [m for m, _ in jobs], [b.name for _, b in jobs])
    model_inputs(pf, {m.preset for m, _ in jobs}, opts.base, opts.weights)
    for m in dict((m.name, m) for m, _ in jobs).values():
        if is_diffusers_model(m.preset):
            diffusers_inputs(pf, m.name, m.preset, _per_model(opts.model_bases, m), _per_model(opts.model_weights, m),
                             base_flag=f"--model-base {m.name}=FOLDER", weights_flag=f"--model-weights {m.name}=FILE")
    for bench in dict((b.name, b) for _, b in jobs).values():
        name = opts.prompt_overrides.get(bench.name, bench.prompts)
        pf.add(f"prompts of {bench.name}", check_prompt_set(
            name, opts.prompts_files.get(bench.name), what=f"prompt set {name!r} (benchmark {bench.name})",
            flag=f"--prompts-file {bench.name}=PATH"))
    scorer_inputs(pf, {s for _, b in jobs for s in b.scorers}, scorer_options(opts).settings)
    pf.add("output folder", check_out_folder(opts.out))
    return pf


def reproduce(suite: Suite, opts: ReproduceOptions) -> Path | None:
    """Run the whole suite, then write OUT/table.json, OUT/table.md and OUT/report/; returns the table.md path (rank 0) or None."""
    t0 = time.time()
    reproduce_preflight(suite, opts).raise_if_missing()  # every input of the suite, before any model loads
    jobs = suite_jobs(suite, opts)
    runs = _generate_all(jobs, opts)
    _score_all(jobs, opts, runs)
    if _rank() != 0:
        return None
    from rdmeval.results.table import build_table, save_table

    _log("table and report ...")
    table = save_table(build_table(opts.out), opts.out)  # OUT/table.json + OUT/table.md; the report reads table.json
    from rdmeval.report import build_report

    _log(build_report(opts.out, opts.out / "report").line())
    _log(f"done in {time.time() - t0:.0f}s; table: {table}")
    return table


def _smoke_field(models: list[SuiteModel], fixtures: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Tiny stand-ins for the diffusers presets among ``models``: pipeline folders and swap weights, by model name."""
    from rdmeval.generators.diffusers_presets import PRESETS

    field = [m for m in models if m.preset in PRESETS]  # diffusers:<folder> runs as given
    if not field:
        return {}, {}
    from rdmeval.fixtures.tiny_field import build_tiny_field

    tiny = build_tiny_field(fixtures / "tiny-field")
    swaps = {"tianweiy/DMD2": tiny["dmd2_unet"], "ByteDance/SDXL-Lightning": tiny["lightning_unet"]}
    bases, weights = {}, {}
    for m in field:
        preset = PRESETS[m.preset]
        bases[m.name] = str(tiny[preset.family])
        if preset.swap is not None:
            weights[m.name] = str(swaps[preset.swap.repo_id])
    return bases, weights


def smoke_options(suite: Suite, opts: ReproduceOptions, fixtures: Path) -> ReproduceOptions:
    """The suite on tiny offline models: tiny klein, tiny field pipelines, random detector/CLIP, tiny PickScore CLIP."""
    from rdmeval.fixtures.tiny_clip import build_tiny_clip
    from rdmeval.fixtures.tiny_klein import build_tiny_klein

    _log(f"smoke run: building the tiny offline models (klein, CLIP) in {fixtures} ...")
    klein = build_tiny_klein(fixtures / "tiny-klein")
    clip_dir = fixtures / "tiny-clip"
    if not (clip_dir / "config.json").exists():
        build_tiny_clip(clip_dir)
    smoke = suite.smoke
    prompts, n_per_prompt, also = smoke_also(suite)
    model_bases, model_weights = _smoke_field([m for s in (suite, *also) for m in s.models], fixtures)
    return replace(
        opts,
        base=str(klein["base"]),
        weights=str(klein["student_bfl_safetensors"]),
        device=opts.device or "cpu",
        rng_device=opts.rng_device or "cpu",
        precision="fp32",
        resolution=int(smoke.get("resolution", 64)),
        field_resolution=int(smoke.get("resolution", 64)),
        model_bases={**model_bases, **opts.model_bases},
        model_weights={**model_weights, **opts.model_weights},
        prompt_overrides=prompts,
        n_per_prompt_overrides=n_per_prompt,
        limit=smoke.get("limit", opts.limit),
        random_detector=True,
        detector_test_scale=tuple(smoke["detector_test_scale"]) if "detector_test_scale" in smoke else None,
        clip_pretrained="random",
        pickscore_model=str(clip_dir),
        pickscore_processor=str(clip_dir),
        smoke=True,
        also=also,
    )


def smoke_also(suite: Suite) -> tuple[dict[str, str], dict[str, int], tuple[Suite, ...]]:
    """The smoke prompt sets and images per prompt of the suite and of the suites its ``[smoke] also``
    names (run into the same run root, e.g. the demo's tiny held-out GenEval), and those suites.
    Their own ``also`` is not followed; a setting two of them give differently is an error."""
    from rdmeval.suites import load_suite, smoke_also_file

    also = tuple(load_suite(smoke_also_file(Path(suite.source), name)) for name in suite.smoke.get("also", []))
    prompts: dict[str, str] = {}
    n_per_prompt: dict[str, int] = {}
    for s in (suite, *also):
        for key, merged, kind in (("prompts", prompts, str), ("n_per_prompt", n_per_prompt, int)):
            for bench, value in s.smoke.get(key, {}).items():
                if merged.setdefault(bench, kind(value)) != kind(value):
                    raise SpecError(f"{s.source}: [smoke] {key}.{bench} = {value!r}, but {suite.source} runs it with {merged[bench]!r}")
        for key in ("resolution", "detector_test_scale", "limit"):
            if s.smoke.get(key) != suite.smoke.get(key):
                raise SpecError(f"{s.source}: [smoke] {key} must equal {suite.source}'s to run with it ([smoke] also)")
    return prompts, n_per_prompt, also

