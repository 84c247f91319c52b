"""A series of student checkpoints, found from ``--weights DIR_OR_GLOB``, each with its training step.

Accepted names (the step is the number; leading zeros do not matter):

- the trainer's milestones ``step_0000020`` (a file, with or without a suffix, or a folder holding
  one weight file), also ``step-20`` and ``step20``;
- the reference repository's series ``step_000180.pth`` and ``s180.pth``;
- ``checkpoint-180`` / ``checkpoint_180`` (a folder per step, as trainers based on accelerate write);
- a generic weight file (``model.safetensors``, ``diffusion_pytorch_model.safetensors``,
  ``checkpoint.pt``, ``model.pth``, ``model.pt``) inside a folder named as above, e.g. exported
  ``exports/step_0000180/model.safetensors``: the step is then the folder's.

``--weights`` is either

- a glob (``ckpts/*.pth``, ``exports/*/model.safetensors``): every match must be a checkpoint with a
  step name, else the sweep is refused with a message saying the expected names (a match without one that a
  step-named link among the matches points to, ``final.pth`` beside ``step_0001000.pth -> final.pth``, is the
  link's checkpoint);
- a folder of checkpoints (the trainer's output folder): its entries with step names are the series;
  other entries (``losses.txt``, ``metrics.jsonl``, ``config.json``) are listed as left out;
- one checkpoint (a file, or a folder holding one weight file and no step-named entries): a series of one.

Two checkpoints with the same step are an error (which one would the table mean?).
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from rdmeval.errors import RdmevalError
from rdmeval.io import DIGEST_SUFFIX
from rdmeval.preflight import WEIGHT_SUFFIXES
from rdmeval.results.steps import step_label

#: A step name: ``step_0000020``, ``step-20``, ``step20``, ``s180``, ``checkpoint-180``.
STEP_NAME = re.compile(r"^(?:step[_-]?|s|checkpoint[_-])(\d+)$", re.IGNORECASE)
#: The weight file a checkpoint folder holds (exactly one of them).
FOLDER_WEIGHTS: tuple[str, ...] = ("model.safetensors", "diffusion_pytorch_model.safetensors", "checkpoint.pt",
                                   "model.pth", "model.pt")
EXPECTED = ("expected checkpoint names with the training step in them: step_0000020 (the trainer's milestones, "
            "file or folder), step_000180.pth, s180.pth, checkpoint-180/, or a folder so named holding "
            "model.safetensors")


class CheckpointError(RdmevalError):
    """--weights does not name a series of checkpoints; the message says which names are expected."""


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of the series: its step, the weight file to load, and what ``--weights`` matched."""

    step: int
    path: Path  # the weight file (what the generator loads)
    source: Path  # the matched file or folder

    @property
    def label(self) -> str:
        """The model folder of its runs (``runs/step_0000180/<benchmark>/``)."""
        return step_label(self.step)


def parse_step(name: str) -> int | None:
    """The step in a file or folder name (its weight suffix removed), or None when the name has none."""
    stem = name
    for suffix in WEIGHT_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    m = STEP_NAME.match(stem)
    return int(m.group(1)) if m else None


def folder_weight_file(folder: Path) -> Path | None:
    """The one weight file of a checkpoint folder, None when it holds none (two or more: an error)."""
    found = [folder / name for name in FOLDER_WEIGHTS if (folder / name).is_file()]
    if len(found) > 1:
        raise CheckpointError(f"--weights: checkpoint folder {folder} holds {len(found)} weight files "
                              f"({', '.join(p.name for p in found)}); keep one, or pass the file itself")
    return found[0] if found else None


def _step_of_file(path: Path) -> int | None:
    step = parse_step(path.name)
    if step is None and path.name in FOLDER_WEIGHTS:
        step = parse_step(path.parent.name)  # exports/step_0000180/model.safetensors
    return step


def _as_checkpoint(path: Path, what: str) -> Checkpoint:
    """A matched file or folder as a checkpoint, or a CheckpointError saying why it is not one."""
    if path.is_dir():
        weights = folder_weight_file(path)
        if weights is None:
            raise CheckpointError(f"--weights {what}: {path} is a folder without a weight file "
                                  f"(one of {', '.join(FOLDER_WEIGHTS)})")
        step = parse_step(path.name)
    else:
        weights, step = path, _step_of_file(path)
    if step is None:
        raise CheckpointError(f"--weights {what}: cannot tell the training step of {path} from its name; {EXPECTED}. "
                              "Rename or link the files (e.g. ln -s final.pth step_0001000.pth)")
    return Checkpoint(step, weights.resolve(), path)


