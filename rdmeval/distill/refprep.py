"""The trainer's reference, prepared with the project's own tools: teacher renders → curation → features → bundles.

``refprep(pool, out)`` runs five stages into ``OUT`` (each one resumes, and is skipped when done):

1. **renders**: the reference pool's blocks (:mod:`rdmeval.distill.curation`) rendered by the ``teacher``
   preset with :func:`rdmeval.generation.generate_run` into ``OUT/renders/<source>/seeds-NNNN/`` (run
   stores: resumable, torchrun-sharded); a complete run is not opened again;
2. **scores**: each run scored through the scorer registry's public API (GenEval: detect once, judge;
   PickScore per image), skipped when its scores are newer than its manifest;
3. **curate**: ``OUT/curated.json``, the kept renders in row order, from the scorers' per-image files;
4. **features**: per encoder, ``OUT/features/<encoder>/``, a :func:`~rdmeval.distill.tables.write_table`
   table keyed by the images' paths (PNG → [0, 1] tensor → :class:`~rdmeval.distill.battery.BatteryEncoder`,
   float32 rows); and ``OUT/tau/``, the SigLIP2 text feature of each row's prompt (the reference-side τ);
5. **bundles**: per encoder, :func:`~rdmeval.distill.bundle_build.build_bundle_streaming` into
   ``OUT/bundles/<encoder>.safetensors`` (work in ``OUT/bundle-state/<encoder>/``), with the provenance: the
   pool's plan and rows, the encoder, the run manifests' sha256, the curation rule and the seeds.

Under torchrun every rank takes its share of the renders and of the scoring, rank 0 curates, and the
encoders (features, then bundles) are dealt to the ranks in turn. ``OUT/refprep.json`` records what fixes
the renders and the curation; a preparation resumed with other seeds, caps or pool is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from rdmeval.distill.battery import BatteryEncoder, EncoderSpec
from rdmeval.distill.bundle_build import BundleRecipe, build_bundle_streaming
from rdmeval.distill.conditioning import KLEIN_BASE, TableEncoder
from rdmeval.distill.curation import (
    CAPTION_SEEDS, GENEVAL_CAP, GENEVAL_SEEDS, REFERENCE_SEED_BASE, Block, Curated, RefprepError, RenderRun, curate,
    plan_blocks, read_curated,
)
from rdmeval.distill.encoders import RELEASED_BATTERY
from rdmeval.distill.tables import Table, TableError, prompts_sha256, write_table
from rdmeval.generators.noise import MAX_SAMPLES_PER_PROMPT
from rdmeval.io import atomic_write_json

REQUEST_FORMAT = "rdmeval.distill.refprep/1"
STAGES = ("renders", "scores", "curate", "features", "bundles")
#: Progress callback: (stage, item, done, total); item is a run, an encoder, "tau" or "<encoder>/<bundle stage>".
Progress = Callable[[str, str, int, int], None]


@dataclass(frozen=True, kw_only=True)
class RefprepOptions:
    """Everything the preparation is asked; the defaults are the released recipe's where it is known."""

    geneval_seeds: int = GENEVAL_SEEDS
    geneval_cap: int = GENEVAL_CAP
    caption_seeds: int = CAPTION_SEEDS
    seed_base: int = REFERENCE_SEED_BASE
    seeds_per_run: int = MAX_SAMPLES_PER_PROMPT
    # renders (the teacher preset)
    base: str = KLEIN_BASE
    precision: str = "faithful"
    resolution: int = 512
    ctx_len: int = 48
    device: str | None = None
    rng_device: str | None = None
    render_batch_size: int = 8  # the reference's batch for these renders
    # scorers (ScorerOptions.settings: detector_config, detector_checkpoint, clip_pretrained, pickscore_model, ...)
    scorer_settings: Mapping[str, Any] = field(default_factory=dict)
    # features and τ
    encoders: tuple[EncoderSpec, ...] = RELEASED_BATTERY
    feature_batch_size: int = 64
    feature_shard_rows: int = 8192
    image_workers: int = 8  # PNG decoding threads (~11 ms per 512 px image per core)
    text_model: str | None = None
    text_pretrained: str | None = None
    tau_batch_size: int = 512
    # bundles
    recipe: BundleRecipe = BundleRecipe()
    bundle_device: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        flags = {"resolution": "--resolution", "render_batch_size": "--batch-size", "feature_batch_size": "--feature-batch-size",
                 "image_workers": "--image-workers", "feature_shard_rows": "RefprepOptions.feature_shard_rows",
                 "tau_batch_size": "RefprepOptions.tau_batch_size"}
        for name, flag in flags.items():
            if getattr(self, name) < 1:
                raise RefprepError(f"{flag} must be >= 1, got {getattr(self, name)}")
        names = [s.name for s in self.encoders]
        if not names or len(set(names)) != len(names):
            raise RefprepError(f"the encoders must be named once each, got {names}")


