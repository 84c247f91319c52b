"""Run directories: manifest, per-prompt metadata, atomic PNGs, resume and completeness checks.

Layout (GenEval's official one, used for every prompt set; :class:`rdmeval.api.RunLayout` spells it)::

    <run>/manifest.json                 what was asked (request) + where/when it ran
    <run>/<idx:05d>/metadata.jsonl      the prompt's record (GenEval: the official dict)
    <run>/<idx:05d>/samples/<j:04d>.png 512x512 RGB, uint8

``manifest.json["request"]`` holds everything that determines the images; resuming into a run
whose request differs is refused with the list of differing fields. Opening a run to resume it
does not touch the manifest: only making images does (:meth:`RunStore.record_resume`), so a
re-run with nothing left to do leaves the manifest, and the scores derived from the run, current.
"""

from __future__ import annotations

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

from rdmeval.api.layout import MANIFEST, RunLayout, WorkItem
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
            raise RunStoreError(f"{self.root}: not a run directory (no {MANIFEST}); generate it with `rdmeval generate`") from None
        except json.JSONDecodeError as exc:
            raise RunStoreError(f"{self.manifest_path}: corrupt manifest ({exc.msg}); move the run aside and regenerate") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        atomic_write_json(self.manifest_path, manifest)

    @classmethod
    def open_for_generation(cls, root: str | Path, request: dict[str, Any], *, fresh: bool = False, execution: dict[str, Any] | None = None) -> "RunStore":
        """Create a run, or open one whose request matches (``resumed``); ``fresh`` moves a mismatching run aside."""
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
                "environment": environment_info(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "complete": False,
            }
        )
        return store

    def record_resume(self, execution: dict[str, Any] | None = None) -> None:
        """Note in the manifest that images are being made again, and how (call only when there is work)."""
        manifest = self.read_manifest()
        manifest.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        manifest["execution"] = execution or manifest.get("execution", {})
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
        """True if the image exists and fully decodes (and has ``size`` = (W, H) if given)."""
        path = self.image_path(item)
        if not path.is_file():
            return False
        try:
            with Image.open(path) as im:
                im.load()
                return size is None or im.size == tuple(size)
        except (OSError, ValueError, SyntaxError):
            return False

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

    def mark_complete_if_done(self, *, write: bool = True) -> bool:
        """Whether every expected image exists; with ``write``, record completion in the manifest."""
        done = not self.missing(self.expected_items())
        if not write:
            return done
        manifest = self.read_manifest()
        if done and not manifest.get("complete"):
            manifest["complete"] = True
            manifest["completed"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            self.write_manifest(manifest)
        return done

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
