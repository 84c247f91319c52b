"""Readers for prompt files: GenEval metadata jsonl, generic jsonl, txt and csv."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from rdmeval.errors import PromptFileError
from rdmeval.prompts.geneval import TAGS, is_geneval_record, parse_geneval_lines
from rdmeval.prompts.schema import Prompt

TEXT_FIELDS: tuple[str, ...] = ("prompt", "caption", "text")
ID_FIELDS: tuple[str, ...] = ("id", "image_id", "index", "prompt_id")


def _text_field(rec: dict[str, Any], path: Path, lineno: int) -> str:
    for key in TEXT_FIELDS:
        if key in rec:
            value = rec[key]
            if not isinstance(value, str) or not value.strip():
                raise PromptFileError(f"{path}:{lineno}: field '{key}' must be a non-empty string")
            return value
    raise PromptFileError(
        f"{path}:{lineno}: missing field 'prompt' (a prompt record needs one of {', '.join(TEXT_FIELDS)})"
    )


def _id_of(rec: dict[str, Any]) -> str | None:
    for key in ID_FIELDS:
        if key in rec and rec[key] is not None:
            return str(rec[key])
    return None


def _check_unique_ids(prompts: list[Prompt], linenos: list[int], path: Path) -> None:
    seen: dict[str, int] = {}
    for p, lineno in zip(prompts, linenos):
        if p.id is None:
            continue
        if p.id in seen:
            raise PromptFileError(
                f"{path}:{lineno}: duplicate index/id {p.id!r} (first seen on line {seen[p.id]}); "
                "every prompt needs a unique id"
            )
        seen[p.id] = lineno


def read_jsonl(text: str, path: Path) -> tuple[list[Prompt], str]:
    """Parse a jsonl prompt file. Returns (prompts, format) with format 'geneval' or 'jsonl'."""
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise PromptFileError(f"{path}: the file holds no prompts")
    try:
        first_rec = json.loads(first)
    except json.JSONDecodeError as exc:
        lineno = lines.index(first) + 1
        raise PromptFileError(f"{path}:{lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
    if is_geneval_record(first_rec):
        return parse_geneval_lines(lines, path), "geneval"
    prompts: list[Prompt] = []
    linenos: list[int] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise PromptFileError(f"{path}:{lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(rec, dict):
            raise PromptFileError(f"{path}:{lineno}: expected a JSON object with a 'prompt' field")
        tag = rec.get("tag")
        if tag is not None and not isinstance(tag, str):
            raise PromptFileError(f"{path}:{lineno}: field 'tag' must be a string")
        if "include" in rec and tag not in TAGS:
            raise PromptFileError(f"{path}:{lineno}: unknown tag {tag!r}; expected one of {', '.join(TAGS)}")
        prompts.append(
            Prompt(index=len(prompts), text=_text_field(rec, path, lineno), tag=tag, id=_id_of(rec), metadata=rec)
        )
        linenos.append(lineno)
    _check_unique_ids(prompts, linenos, path)
    return prompts, "jsonl"


def read_txt(text: str, path: Path) -> list[Prompt]:
    prompts = [
        Prompt(index=i, text=line.strip())
        for i, line in enumerate(ln for ln in text.splitlines() if ln.strip())
    ]
    if not prompts:
        raise PromptFileError(f"{path}: the file holds no prompts")
    return prompts


def read_csv(text: str, path: Path) -> list[Prompt]:
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    column = next((c for c in TEXT_FIELDS if c in fields), None)
    if column is None:
        raise PromptFileError(
            f"{path}:1: no prompt column; the header needs one of {', '.join(TEXT_FIELDS)} (found {fields})"
        )
    prompts: list[Prompt] = []
    linenos: list[int] = []
    for row in reader:
        lineno = reader.line_num
        rec = {k: v for k, v in row.items() if k is not None}
        prompts.append(
            Prompt(
                index=len(prompts),
                text=_text_field({column: rec[column]}, path, lineno),
                tag=rec.get("tag") or None,
                id=_id_of({k: v for k, v in rec.items() if v not in (None, "")}),
                metadata=rec,
            )
        )
        linenos.append(lineno)
    if not prompts:
        raise PromptFileError(f"{path}: the file holds no prompts")
    _check_unique_ids(prompts, linenos, path)
    return prompts


def read_prompt_file(path: Path) -> tuple[list[Prompt], str]:
    """Read any supported prompt file; returns (prompts, format)."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: a leading UTF-8 BOM is dropped, not kept in prompt 1
    except FileNotFoundError:
        raise PromptFileError(f"{path}: no such prompt file") from None
    except UnicodeDecodeError as exc:
        raise PromptFileError(f"{path}: not UTF-8 text ({exc})") from None
    if suffix in (".jsonl", ".json"):
        return read_jsonl(text, path)
    if suffix == ".txt":
        return read_txt(text, path), "txt"
    if suffix == ".csv":
        return read_csv(text, path), "csv"
    raise PromptFileError(f"{path}: unsupported prompt file type '{suffix}'; use .jsonl, .txt or .csv")