@dataclass
class Backends:
    """The models the stages need, each built only when its stage has work (tests pass tiny stand-ins)."""

    generator: Callable[[], Any]  # -> rdmeval.api.Generator
    scorer: Callable[[str], Any]  # "geneval" / "pickscore" -> rdmeval.api.Scorer
    encoder: Callable[[EncoderSpec, torch.device], BatteryEncoder]
    text: Callable[[], TableEncoder]


def default_backends(options: RefprepOptions) -> Backends:
    """The teacher preset, the registered scorers, the real battery and the SigLIP2 text tower."""

    def generator() -> Any:
        from rdmeval.generators.registry import GeneratorOptions, build_generator

        return build_generator("teacher", GeneratorOptions(base=options.base, ctx_len=options.ctx_len, device=options.device,
                                                           precision=options.precision, height=options.resolution,
                                                           width=options.resolution))

    def scorer(name: str) -> Any:
        from rdmeval.api import ScorerOptions
        from rdmeval.scorers.registry import SCORERS

        return SCORERS.get(name)(ScorerOptions(device=options.device, progress=options.progress, settings=dict(options.scorer_settings)))

    def encoder(spec: EncoderSpec, device: torch.device) -> BatteryEncoder:
        from rdmeval.distill.encoders import load_encoder

        return load_encoder(spec, device=device)

    def text() -> TableEncoder:
        from rdmeval.distill.conditioning import text_encoder

        return text_encoder(options.text_model, options.text_pretrained, device=options.device, batch_size=options.tau_batch_size)

    return Backends(generator, scorer, encoder, text)


@dataclass
class RefprepResult:
    out: Path
    curated: Path | None = None
    rows: int = 0
    features: dict[str, Path] = field(default_factory=dict)
    tau: Path | None = None
    bundles: dict[str, Path] = field(default_factory=dict)


class _Ranks:
    """torchrun's rank and world size (1 process without torchrun), and a barrier."""

    def __init__(self) -> None:
        from rdmeval.distributed import torchrun_group

        self.dist = torchrun_group(None)
        self.rank = self.dist.get_rank() if self.dist else 0
        self.world = self.dist.get_world_size() if self.dist else 1

    def barrier(self) -> None:
        if self.dist is not None:
            self.dist.barrier()

    def mine(self, items: Sequence[str]) -> list[str]:
        return list(items[self.rank::self.world])


def _log(ranks: _Ranks, message: str) -> None:
    if ranks.rank == 0:
        print(f"[refprep] {message}", flush=True)


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()


def _device(name: str | None) -> torch.device:
    from rdmeval.generators.klein import resolve_device

    return resolve_device(name)


# ------------------------------------------------------------------------------------ 1-2. renders, scores


def _complete_run(root: Path, block: Block, run: RenderRun, options: RefprepOptions, rng_device: str) -> bool:
    """Whether the run is complete with the renders asked (checked without loading the teacher)."""
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    req = manifest.get("request", {})
    return bool(manifest.get("complete")) and (
        req.get("model", {}).get("preset"), req.get("prompt_set", {}).get("sha256"), req.get("n_per_prompt"),
        req.get("seed_policy", {}).get("kind"), req.get("seed_policy", {}).get("base"), req.get("resolution"),
        req.get("batch_size"), req.get("rng_device"),
    ) == ("teacher", block.prompts.sha256, run.n_per_prompt, "per-sample", run.policy.base,
          [options.resolution, options.resolution], options.render_batch_size, rng_device.split(":")[0])


