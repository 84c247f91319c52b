"""What the scorers share about the runs they read: refusing incomplete runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from rdmeval.errors import RunStoreError


def listing(title: str, names: Sequence[str], limit: int = 20) -> str:
    """``title (n): a, b, ... (k more)``, showing at most ``limit`` names."""
    shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
    return f"{title} ({len(names)}): {shown}"


def incomplete_run_error(root: os.PathLike[str] | str, coverage: dict[str, Any], consequence: str) -> RunStoreError:
    """The error for a run with missing prompt folders or images (``RunStore.coverage()``).

    ``consequence`` says why scoring it anyway would mislead; the message lists what is missing and
    the two ways out (resume generation, or ``--allow-incomplete``).
    """
    lines = [f"{root} is incomplete: {coverage['present_images']} of {coverage['expected_images']} images present."]
    if coverage["missing_prompt_dirs"]:
        lines.append(listing("missing prompt folders", coverage["missing_prompt_dirs"]))
    if coverage["missing_images"]:
        lines.append(listing("missing images", coverage["missing_images"]))
    lines.append(
        f"{consequence} Finish the run by resuming `rdmeval generate` into the same --out, or pass "
        "--allow-incomplete to score the images present (coverage is then reported next to every number)."
    )
    return RunStoreError("\n".join(lines))
