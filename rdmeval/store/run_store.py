"""Run directories: manifest, per-prompt metadata, atomic PNGs, resume and completeness checks.

Layout (GenEval's official one, used for every prompt set; :class:`rdmeval.api.RunLayout` spells it)::

    <run>/manifest.json                 what was asked (request) + where/when it ran
    <run>/<idx:05d>/metadata.jsonl      the prompt's record (GenEval: the official dict)
    <run>/<idx:05d>/samples/<j:04d>.png 512x512 RGB, uint8

``manifest.json["request"]`` holds everything that determines the images; resuming into a run
whose request differs is refused with the list of differing fields. ``manifest.json["prompt_records"]``
holds the sha256 of each prompt folder's ``metadata.jsonl`` record (:func:`record_sha256`), so a
scorer can tell an edited record from the one the images were made for (runs made before it was
recorded have none; :mod:`rdmeval.scorers.runs` then falls back, and says so). Opening a run to resume it
does not touch the manifest: only making images does (:meth:`RunStore.record_resume`), so a
re-run with nothing left to do leaves the manifest, and the scores derived from the run, current.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from rdmeval.api.layout import MANIFEST, RunLayout, WorkItem, image_name
from rdmeval.errors import RunStoreError
from rdmeval.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from rdmeval.prompts.schema import Prompt
from rdmeval.store.resume import resume_blockers

FORMAT_VERSION = 1


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def diff_requests(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two request dicts ('field: old -> new')."""
    a, b = _flatten(json.loads(json.dumps(old))), _flatten(json.loads(json.dumps(new)))
    return [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def environment_info() -> dict[str, Any]:
    """Library versions, git commit and host: recorded, never compared."""
    from importlib import metadata

    versions = {}
    for pkg in ("rdmeval", "torch", "diffusers", "transformers", "numpy", "pillow", "mmdet", "mmcv", "open_clip_torch"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    info: dict[str, Any] = {"versions": versions, "host": platform.node(), "python": platform.python_version()}
    repo = Path(__file__).resolve().parents[2]
    if not (repo / "pyproject.toml").is_file():
        return info  # an installed package, not a source checkout: no commit to record
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        if sha.returncode == 0:
            info["git_commit"] = sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def prompt_record(prompt: Prompt) -> dict[str, Any]:
    """What goes into ``<idx>/metadata.jsonl``: GenEval's own dict, else a small record."""
    if prompt.metadata and "include" in prompt.metadata:
        return prompt.metadata
    rec: dict[str, Any] = {"prompt": prompt.text, "index": prompt.index}
    if prompt.tag is not None:
        rec["tag"] = prompt.tag
    if prompt.id is not None:
        rec["id"] = prompt.id
    return rec


def record_sha256(record: dict[str, Any]) -> str:
    """sha256 of a prompt record's canonical line (``json.dumps``, as ``metadata.jsonl`` holds it)."""
    return hashlib.sha256(json.dumps(record).encode("utf-8")).hexdigest()


def prompt_record_hashes(prompts: Iterable[Prompt]) -> dict[str, str]:
    """``{str(prompt index): record_sha256}``: what ``manifest.json["prompt_records"]`` holds."""
    return {str(p.index): record_sha256(prompt_record(p)) for p in prompts}


#: The mode every image of a run has: generate writes 8-bit RGB PNGs.
IMAGE_MODE = "RGB"


def _header_problem(im: Image.Image, size: tuple[int, int] | None) -> str | None:
    if im.mode != IMAGE_MODE:
        return f"mode {im.mode}, expected {IMAGE_MODE}"
    if size is not None and im.size != tuple(size):
        return f"size {im.size[0]}x{im.size[1]}, expected {size[0]}x{size[1]} (the run's resolution)"
    return None


def image_problem(path: Path, size: tuple[int, int] | None = None, *, decode: bool = True) -> str | None:
    """What is wrong with a run image file (``None``: nothing), without raising.

    Checks that it exists, opens as an image, has mode RGB and ``size`` = (W, H) if given, and that
    it decodes: fully with ``decode``, else by PIL's ``verify()`` (every PNG chunk read to the end and
    its checksum compared, no pixel decoding: a truncated or corrupted file fails it at about 1/30 of
    the cost of decoding).
    """
    if not path.is_file():
        return "missing"
    try:
        with Image.open(path) as im:
            problem = _header_problem(im, size)
            if problem is None:
                im.load() if decode else im.verify()
            return problem
    except (OSError, ValueError, SyntaxError) as exc:
        return f"cannot be decoded ({exc})"


def decode_image(path: Path, data: bytes, size: tuple[int, int] | None = None) -> Image.Image:
    """The image in ``data`` (the bytes of ``path``), fully decoded and checked as :func:`image_problem` does.

    Raises a :class:`RunStoreError` naming ``path`` and what is wrong with it."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            problem = _header_problem(im, size)
            if problem is None:
                im.load()
                return im.copy()
    except (OSError, ValueError, SyntaxError) as exc:
        problem = f"cannot be decoded ({exc})"
    raise RunStoreError(f"{path}: {problem}; delete it and resume the run with `rdmeval generate` to make it again")


#: Deflate compresses a flat image at least this much (it reaches about 1000:1): see :func:`flat_png_limit`.
FLAT_PNG_RATIO = 100
#: How many constant images the manifest names (all are counted).
CONSTANT_LISTED = 20


def flat_png_limit(width: int, height: int) -> int:
    """Bytes above which a rdmeval PNG of ``width`` x ``height`` cannot hold a constant image."""
    return height * (1 + 3 * width) // FLAT_PNG_RATIO + 1024  # raw scanlines (filter byte + RGB) / ratio + headers


def is_constant(image: np.ndarray) -> bool:
    """Whether every pixel of an (H, W, C) image has the same value (one flat color, e.g. all black)."""
    return bool((image == image[0, 0]).all())


def encode_png(image: np.ndarray) -> bytes:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()


def _has_entries(folder: Path) -> bool:
    """Whether ``folder`` holds anything but hidden entries (atomic writes' temporary files are hidden)."""
    return folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir())


@dataclass
class RunStore:
    root: Path
    resumed: bool = field(default=False, compare=False)  # set by open_for_generation: the run existed

    # ----- layout -------------------------------------------------------------------------
    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.root)

    def prompt_dir(self, prompt_index: int) -> Path:
        return self.layout.prompt_dir(prompt_index)

    def image_path(self, item: WorkItem) -> Path:
        return self.layout.image(*item)

    @property
    def manifest_path(self) -> Path:
        return self.layout.manifest

    # ----- manifest -------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            if not self.root.exists():  # a typo in the path: say so, not "generate it"
                raise RunStoreError(f"{self.root}: no such file or folder; check the path (a run directory written by "
                                    "`rdmeval generate`)") from None
            raise RunStoreError(f"{self.root}: not a run directory (no {MANIFEST}); generate it with `rdmeval generate`") from None
        except json.JSONDecodeError as exc:
            raise RunStoreError(f"{self.manifest_path}: corrupt manifest ({exc.msg}); move the run aside and regenerate") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_json(self.manifest_path, manifest)

    @classmethod
    def open_for_generation(cls, root: str | Path, request: dict[str, Any], *, fresh: bool = False, execution: dict[str, Any] | None = None,
                            prompt_records: dict[str, str] | None = None) -> "RunStore":
        """Create a run, or open one whose request matches (``resumed``); ``fresh`` moves a mismatching run aside.

        ``prompt_records`` (:func:`prompt_record_hashes`) goes into a new run's manifest."""
        store = cls(Path(root))
        # entries first, then the manifest: a concurrent --shard process writes its manifest before anything else
        if _has_entries(store.root) and not store.manifest_path.exists():
            raise RunStoreError(f"{store.root} exists, is not empty and has no {MANIFEST}; choose an empty or new --out")
        if store.manifest_path.exists():
            old = store.read_manifest().get("request", {})
            diffs = resume_blockers(diff_requests(old, request), old, request)  # a moved prompt file resumes
            if not diffs:
                store.resumed = True
                return store
            if not fresh:
                raise RunStoreError(
                    f"{store.root} holds a run made with different settings, so it cannot be resumed:\n  "
                    + "\n  ".join(diffs)
                    + "\nUse another --out, or pass --fresh to move the old run aside and start again."
                )
            aside = store.root.with_name(f"{store.root.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.move(str(store.root), aside)
            print(f"rdmeval: moved the previous run to {aside}")
        store.root.mkdir(parents=True, exist_ok=True)
        store.write_manifest(
            {
                "rdmeval_run_format": FORMAT_VERSION,
                "request": request,
                "execution": execution or {},
                **({"prompt_records": prompt_records} if prompt_records is not None else {}),
                "environment": environment_info(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "complete": False,
            }
        )
        return store

    def record_resume(self, execution: dict[str, Any] | None = None, prompt_records: dict[str, str] | None = None) -> None:
        """Note in the manifest that images are being made again, and how (call only when there is work).

        A run made before prompt records were hashed gets ``prompt_records`` now (the request matched,
        so they are the records its images were made for)."""
        manifest = self.read_manifest()
        manifest.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        manifest["execution"] = execution or manifest.get("execution", {})
        if prompt_records is not None and "prompt_records" not in manifest:
            manifest["prompt_records"] = prompt_records
        self.write_manifest(manifest)

    # ----- prompts and images --------------------------------------------------------------
    def write_prompt(self, prompt: Prompt) -> None:
        path = self.layout.prompt_metadata(prompt.index)
        text = json.dumps(prompt_record(prompt))
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)

    def prompt_metadata(self, prompt_index: int) -> dict[str, Any]:
        path = self.layout.prompt_metadata(prompt_index)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise RunStoreError(f"{path}: missing prompt metadata; resume the run with `rdmeval generate`") from None

    def save_image(self, item: WorkItem, image: np.ndarray) -> Path:
        return atomic_write_bytes(self.image_path(item), encode_png(image))

    def load_image(self, item: WorkItem) -> np.ndarray:
        with Image.open(self.image_path(item)) as im:
            return np.asarray(im.convert("RGB"))

    def image_ok(self, item: WorkItem, size: tuple[int, int] | None = None) -> bool:
        """True if the image exists, is RGB, fully decodes (and has ``size`` = (W, H) if given)."""
        return image_problem(self.image_path(item), size) is None

    def image_size(self) -> tuple[int, int]:
        """(W, H) of every image, from the manifest's ``request.resolution`` ([H, W])."""
        height, width = (int(v) for v in self.read_manifest()["request"]["resolution"])
        return width, height

    def pending(self, items: Iterable[WorkItem], size: tuple[int, int] | None = None) -> list[WorkItem]:
        """Items without a decodable image: what a resumed run still has to make."""
        return [it for it in items if not self.image_ok(it, size)]

    def missing(self, items: Sequence[WorkItem]) -> list[WorkItem]:
        """Items whose image file is absent (cheap check; no decoding)."""
        return [it for it in items if not self.image_path(it).is_file()]

    def expected_items(self) -> list[WorkItem]:
        """The full work list the manifest asked for."""
        from rdmeval.store.sharding import work_items

        req = self.read_manifest()["request"]
        return work_items(req["prompt_indices"], int(req["n_per_prompt"]))

    def mark_complete_if_done(self, *, write: bool = True, images_made: bool = False) -> bool:
        """Whether every expected image exists; with ``write``, record completion in the manifest.

        When the run becomes complete (or ``images_made`` changed a complete run) the manifest also gets
        ``constant_images`` (:meth:`constant_images`): a run of flat images is complete but suspect."""
        items = self.expected_items()
        done = not self.missing(items)
        if not write:
            return done
        manifest = self.read_manifest()
        if done and (not manifest.get("complete") or images_made):
            constant = self.constant_images(items)
            manifest["complete"] = True
            manifest["completed"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            manifest["constant_images"] = {"count": len(constant), "images": [image_name(*it) for it in constant[:CONSTANT_LISTED]]}
            self.write_manifest(manifest)
        return done

    def constant_images(self, items: Sequence[WorkItem]) -> list[WorkItem]:
        """The images among ``items`` whose pixels all hold one value (e.g. all black).

        Only files small enough to be flat are decoded: deflate shrinks a flat image more than
        ``FLAT_PNG_RATIO``-fold (near its limit of about 1000:1), while any image above that size has
        at least two distinct pixel values. A run's images are therefore scanned for the price of a stat
        each (``tests/test_constant_images.py`` checks the bound)."""
        width, height = self.image_size()
        limit = flat_png_limit(width, height)
        out = []
        for it in items:
            path = self.image_path(it)
            if path.stat().st_size <= limit and is_constant(self.load_image(it)):
                out.append(it)
        return out

    def coverage(self) -> dict[str, Any]:
        """Counts of expected / present images and the list of missing prompt folders and images."""
        items = self.expected_items()
        missing = self.missing(items)
        missing_prompts = sorted({it.prompt_index for it in missing if not self.prompt_dir(it.prompt_index).is_dir()})
        return {
            "expected_images": len(items),
            "present_images": len(items) - len(missing),
            "missing_images": [str(self.image_path(it).relative_to(self.root)) for it in missing],
            "missing_prompt_dirs": [f"{i:05d}" for i in missing_prompts],
            "complete": not missing,
        }
