"""Model folders of a checkpoint sweep: ``runs/step_0000180/<benchmark>/`` (one folder per training step)."""

from __future__ import annotations

import re

STEP_LABEL = re.compile(r"^step_(\d+)$")


def step_label(step: int) -> str:
    """A checkpoint's model folder: ``step_0000180`` (7 digits, as the trainer's milestones)."""
    return f"step_{int(step):07d}"


def label_step(label: str) -> int | None:
    """The step of a model folder named by :func:`step_label`, else None."""
    m = STEP_LABEL.match(str(label))
    return int(m.group(1)) if m else None


def is_step_label(label: str) -> bool:
    return label_step(label) is not None
