"""Images and prompts made by other tools, for PickScore: a pairs file, or a folder of images and a prompts file.

Two inputs, both turned into a run folder (``--out``) as :mod:`rdmeval.store.external` does for
GenEval folders (a manifest marked ``external``, symbolic links to the images, nothing written where
the images are):

- a **pairs file**: ``.csv`` with a header holding the columns ``image`` and ``prompt``, or ``.jsonl``
  with one ``{"image": ..., "prompt": ...}`` object per line; relative image paths are read from the
  pairs file's folder;
- a **folder of images** (``.png``, ``.jpg``, ``.jpeg``, ``.webp``) with a prompts file (any format
  ``rdmeval generate --prompts`` reads): one image per prompt, in the order of the file names' numbers
  (``2.png`` before ``10.png``), the counts must match.

Images with the same prompt text are samples of one prompt (prompt folders in order of first
appearance). Their records are written to ``OUT/<NNNNN>/metadata.jsonl`` (``{"prompt", "index"}``).
A registered prompt set on this machine whose prompts are exactly these texts, in this order, is
recognised; otherwise the texts are the prompt set. Every image must have the first image's size.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

from rdmeval.errors import PromptFileError, RunStoreError
from rdmeval.io import atomic_write_text
from rdmeval.store.external import drop_stale_links, external_manifest, link, prepare_out, registered_sets_here, write_manifest_if_changed
from rdmeval.store.run_store import record_sha256

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
PAIR_FIELDS = ("image", "prompt")


def _pair(rec: Any, where: str, folder: Path) -> tuple[Path, str]:
    if not isinstance(rec, dict) or any(not isinstance(rec.get(k), str) or not rec.get(k).strip() for k in PAIR_FIELDS):
        raise PromptFileError(f"{where}: expected the fields 'image' (a path) and 'prompt' (a non-empty string)")
    image = Path(rec["image"]).expanduser()
    return (image if image.is_absolute() else folder / image), rec["prompt"]


def read_pairs(path: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """(image, prompt) pairs from a .csv (header with image, prompt) or .jsonl file."""
    path = Path(path).expanduser().resolve()
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))  # not text.splitlines(): a quoted prompt may hold a line break
        pairs = [_pair(row, f"{path}:{reader.line_num}", path.parent) for row in reader]
    elif path.suffix.lower() == ".jsonl":
        pairs = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PromptFileError(f"{path}:{n}: not JSON ({exc.msg})") from None
                pairs.append(_pair(rec, f"{path}:{n}", path.parent))
    else:
        raise PromptFileError(f"{path}: a pairs file is .csv (columns image, prompt) or .jsonl ({{\"image\", \"prompt\"}} per line)")
    if not pairs:
        raise PromptFileError(f"{path}: no (image, prompt) pairs")
    return pairs


def _number_key(p: Path) -> tuple[int, str]:
    m = re.search(r"\d+", p.stem)
    return (int(m.group()) if m else -1, p.name)


def folder_pairs(folder: str | os.PathLike[str], prompts_file: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """One image per prompt: the folder's images in the order of their numbers, the file's prompts in order."""
    from rdmeval.prompts.readers import read_prompt_file

    folder = Path(folder).expanduser().resolve()
    images = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_number_key)
    prompts, _ = read_prompt_file(Path(prompts_file).expanduser())
    if len(images) != len(prompts):
        raise RunStoreError(f"{folder} holds {len(images)} images and {prompts_file} {len(prompts)} prompts; one image per "
                            "prompt is expected (or give a pairs file .csv/.jsonl with image and prompt columns)")
    return [(image, p.text) for image, p in zip(images, prompts)]


def _recognise(texts: list[str]) -> dict[str, Any] | None:
    """A registered (non-GenEval) prompt set on this machine with exactly these prompts in this order."""
    for ps in registered_sets_here(geneval=False):
        if [p.text for p in ps.prompts] == texts:
            return {"name": ps.name, "version": ps.version, "sha256": ps.sha256, "source": ps.source, "format": ps.format,
                    "definition": ps.definition, "recognised_by": "the same prompt texts in the same order"}
    return None


def adopt_image_pairs(pairs: list[tuple[Path, str]], source: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Make (or refresh) the run folder ``out`` for ``pairs`` read from ``source`` (a pairs file or an image folder)."""
    src, out = Path(source).expanduser().resolve(), Path(out).expanduser()
    layout = prepare_out(src, out)
    missing = [str(image) for image, _ in pairs if not image.is_file()]
    if missing:
        raise RunStoreError(f"{src}: {len(missing)} images not found, e.g. {', '.join(missing[:3])}")
    groups: dict[str, list[Path]] = {}
    for image, text in pairs:
        groups.setdefault(text, []).append(image.resolve())
    texts = list(groups)
    records = {i: {"prompt": text, "index": i} for i, text in enumerate(texts)}
    known = _recognise(texts)
    prompt_set = known or {
        "name": src.stem, "version": "external", "format": "jsonl", "source": str(src),
        "sha256": hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest(),
        "definition": f"the prompts paired with the images of {src.name} (no registered set matches)",
    }
    images = {str(i): [str(p) for p in groups[text]] for i, text in enumerate(texts)}
    manifest = external_manifest(src, "image-prompt pairs", images, pairs[0][0], prompt_set, len(texts),
                                 {str(i): record_sha256(r) for i, r in records.items()})
    for i, record in records.items():
        path = layout.prompt_metadata(i)
        if not path.is_file() or path.read_text() != json.dumps(record):
            atomic_write_text(path, json.dumps(record))
        for j, image in enumerate(groups[record["prompt"]]):
            link(image, layout.image(i, j))
    drop_stale_links(layout, images)
    write_manifest_if_changed(layout, manifest)
    return out
