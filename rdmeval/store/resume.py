"""Which request differences stop a resume: a user prompt file that moved with the same content does not.

A user prompt file's set is named after the file (``name`` = its stem, ``source`` = its absolute path,
``definition`` = "user file <name>"); its identity is its sha256. When the old and new requests hold
the same bytes under another path, those three location fields are not differences: the run resumes,
and the path used for the new images is recorded in the manifest's ``execution.prompt_source``.
"""

from __future__ import annotations

from typing import Any

LOCATION_FIELDS: tuple[str, ...] = ("prompt_set.source", "prompt_set.name", "prompt_set.definition")


def same_prompt_file(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Both requests read a user prompt file ("file" version) with the same sha256."""
    a, b = old.get("prompt_set") or {}, new.get("prompt_set") or {}
    return a.get("version") == b.get("version") == "file" and bool(a.get("sha256")) and a.get("sha256") == b.get("sha256")


def resume_blockers(diffs: list[str], old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``diffs`` (``diff_requests`` lines, 'field: old -> new') minus a moved prompt file's location fields."""
    if not same_prompt_file(old, new):
        return diffs
    return [d for d in diffs if d.split(": ", 1)[0] not in LOCATION_FIELDS]