def render_blocks(out: Path, blocks: Sequence[Block], options: RefprepOptions, backends: Backends, ranks: _Ranks,
                  on_progress: Progress) -> None:
    from rdmeval.generation import generate_run
    from rdmeval.generators.noise import default_rng_device

    rng_device = options.rng_device or default_rng_device()
    generator = None
    for block in blocks:
        for run in block.runs():
            root = block.run_dir(out, run)
            if not _complete_run(root, block, run, options, rng_device):
                if generator is None:
                    generator = backends.generator()
                _log(ranks, f"render {root.relative_to(out)}: {len(block.prompts):,} prompts x {run.n_per_prompt} "
                            f"(samples {run.first}..{run.first + run.n_per_prompt - 1})")
                summary = generate_run(generator, block.prompts, root, n_per_prompt=run.n_per_prompt, seed_policy=run.policy,
                                       rng_device=rng_device, batch_size=options.render_batch_size, progress=options.progress)
                _log(ranks, summary.line())
            on_progress("renders", f"{block.source}/{run.name}", 1, 1)


def score_blocks(out: Path, blocks: Sequence[Block], backends: Backends, ranks: _Ranks, options: RefprepOptions,
                 on_progress: Progress) -> None:
    from rdmeval.api.layout import RunLayout

    need: dict[str, list[Path]] = {}  # decided before any scoring, so that every rank takes the same path
    for block in blocks:
        for run in block.runs():
            root = block.run_dir(out, run)
            if not RunLayout(root).is_scored(block.scorer):
                need.setdefault(block.scorer, []).append(root)
    for name, roots in need.items():
        scorer = backends.scorer(name)
        for root in roots:
            _log(ranks, f"score {name} {root.relative_to(out)}")
            result = scorer.score_run(root, progress=options.progress)
            _log(ranks, result.message)
            on_progress("scores", str(root.relative_to(out)), 1, 1)
        scorer = None
    ranks.barrier()  # rank 0 writes the scorers' outputs after their own barrier: wait for it


# --------------------------------------------------------------------------------------- 4. features, τ


class _ImageFeatures:
    """Image paths (relative to OUT) -> encoder features: PNG -> uint8 -> [0, 1] float32 (B, 3, H, W)."""

    def __init__(self, out: Path, sha256: Mapping[str, str], encoder: BatteryEncoder, device: torch.device, pool: ThreadPoolExecutor):
        self.out, self.sha256, self.encoder, self.device, self.pool = out, sha256, encoder, device, pool

    def _load(self, key: str) -> np.ndarray:
        from PIL import Image

        path = self.out / key
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise RefprepError(f"{path}: cannot read this curated render ({exc.strerror}); run the preparation again") from None
        if hashlib.sha256(data).hexdigest() != self.sha256[key]:
            raise RefprepError(f"{path} changed since it was scored and curated (sha256 differs from curated.json); "
                               "rescore the run (remove its scores/ folder) and run the preparation again")
        with Image.open(io.BytesIO(data)) as im:
            if im.mode != "RGB":
                raise RefprepError(f"{path}: mode {im.mode}, expected RGB (a render of rdmeval generate)")
            return np.asarray(im, dtype=np.uint8)

    @torch.no_grad()
    def __call__(self, keys: Sequence[str]) -> Tensor:
        images = np.stack(list(self.pool.map(self._load, keys)))
        x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        return self.encoder(x).float()


