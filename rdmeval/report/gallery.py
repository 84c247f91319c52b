"""The GenEval gallery: per prompt, each model's images with verdict, reason and the kept boxes drawn.

Verdicts, reasons and boxes come from the GenEval scorer's per-image rows (``per_image.parquet``,
or the official ``results.jsonl``: ``details`` = the kept detections ``[x1, y1, x2, y2, score]`` per
class, in the image's pixel coordinates). Thumbnails are drawn with PIL into the report folder.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

from rdmeval.errors import RdmevalError
from rdmeval.api.layout import RunLayout
from rdmeval.results.paired import read_geneval_images
from rdmeval.results.table import RunRoot, scorer_family
from rdmeval.standin import rows_have_standin

#: Box colors (one per class name, chosen by a hash of the name so a class keeps its color).
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45",
           "#fabed4", "#469990", "#dcbeff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#000075")


def class_color(name: str) -> str:
    return PALETTE[int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % len(PALETTE)]


@dataclass
class GalleryImage:
    model: str
    sample_index: int
    source: Path  # the generated image
    thumb: str  # path inside the report folder (relative, forward slashes)
    correct: bool
    reason: str
    details: dict[str, list[list[float]]]


@dataclass
class GalleryPrompt:
    prompt_index: int
    tag: str
    prompt: str
    images: dict[str, list[GalleryImage]] = field(default_factory=dict)  # model -> images by sample index

    @property
    def n_failed(self) -> int:
        return sum(not im.correct for ims in self.images.values() for im in ims)

    @property
    def n_images(self) -> int:
        return sum(len(ims) for ims in self.images.values())


@dataclass
class Gallery:
    benchmark: str  # the run folder's benchmark name (runs/<model>/<benchmark>)
    prompt_set: str  # the prompt set the runs used (a smoke run's stand-in, e.g. demo-geneval)
    models: list[str]  # models with per-image results, in table order
    missing: dict[str, str]  # model -> why it has no images here
    prompts: list[GalleryPrompt]  # failures first
    standin: bool = False  # judged by the random-weight stand-in detector (rdmeval.standin): verdicts mean nothing

    @property
    def tags(self) -> list[str]:
        return list(dict.fromkeys(p.tag for p in sorted(self.prompts, key=lambda p: p.prompt_index)))


def _details(raw: Any) -> dict[str, list[list[float]]]:
    if isinstance(raw, dict):
        return raw
    try:
        d = json.loads(raw) if isinstance(raw, str) and raw else {}
    except json.JSONDecodeError:
        return {}
    return d if isinstance(d, dict) else {}


def collect_galleries(rr: RunRoot, models: Sequence[str], *, max_prompts: int | None = None) -> list[Gallery]:
    """One gallery per GenEval-format benchmark that has per-image results under the run root."""
    if rr.rows.empty:
        return []
    rows = rr.rows[[(scorer_family(s) == "geneval") for s in rr.rows["scorer"]]]
    galleries = []
    for bench in sorted(set(rows["_bench_key"].astype(str)), key=lambda b: (b != "geneval", b)):
        brows = rows[rows["_bench_key"] == bench]
        prompt_set = ", ".join(sorted(set(brows["benchmark"].astype(str))))
        present = [m for m in models if m in set(brows["_model_key"])]
        missing = {m: "not scored" if (m, bench) in rr.runs else "not run" for m in models if m not in present}
        prompts: dict[int, GalleryPrompt] = {}
        used = []
        for m in present:
            r = brows[brows["_model_key"] == m].iloc[0]
            run_dir = Path(r["_run_dir"])
            try:
                df = read_geneval_images(RunLayout(run_dir).scores(str(r["_scorer_dir"])))
            except RdmevalError as exc:
                missing[m] = str(exc).splitlines()[0]
                continue
            used.append(m)
            for rec in df.sort_values(["prompt_index", "sample_index"]).itertuples(index=False):
                p = prompts.setdefault(int(rec.prompt_index), GalleryPrompt(int(rec.prompt_index), str(rec.tag), str(rec.prompt)))
                sample = int(rec.sample_index)
                p.images.setdefault(m, []).append(GalleryImage(
                    model=m, sample_index=sample, source=run_dir / str(rec.image),
                    thumb=f"img/{_safe(bench)}/{_safe(m)}/{int(rec.prompt_index):05d}_{sample:04d}.jpg",
                    correct=bool(rec.correct), reason=str(rec.reason or ""), details=_details(rec.details),
                ))
        ordered = sorted(prompts.values(), key=lambda p: (-p.n_failed, p.prompt_index))
        if max_prompts is not None:
            ordered = ordered[:max_prompts]
        standin = "protocol" in brows and rows_have_standin(brows["protocol"])
        galleries.append(Gallery(bench, prompt_set, used, missing, ordered, standin))
    return galleries


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def render_thumbnail(source: Path, target: Path, details: dict[str, list[list[float]]], size: int) -> None:
    """``source`` scaled to ``size`` px on its long side, with every kept box and its class and score."""
    try:
        with Image.open(source) as im:
            image = im.convert("RGB")
    except (OSError, ValueError) as exc:
        raise RdmevalError(f"cannot read the generated image {source} ({exc}); regenerate the run") from None
    w, h = image.size
    scale = size / max(w, h)
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST
    thumb = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)
    draw = ImageDraw.Draw(thumb)
    font = _font(max(10, size // 22))
    line = max(2, size // 128)
    for name in sorted(details):
        color = class_color(name)
        for box in details[name]:
            if len(box) < 4:
                continue
            x1, y1, x2, y2 = (float(v) * scale for v in box[:4])
            draw.rectangle([x1, y1, x2, y2], outline=color, width=line)
            label = f"{name} {float(box[4]):.2f}" if len(box) > 4 else name
            tx, ty = x1 + line, max(0.0, y1 - font.size - 3 if y1 > font.size + 3 else y1 + line)
            l, t, r, b = draw.textbbox((tx, ty), label, font=font)
            draw.rectangle([l - 1, t - 1, r + 1, b + 1], fill=color)
            draw.text((tx, ty), label, fill="black" if color in ("#fffac8", "#aaffc3", "#bfef45", "#fabed4", "#dcbeff", "#42d4f4") else "white", font=font)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == ".png":
        thumb.save(target, format="PNG")
    else:  # no chroma subsampling: thin colored box lines stay crisp
        thumb.save(target, format="JPEG", quality=88, subsampling=0)


def write_thumbnails(galleries: Sequence[Gallery], out_dir: Path, size: int, workers: int = 4) -> int:
    jobs = [im for g in galleries for p in g.prompts for ims in p.images.values() for im in ims]

    def one(im: GalleryImage) -> None:
        render_thumbnail(im.source, out_dir / im.thumb, im.details, size)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, jobs))
    return len(jobs)
