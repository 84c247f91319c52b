"""GenEval's prompt metadata format (``evaluation_metadata.jsonl``), parsed and validated.

The scorer reads these dicts verbatim, so they are kept exactly as in the file (key order
included); validation only rejects lines the official scorer could not judge.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from rdmeval.errors import PromptFileError
from rdmeval.geneval_classes import GENEVAL_OBJECT_NAMES, MMDET_TO_GENEVAL_NAMES
from rdmeval.prompts.schema import Prompt

TAGS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
EXPECTED_COUNTS: dict[str, int] = {
    "single_object": 80,
    "two_object": 99,
    "counting": 80,
    "colors": 94,
    "position": 100,
    "color_attr": 100,
}


def _fail(path: Path | str, lineno: int, msg: str) -> PromptFileError:
    return PromptFileError(f"{path}:{lineno}: {msg}")


def validate_record(rec: Any, path: Path | str, lineno: int) -> dict[str, Any]:
    """Check one GenEval metadata record; raise PromptFileError naming file, line and field."""
    if not isinstance(rec, dict):
        raise _fail(path, lineno, f"expected a JSON object, got {type(rec).__name__}")
    for key in ("tag", "include", "prompt"):
        if key not in rec:
            raise _fail(path, lineno, f"missing field '{key}' (GenEval records need tag, include, prompt)")
    if not isinstance(rec["prompt"], str) or not rec["prompt"].strip():
        raise _fail(path, lineno, "field 'prompt' must be a non-empty string")
    if rec["tag"] not in TAGS:
        raise _fail(path, lineno, f"unknown tag {rec['tag']!r}; expected one of {', '.join(TAGS)}")
    clauses = rec["include"]
    if not isinstance(clauses, list) or not clauses:
        raise _fail(path, lineno, "field 'include' must be a non-empty list of clauses")
    for i, clause in enumerate(clauses):
        _validate_clause(clause, f"include[{i}]", path, lineno)
        if "color" in clause and clause["color"] not in COLORS:
            raise _fail(path, lineno, f"include[{i}].color {clause['color']!r} is not one of {', '.join(COLORS)}")
        if "position" in clause:
            pos = clause["position"]
            if (
                not isinstance(pos, list)
                or len(pos) != 2
                or pos[0] not in RELATIONS
                or not isinstance(pos[1], int)
                or not 0 <= pos[1] < i
            ):
                raise _fail(
                    path,
                    lineno,
                    f"include[{i}].position must be [relation, target_index] with relation in "
                    f"{RELATIONS} and target_index an earlier clause, got {pos!r}",
                )
    for i, clause in enumerate(rec.get("exclude", [])):
        _validate_clause(clause, f"exclude[{i}]", path, lineno)
    return rec


def _validate_clause(clause: Any, where: str, path: Path | str, lineno: int) -> None:
    if not isinstance(clause, dict):
        raise _fail(path, lineno, f"{where} must be an object")
    if not isinstance(clause.get("class"), str):
        raise _fail(path, lineno, f"{where}.class must be a string")
    if clause["class"] not in GENEVAL_OBJECT_NAMES:
        renamed = MMDET_TO_GENEVAL_NAMES.get(clause["class"].strip().lower())
        close = [renamed] if renamed else difflib.get_close_matches(clause["class"], GENEVAL_OBJECT_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise _fail(
            path, lineno,
            f"{where}.class {clause['class']!r} is not one of GenEval's 80 detector classes{hint}; "
            "the detector can never find it, so the prompt could only be judged wrong",
        )
    count = clause.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise _fail(path, lineno, f"{where}.count must be an integer >= 1, got {count!r}")


def parse_geneval_lines(lines: list[str], path: Path | str) -> list[Prompt]:
    prompts: list[Prompt] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise _fail(path, lineno, "empty line (GenEval metadata has one JSON object per line)")
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _fail(path, lineno, f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        validate_record(rec, path, lineno)
        prompts.append(Prompt(index=len(prompts), text=rec["prompt"], tag=rec["tag"], metadata=rec))
    return prompts


def is_geneval_record(rec: Any) -> bool:
    return isinstance(rec, dict) and "include" in rec and "tag" in rec