def _free(device: torch.device) -> None:
    """Return a dropped encoder's memory before the next one loads."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _done(folder: Path, keys: Sequence[str], info: Mapping[str, Any]) -> bool:
    """Whether ``folder`` holds the complete table of ``keys`` built with ``info``."""
    try:
        table = Table(folder)
    except TableError:
        return False
    return table.prompts_sha256 == prompts_sha256(keys) and table.info == json.loads(json.dumps(dict(info)))


def _bar(options: RefprepOptions, what: str) -> Callable[[int, int], None]:
    started = time.time()

    def on_shard(i: int, n: int) -> None:
        if options.progress:
            print(f"[refprep] {what}: shard {i}/{n} [{time.time() - started:.0f}s]", flush=True)

    return on_shard


def build_features(out: Path, curated: Curated, spec: EncoderSpec, options: RefprepOptions, backends: Backends,
                   ranks: _Ranks, on_progress: Progress) -> Path:
    """``OUT/features/<encoder>``: one float32 row per curated render, keyed by its path."""
    folder = out / "features" / spec.name
    device = _device(options.device)
    autocast = "bf16" if spec.precision == "bf16" and device.type == "cuda" else "none"
    info = {"kind": "image-features", "encoder": asdict(spec), "autocast": autocast, "curated_rows_sha256": curated.sha256}
    keys = curated.images
    if not _done(folder, keys, info):
        encoder = backends.encoder(spec, device)
        bar = _bar(options, f"features {spec.name}")

        def on_shard(i: int, n: int) -> None:
            bar(i, n)
            on_progress("features", spec.name, i, n)

        sha = {r["image"]: r["image_sha256"] for r in curated.rows}
        with ThreadPoolExecutor(max_workers=options.image_workers, thread_name_prefix="png") as pool:
            write_table(folder, keys, _ImageFeatures(out, sha, encoder, device, pool), shard_rows=options.feature_shard_rows,
                        batch_size=options.feature_batch_size, dtype="float32", info=info, on_shard=on_shard)
        del encoder
        _free(device)
    return folder


def build_tau(out: Path, curated: Curated, options: RefprepOptions, backends: Backends, ranks: _Ranks,
              on_progress: Progress) -> Path:
    """``OUT/tau``: the text feature of each curated row's prompt (each distinct prompt encoded once)."""
    folder = out / "tau"
    prompts = curated.prompts
    try:
        table = Table(folder)
        if table.prompts_sha256 == prompts_sha256(prompts) and table.info.get("curated_rows_sha256") == curated.sha256 \
                and (options.text_model is None or table.info.get("model") == options.text_model):
            return folder
    except TableError:
        pass
    encoder = backends.text()
    info = {**encoder.info, "curated_rows_sha256": curated.sha256, "pool": curated.meta["pool"].get("name"), "rows": len(prompts)}
    bar = _bar(options, "tau")

    def on_shard(i: int, n: int) -> None:
        bar(i, n)
        on_progress("features", "tau", i, n)

    write_table(folder, prompts, encoder, shard_rows=encoder.shard_rows, batch_size=encoder.batch_size, dtype=encoder.dtype,
                info=info, on_shard=on_shard, dedupe=True)
    return folder


# ---------------------------------------------------------------------------------------------- 5. bundles


def build_bundle(out: Path, curated: Curated, spec: EncoderSpec, options: RefprepOptions, on_progress: Progress) -> Path:
    """``OUT/bundles/<encoder>.safetensors`` from the encoder's features and the τ table (resumes from ``OUT/bundle-state``)."""
    image, text = Table(out / "features" / spec.name), Table(out / "tau")
    for table in (image, text):
        if len(table) != len(curated) or table.info.get("curated_rows_sha256") != curated.sha256:
            raise RefprepError(f"{table.folder} was built from another curation than {curated.path}; remove it and run the "
                               "preparation again")
    if options.recipe.num_landmarks > len(curated):
        raise RefprepError(f"the curated reference has {len(curated):,} rows, fewer than the {options.recipe.num_landmarks:,} "
                           "landmarks asked (--landmarks)")
    meta = curated.meta
    provenance = {
        "pool": {"name": meta["pool"].get("name"), "plan_sha256": meta["pool"].get("plan_sha256"), "rows": len(curated),
                 "rows_sha256": curated.sha256, "prompts_sha256": prompts_sha256(curated.prompts)},
        "encoder": {"name": spec.name, "model_id": spec.model_id, "spec": asdict(spec), "features": image.info},
        "tau": {k: v for k, v in text.info.items() if k != "curated_rows_sha256"},
        "renders": {run: record["manifest_sha256"] for run, record in meta["runs"].items()},
        "curation": meta["rules"],
        "seeds": meta["seeds"],
    }
    path = out / "bundles" / f"{spec.name}.safetensors"
    build_bundle_streaming(image, text, path, work=out / "bundle-state" / spec.name, recipe=options.recipe,
                           device=_device(options.bundle_device), provenance=provenance,
                           on_progress=lambda stage, done, total: on_progress("bundles", f"{spec.name}/{stage}", done, total))
    return path


