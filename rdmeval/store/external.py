"""Folders in GenEval's layout made by other tools: scored through a run folder that links to them.

The official ``generation/diffusers_generate.py``, the RDM renderer and many scripts write
``<DIR>/<NNNNN>/metadata.jsonl`` (one GenEval record) and ``<DIR>/<NNNNN>/samples/<NNNN>.png``, and
no ``manifest.json``. As the official ``evaluate_images.py`` does, only folders whose name is digits
and images whose name matches ``\\d+\\.png`` count; anything else (``grid.png``, other files) is ignored.

rdmeval never writes into such a folder. :func:`adopt_geneval_folder` makes a separate run folder
(``--out``) holding a ``manifest.json`` marked ``external`` and, per image, a symbolic link
``<NNNNN>/samples/<j:04d>.png`` to the original (samples renumbered 0..k-1 in numeric order), and
``<NNNNN>/metadata.jsonl`` linking to the original record; scores then go to ``OUT/scores/``
exactly as for rdmeval's own runs (``RunLayout``, ``check_run``, result rows, table).

What the manifest records: the source folder, the prompt set (a registered set recognised when every
present record is that set's record for the same index, else the folder's own records hashed), the
image size of the first image, the images per prompt (the most any prompt folder holds); what it cannot
know (the model, seeds, sampler settings) is listed under ``external.unknown``. A prompt folder with
fewer images than the others, or a missing prompt index, makes the run incomplete, refused unless
``--allow-incomplete``, as for rdmeval's own runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from PIL import Image

from rdmeval.api.layout import MANIFEST, RunLayout
from rdmeval.errors import RunStoreError
from rdmeval.io import atomic_write_json
from rdmeval.store.run_store import FORMAT_VERSION, environment_info, prompt_record_hashes, record_sha256

_IMAGE = re.compile(r"\d+\.png")  # evaluate_images.py: re.match(r"\d+\.png", name)
#: What a folder made by another tool cannot tell (recorded in the manifest, shown with its results).
UNKNOWN = ("model", "weights", "seeds", "sampler settings", "text context length")


def _prompt_folders(src: Path) -> dict[int, Path]:
    folders: dict[int, Path] = {}
    for p in sorted(src.iterdir()):
        if p.is_dir() and p.name.isdigit():
            if int(p.name) in folders:  # 7 and 00007: one prompt index, two folders (one would be dropped unseen)
                raise RunStoreError(f"{src}: the prompt folders {folders[int(p.name)].name} and {p.name} have the same "
                                    "index; keep one of them (GenEval names them by the prompt's index, 00007)")
            folders[int(p.name)] = p
    return folders


def is_geneval_folder(src: Path) -> bool:
    """Whether ``src`` has at least one ``<digits>/metadata.jsonl`` (GenEval's layout)."""
    return src.is_dir() and any((p / "metadata.jsonl").is_file() for p in _prompt_folders(src).values())


def _samples(folder: Path) -> list[Path]:
    samples = folder / "samples"
    if not samples.is_dir():
        return []
    found = [p for p in samples.iterdir() if _IMAGE.match(p.name) and p.is_file()]
    return sorted(found, key=lambda p: (int(re.match(r"\d+", p.name).group()), p.name))


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise RunStoreError(f"{path}: missing; every prompt folder of a GenEval folder holds its metadata.jsonl") from None
    except json.JSONDecodeError as exc:
        raise RunStoreError(f"{path}: not one JSON record ({exc.msg}); GenEval writes one object per prompt folder") from None
    if not isinstance(record, dict):
        raise RunStoreError(f"{path}: holds {type(record).__name__}, expected one JSON object (a GenEval record)")
    return record


def registered_sets_here(*, geneval: bool):
    """The registered prompt sets in GenEval's format (``geneval``) or in any other, that are already on this
    machine (packaged, cached or on $RDMEVAL_PROMPTS_PATH): recognising a set never downloads it."""
    from rdmeval.cache import cache_dir
    from rdmeval.prompts import load_prompt_set, registry
    from rdmeval.prompts.sources import prompts_search_path

    folders = [cache_dir() / "prompts", *prompts_search_path()]
    for name, spec in registry().items():
        if (spec.format == "geneval") != geneval or not (spec.local or any((d / spec.filename).is_file() for d in folders)):
            continue
        try:
            yield load_prompt_set(name)
        except Exception:  # noqa: BLE001 - a set that cannot be loaded here is simply not recognised
            continue


def _recognise(records: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """The registered GenEval-format prompt set whose record at each present index is the folder's, if on this machine."""
    hashes = {str(i): record_sha256(r) for i, r in records.items()}
    for ps in registered_sets_here(geneval=True):
        expected = prompt_record_hashes(ps.prompts)
        if all(expected.get(k) == v for k, v in hashes.items()):
            return {"name": ps.name, "version": ps.version, "sha256": ps.sha256, "source": ps.source,
                    "format": ps.format, "definition": ps.definition, "n_prompts": len(ps), "records": expected}
    return None


def describe_folder(src: Path) -> dict[str, Any]:
    """The manifest of a run folder standing for ``src`` (see the module docstring)."""
    folders = _prompt_folders(src)
    records = {i: _read_record(f / "metadata.jsonl") for i, f in sorted(folders.items())}
    samples = {i: _samples(f) for i, f in folders.items()}
    if not any(samples.values()):
        raise RunStoreError(f"{src}: no images (expected <NNNNN>/samples/<NNNN>.png as GenEval writes them)")
    known = _recognise(records)
    if known is not None:
        n_prompts, prompt_records = known.pop("n_prompts"), known.pop("records")
        prompt_set = {**known, "recognised_by": "every present record equals the registered set's record of its index"}
    else:
        n_prompts = max(records) + 1
        prompt_records = {str(i): record_sha256(r) for i, r in records.items()}
        digest = hashlib.sha256("\n".join(json.dumps(records[i]) for i in sorted(records)).encode()).hexdigest()
        prompt_set = {"name": src.name, "version": "external", "sha256": digest, "source": str(src), "format": "geneval",
                      "definition": f"the records found in the GenEval folder {src.name} (no registered set matches)"}
    images = {str(i): [p.name for p in s] for i, s in sorted(samples.items())}
    first = next(s[0] for s in samples.values() if s)
    return external_manifest(src, "geneval", images, first, prompt_set, n_prompts, prompt_records)


def external_manifest(src: Path, kind: str, images: dict[str, list[str]], first_image: Path, prompt_set: dict[str, Any],
                      n_prompts: int, prompt_records: dict[str, str]) -> dict[str, Any]:
    """The manifest of an adopted folder: what is known (source, prompts, image size, images per prompt) and what is not."""
    with Image.open(first_image) as im:
        width, height = im.size
    return {
        "rdmeval_run_format": FORMAT_VERSION,
        "external": {"source": str(src), "layout": kind, "unknown": list(UNKNOWN), "images": images},
        "request": {
            "model": {"name": "external", "preset": "external", "source": src.name},
            "prompt_set": prompt_set,
            "prompt_indices": list(range(n_prompts)),
            "n_per_prompt": max(len(names) for names in images.values()),
            "resolution": [height, width],
            "seed_policy": None,
            "rng_device": None,
        },
        "prompt_records": prompt_records,
        "environment": environment_info(),
        "complete": False,
    }


def link(target: Path, link: Path) -> None:
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)  # atomic: the link is either the old one or the new one


def drop_stale_links(layout: RunLayout, images: dict[str, list[str]]) -> None:
    """Remove the image links an earlier adoption made that ``images`` no longer has: a sample removed from the
    source (the later ones renumbered down) would otherwise stay linked and be scored twice, or after its removal."""
    keep = {layout.image(int(i), j) for i, names in images.items() for j in range(len(names))}
    for folder in layout.root.iterdir():
        samples = folder / "samples"
        if folder.name.isdigit() and samples.is_dir():
            for p in samples.iterdir():
                if p.is_symlink() and p not in keep:
                    p.unlink()


def prepare_out(src: Path, out: Path) -> RunLayout:
    """``out``'s layout, once it is known to be outside ``src`` and new, empty, or adopted from ``src`` before."""
    if out.resolve() == src or src in out.resolve().parents:
        raise RunStoreError(f"--out {out}: must lie outside {src} (rdmeval does not write into a folder it did not make)")
    layout = RunLayout(out)
    if layout.manifest.exists():
        old = json.loads(layout.manifest.read_text())
        if (old.get("external") or {}).get("source") != str(src):
            raise RunStoreError(f"--out {out} holds another run; give a new or empty folder for the scores of {src}")
    elif out.exists() and any(out.iterdir()):
        raise RunStoreError(f"--out {out} exists, is not empty and holds no run; give a new or empty folder")
    return layout


def write_manifest_if_changed(layout: RunLayout, manifest: dict[str, Any]) -> None:
    """Write the manifest unless the one there describes the same content (so fresh scores stay fresh)."""
    keys = ("external", "request", "prompt_records")
    if layout.manifest.exists():
        old = json.loads(layout.manifest.read_text())
        if {k: old.get(k) for k in keys} == {k: manifest.get(k) for k in keys}:
            return
    atomic_write_json(layout.manifest, manifest)


def adopt_geneval_folder(src: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Make (or refresh) ``out``: a run folder whose images and records link to the GenEval folder ``src``.

    ``out`` must be new, empty, or a folder adopted from the same ``src`` (its caches and scores are kept;
    the manifest is rewritten only when the folder's content changed, so fresh scores stay fresh)."""
    src, out = Path(src).expanduser().resolve(), Path(out).expanduser()
    layout = prepare_out(src, out)
    manifest = describe_folder(src)
    folders = _prompt_folders(src)
    for i, names in manifest["external"]["images"].items():
        folder = folders[int(i)]
        link(folder / "metadata.jsonl", layout.prompt_metadata(int(i)))
        for j, name in enumerate(names):
            link(folder / "samples" / name, layout.image(int(i), j))
    drop_stale_links(layout, manifest["external"]["images"])
    write_manifest_if_changed(layout, manifest)
    return out


def external_source(manifest: dict[str, Any], image: Path) -> str | None:
    """The original file an adopted run's image links to (None for rdmeval's own runs)."""
    if not manifest.get("external") or not image.is_symlink():
        return None
    return os.readlink(image)


__all__ = ["MANIFEST", "adopt_geneval_folder", "describe_folder", "drop_stale_links", "external_manifest", "external_source",
           "is_geneval_folder", "link", "prepare_out", "registered_sets_here", "write_manifest_if_changed"]
