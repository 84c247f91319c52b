"""Milestone checkpoints of a run folder, and the export of the student to ``model.safetensors``.

A run folder holds ``step_XXXXXXX.pt`` (7-digit step; written every ``save_freq`` steps and at the
last step, never overwritten), ``losses.txt`` and ``metrics.jsonl``. Each checkpoint is the full
:meth:`Trainer.state_dict` (model, optimizer, step, RNG states, config), streamed by ``torch.save``
into a hidden temporary file beside it, fsynced and renamed: a run killed at any instant leaves
only complete checkpoints (and perhaps a temporary file, or the digest of one not renamed in yet,
both ignored), and resumes from the newest.
Beside each, ``step_XXXXXXX.pt.sha256`` records the sha256 of the bytes written (``sha256sum`` format);
resume and export check it, since ``torch.load`` reads a damaged byte inside a tensor without an error.

``export_student`` turns a FLUX checkpoint into the file the released student ships as: bf16
tensors, Black Forest Labs' key names, each prefixed ``model.`` (what ``rdmeval generate --model
student --weights`` reads strictly).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from rdmeval.io import digest_record, read_digest, sha256_file
from rdmeval.io.atomic import TEMP_PREFIX, TEMP_SUFFIX, atomic_write_text
from rdmeval.distill.trainer import CHECKPOINT_FORMAT, CheckpointError

MILESTONE = re.compile(r"^step_(\d{7})\.pt$")
EXPORT_FORMAT = "rdmeval.distill.export/1"


def milestone_path(out: str | os.PathLike[str], step: int) -> Path:
    return Path(out) / f"step_{step:07d}.pt"


def list_milestones(out: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """The complete checkpoints of a run folder, oldest first (temporary files are not listed)."""
    folder = Path(out)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := MILESTONE.match(p.name)) and p.is_file()]
    return sorted(found)


def newest_milestone(out: str | os.PathLike[str]) -> tuple[int, Path] | None:
    found = list_milestones(out)
    return found[-1] if found else None


class _HashingWriter:
    """A binary file that hashes what is written through it (the digest costs no second read of the file)."""

    def __init__(self, fh: Any):
        self.fh, self.sha256 = fh, hashlib.sha256()

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """``torch.save`` streamed to a temporary file beside ``path``, fsynced, then renamed into place; the sha256 of
    the bytes written goes to its record (``rdmeval.io.digest_record``, ``sha256sum`` format) first, so a checkpoint in place always has its digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            writer = _HashingWriter(fh)
            torch.save(obj, writer)
            fh.flush()
            os.fsync(fh.fileno())
        atomic_write_text(digest_record(path), f"{writer.sha256.hexdigest()}  {path.name}\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def verify_checkpoint(path: Path) -> None:
    """Refuse a checkpoint whose bytes differ from the sha256 recorded when it was written (damaged on disk or in a
    copy: torch reads a flipped byte inside a tensor without an error). One without a digest is not checked; a link
    without one beside it is checked against the digest beside the file it links to."""
    recorded = digest_record(path)
    if not recorded.is_file() and path.is_symlink():
        recorded = digest_record(path.resolve())
    if not recorded.is_file():
        return
    want = read_digest(recorded)
    if want is None:  # the record itself is damaged: the checkpoint may be fine
        raise CheckpointError(
            f"{recorded} does not hold a sha256 (64 hex digits, then the file name), so {path.name} cannot be checked: "
            f"restore it from a good copy, or delete it to read {path.name} without the check"
        )
    got = sha256_file(path, use_cache=False)  # a cache keyed by size and mtime would not see damage
    if got != want:
        step = MILESTONE.match(path.name)
        older = [(s, p.name) for s, p in list_milestones(path.parent) if step and s < int(step.group(1))]
        then = (f"; the milestone before it is {older[-1][1]} (train --resume then continues from it; export --step "
                f"{older[-1][0]} picks it)") if older else ""
        raise CheckpointError(
            f"{path} is damaged: its sha256 {got[:12]}... differs from {want[:12]}... recorded in {recorded.name} when it "
            f"was written. Copy it again from a good copy, or move it (and {recorded.name}) out of the folder{then}. "
            f"If you replaced it on purpose with another good file, replace {recorded.name} with that file's record (or delete it)"
        )


def save_milestone(state: dict[str, Any], out: str | os.PathLike[str]) -> Path:
    """Write ``state`` (a Trainer.state_dict) as the milestone of its step; an existing one is never replaced."""
    path = milestone_path(out, int(state["step"]))
    if path.exists():
        raise CheckpointError(f"{path} already exists; milestones are never overwritten (resume from the newest, or use a new --out)")
    return atomic_torch_save(state, path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path} is not a torch.save checkpoint (not a zip archive, or truncated); pass a run folder or one of its step_XXXXXXX.pt milestones"
        )
    verify_checkpoint(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read with weights_only=True ({exc})") from exc


def resolve_checkpoint(source: str | os.PathLike[str], step: int | None = None) -> Path:
    """A checkpoint file, or a run folder's milestone (``step``, default the newest)."""
    path = Path(source).expanduser()
    if path.is_file():
        if step is not None:
            raise CheckpointError(f"--step {step} picks a milestone of a run folder; {path} is already a checkpoint file")
        return path
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such run folder or checkpoint file")
    found = dict(list_milestones(path))
    if not found:
        raise CheckpointError(f"{path} holds no step_XXXXXXX.pt checkpoint; train first with rdmeval train --out {path}")
    if step is None:
        return found[max(found)]
    if step not in found:
        raise CheckpointError(f"{path} has no checkpoint of step {step}; it has steps {', '.join(map(str, sorted(found)))}")
    return found[step]


def export_student(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the FLUX student of ``checkpoint`` as ``out`` (bf16, BFL names, ``model.`` prefix). Returns a summary."""
    from safetensors.torch import save_file

    from rdmeval.generators.weights import diffusers_to_bfl

    path = Path(checkpoint)
    target = Path(out)
    if target.is_dir():
        raise CheckpointError(f"--out {target} is a folder; pass the .safetensors file to write, e.g. {target / 'model.safetensors'}")
    if MILESTONE.match(target.name) or (target.exists() and target.resolve() == path.resolve()):
        raise CheckpointError(
            f"--out {target} would replace a training checkpoint (milestones are never overwritten); "
            f"write the export beside it, e.g. --out {target.parent / 'model.safetensors'}"
        )
    state = read_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a checkpoint of rdmeval train (no format {CHECKPOINT_FORMAT!r}); export reads a run folder or one "
            "of its step_XXXXXXX.pt milestones (a student weights file such as a released .pth goes to rdmeval generate "
            "--weights as it is)"
        )
    config = state.get("config") or {}
    if config.get("model") != "flux":
        raise CheckpointError(
            f"{path} is a checkpoint of config {config.get('name')!r} (model {config.get('model')!r}); only FLUX students export"
        )
    bfl = diffusers_to_bfl({k: v for k, v in state["model"].items()})
    tensors = {f"model.{k}": v.detach().to(torch.bfloat16).contiguous() for k, v in sorted(bfl.items())}
    meta = {"format": EXPORT_FORMAT, "config": str(config.get("name")), "step": str(int(state["step"])), "source": path.name}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"path": str(target), "tensors": len(tensors), "step": int(state["step"]), "config": config.get("name")}