# ------------------------------------------------------------------------------------------------ driver


def _check_request(out: Path, request: dict[str, Any]) -> None:
    path = out / "refprep.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != request:
            changed = sorted(k for k in old.keys() | request.keys() if old.get(k) != request.get(k))
            raise RefprepError(f"{out} holds a reference prepared with other {', '.join(changed)} ({path}); use another --out "
                               "or the same pool, seeds, cap and resolution")
    else:
        atomic_write_json(path, request)


def refprep(
    pool: Any,
    out: str | os.PathLike[str],
    options: RefprepOptions = RefprepOptions(),
    *,
    overrides: Sequence[str] | None = None,
    backends: Backends | None = None,
    stop_after: str | None = None,
    on_progress: Progress | None = None,
) -> RefprepResult:
    """Prepare the reference of ``pool`` (a pool spec name, TOML path or parsed spec) into ``out``."""
    from rdmeval.contamination.pool_spec import PoolSpec, load_pool_spec

    if stop_after is not None and stop_after not in STAGES:
        raise RefprepError(f"--stop-after must be one of {', '.join(STAGES)}, got {stop_after!r}")
    last = STAGES.index(stop_after or STAGES[-1])
    progress = on_progress or (lambda stage, item, done, total: None)
    spec = pool if isinstance(pool, PoolSpec) else load_pool_spec(pool, overrides)
    blocks = plan_blocks(spec, geneval_seeds=options.geneval_seeds, geneval_cap=options.geneval_cap,
                         caption_seeds=options.caption_seeds, seed_base=options.seed_base, seeds_per_run=options.seeds_per_run)
    backends = backends or default_backends(options)
    out = Path(out)
    ranks = _Ranks()
    plan = [b.identity() for b in blocks]
    if ranks.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _check_request(out, {"format": REQUEST_FORMAT, "pool": spec.name, "blocks": plan, "resolution": options.resolution,
                             "preset": "teacher"})
    ranks.barrier()
    result = RefprepResult(out)
    for block in blocks:
        _log(ranks, f"{block.source}: {block.rule()['rule']} ({len(block.prompts):,} prompts, {len(block.runs())} run(s))")

    render_blocks(out, blocks, options, backends, ranks, progress)
    if last < STAGES.index("scores"):
        return result
    score_blocks(out, blocks, backends, ranks, options, progress)
    if last < STAGES.index("curate"):
        return result
    if ranks.rank == 0:
        pool_record = {"name": spec.name, "description": spec.description, "plan_sha256": _sha256_json(plan)}
        curated = curate(out, blocks, pool_record)
        for b in curated.meta["blocks"]:
            _log(ranks, f"curated {b['source']}: {b['rows']:,} rows (the pool spec gives {b['spec_rows']}); "
                        f"{b['prompts_without_rows']} of {b['prompts']:,} prompts kept no render")
        progress("curate", "curated.json", 1, 1)
    ranks.barrier()
    curated = read_curated(out)
    result.curated, result.rows = curated.path, len(curated)
    if last < STAGES.index("features"):
        return result

    specs = {s.name: s for s in options.encoders}
    for item in ranks.mine(["tau", *specs]):
        if item == "tau":
            result.tau = build_tau(out, curated, options, backends, ranks, progress)
        else:
            result.features[item] = build_features(out, curated, specs[item], options, backends, ranks, progress)
    ranks.barrier()
    result.tau = out / "tau"
    if last < STAGES.index("bundles"):
        return result
    for name in ranks.mine(list(specs)):
        _log(ranks, f"bundle {name}")
        result.bundles[name] = build_bundle(out, curated, specs[name], options, progress)
    ranks.barrier()
    result.features = {name: out / "features" / name for name in specs}
    result.bundles = {name: out / "bundles" / f"{name}.safetensors" for name in specs}
    return result


def with_recipe(options: RefprepOptions, **changes: Any) -> RefprepOptions:
    """``options`` with some bundle recipe fields changed (e.g. ``krr="first"``, ``num_landmarks=...``)."""
    return replace(options, recipe=replace(options.recipe, **changes))