def _looks_like_checkpoint(path: Path) -> bool:
    """An entry of a folder that could be a checkpoint (a weight file, a step-named file, a folder with weights)."""
    if path.is_dir():
        return folder_weight_file(path) is not None or parse_step(path.name) is not None
    return path.suffix.lower() in WEIGHT_SUFFIXES or parse_step(path.name) is not None


def _series(found: list[Checkpoint], what: str, *, folder: bool = False) -> list[Checkpoint]:
    by_step: dict[int, Checkpoint] = {}
    for ck in found:
        if ck.step in by_step and by_step[ck.step].path != ck.path:
            how = "move one of them out of the folder, or pass a glob that matches one" if folder else "a narrower glob"
            raise CheckpointError(f"--weights {what}: two checkpoints of step {ck.step}: {by_step[ck.step].source} and "
                                  f"{ck.source}; select one of them ({how})")
        by_step[ck.step] = ck
    return [by_step[s] for s in sorted(by_step)]


@dataclass(frozen=True)
class Series:
    """The checkpoints of ``--weights`` in step order, and the folder entries left out (no step name)."""

    checkpoints: list[Checkpoint]
    left_out: list[Path]


def find_checkpoints(spec: str) -> Series:
    """The series ``--weights spec`` names (a glob, a folder of checkpoints, or one checkpoint)."""
    path = Path(spec).expanduser()
    if path.is_file():
        return Series([_as_checkpoint(path, spec)], [])
    if path.is_dir():
        entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
        candidates = [p for p in entries if _looks_like_checkpoint(p)]
        named = [p for p in candidates if parse_step(p.name) is not None]
        if not named and folder_weight_file(path) is not None:  # one checkpoint folder
            return Series([_as_checkpoint(path, spec)], [])
        if not named:
            listing = ", ".join(p.name for p in entries[:8]) + (", ..." if len(entries) > 8 else "") or "nothing"
            raise CheckpointError(f"--weights {spec}: no checkpoint with a step name in this folder (it holds {listing}); "
                                  f"{EXPECTED}")
        left_out = [p for p in candidates if p not in named]
        return Series(_series([_as_checkpoint(p, spec) for p in named], spec, folder=True), left_out)
    matches = sorted(Path(p) for p in glob.glob(str(path)))
    if not matches:
        raise CheckpointError(f"--weights {spec}: no such file or folder, and no file matches it as a glob; "
                              "give a folder of checkpoints or a glob such as 'ckpts/*.pth' (quoted)")
    # a checkpoint's digest beside it (the trainer's step_0000020.pt.sha256) is not a checkpoint: 'runs/x/step_*' matches both
    matched = set(matches)
    matches = [p for p in matches if not (p.name.endswith(DIGEST_SUFFIX) and p.with_name(p.name[: -len(DIGEST_SUFFIX)]) in matched)]
    for p in matches:  # one whose checkpoint is not there (moved away, or the trainer stopped between the two files)
        if p.name.endswith(DIGEST_SUFFIX) and p.is_file() and parse_step(p.name[: -len(DIGEST_SUFFIX)]) is not None:
            raise CheckpointError(f"--weights {spec}: {p} is the sha256 record of {p.name[: -len(DIGEST_SUFFIX)]}, which is not "
                                  f"there; move the record away too, or pass a glob that matches the checkpoints only "
                                  f"(e.g. '{p.parent / 'step_*.pt'}')")
    # the file an odd name was linked from as advised (ln -s final.pth step_0001000.pth) matches too: the link stands for it
    linked = {p.resolve() for p in matches if _step_of_match(p) is not None}
    matches = [p for p in matches if _step_of_match(p) is not None or p.resolve() not in linked]
    return Series(_series([_as_checkpoint(p, spec) for p in matches], spec), [])


def _step_of_match(path: Path) -> int | None:
    return parse_step(path.name) if path.is_dir() else _step_of_file(path)
