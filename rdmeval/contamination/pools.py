"""Training-pool readers: every source kind streamed as chunks of (row number, id, text).

Text files, jsonl and csv are read line by line and parquet batch by batch, so pools larger than
memory work. A COCO caption annotation file is one JSON document and is loaded whole (the
train2014 captions are ~80 MB): ``captions = "first"`` keeps the first caption of each image in
annotation order with images sorted by id (RDM's ``build_coco_pairs``; 82,783 rows for
train2014), ``"all"`` keeps every caption, sorted by image id and then annotation order.
A ``prompt_set`` source is a registered prompt set (``load_prompt_set``) or prompt file; a
``geneval_templates`` source generates GenEval-template prompts with its own seed.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdmeval.contamination.pool_spec import PoolSource, PoolSpecError
from rdmeval.errors import PromptFileError, RdmevalError, require
from rdmeval.prompts.coco import first_captions
from rdmeval.prompts.readers import TEXT_FIELDS

ID_FIELDS: tuple[str, ...] = ("id", "image_id", "index", "prompt_id")
DEFAULT_CHUNK = 8192


@dataclass
class PoolChunk:
    """Consecutive rows of one source: ``texts[i]`` is row ``start + i`` of the source."""

    source: str
    start: int
    ids: list[str]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def _chunks(source: str, rows: Iterator[tuple[str, str]], size: int) -> Iterator[PoolChunk]:
    ids: list[str] = []
    texts: list[str] = []
    start = 0
    for rid, text in rows:
        ids.append(rid)
        texts.append(text)
        if len(texts) >= size:
            yield PoolChunk(source, start, ids, texts)
            start += len(texts)
            ids, texts = [], []
    if texts:
        yield PoolChunk(source, start, ids, texts)


def _pick(fields: list[str] | set[str], wanted: str | None, defaults: tuple[str, ...], where: str, what: str) -> str | None:
    if wanted:
        if wanted not in fields:
            raise PoolSpecError(f"{where}: no {what} field '{wanted}' (found {sorted(fields)}); fix 'field'/'id_field' in the spec")
        return wanted
    return next((f for f in defaults if f in fields), None)


def _open(path: Path, where: str):
    try:
        return open(path, encoding="utf-8-sig", newline="")  # -sig: a leading BOM is not part of row 1
    except FileNotFoundError:
        raise PoolSpecError(f"{where}: no such file {path} (set the path in the spec or with --set NAME.path=FILE)") from None


def _txt_rows(src: PoolSource) -> Iterator[tuple[str, str]]:
    assert src.path is not None
    with _open(src.path, f"source '{src.name}'") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.rstrip("\r\n")
            if text.strip():
                yield str(lineno), text


def _jsonl_rows(src: PoolSource) -> Iterator[tuple[str, str]]:
    assert src.path is not None
    text_field: str | None = None
    id_field: str | None = None
    with _open(src.path, f"source '{src.name}'") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{src.path}:{lineno} (source '{src.name}')"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PoolSpecError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(rec, dict):
                raise PoolSpecError(f"{where}: expected a JSON object per line")
            if text_field is None:
                text_field = _pick(set(rec), src.field, TEXT_FIELDS, where, "text")
                if text_field is None:
                    raise PoolSpecError(f"{where}: no text field; records need one of {TEXT_FIELDS} or set field = \"...\"")
                id_field = _pick(set(rec), src.id_field, ID_FIELDS, where, "id")
            text = rec.get(text_field)
            if not isinstance(text, str):
                raise PoolSpecError(f"{where}: field '{text_field}' must be a string")
            rid = rec.get(id_field) if id_field else None
            yield (str(rid) if rid is not None else str(lineno)), text


def _csv_rows(src: PoolSource) -> Iterator[tuple[str, str]]:
    assert src.path is not None
    with _open(src.path, f"source '{src.name}'") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        where = f"{src.path}:1 (source '{src.name}')"
        text_field = _pick(fields, src.field, TEXT_FIELDS, where, "text")
        if text_field is None:
            raise PoolSpecError(f"{where}: no text column; the header needs one of {TEXT_FIELDS} or set field = \"...\"")
        id_field = _pick(fields, src.id_field, ID_FIELDS, where, "id")
        for row in reader:
            text = row.get(text_field) or ""
            rid = row.get(id_field) if id_field else None
            yield (rid if rid else str(reader.line_num)), text


def _parquet_rows(src: PoolSource, batch: int) -> Iterator[tuple[str, str]]:
    assert src.path is not None
    pq = require("pyarrow.parquet", "audit", "Reading parquet pools")
    where = f"{src.path} (source '{src.name}')"
    try:
        pf = pq.ParquetFile(src.path)
    except FileNotFoundError:
        raise PoolSpecError(f"{where}: no such file (set the path in the spec or with --set NAME.path=FILE)") from None
    except Exception as exc:  # pyarrow raises ArrowInvalid for non-parquet input
        raise PoolSpecError(f"{where}: not a readable parquet file ({exc})") from None
    fields = list(pf.schema_arrow.names)
    text_field = _pick(fields, src.field, TEXT_FIELDS, where, "text")
    if text_field is None:
        raise PoolSpecError(f"{where}: no text column; columns are {fields}; set field = \"...\"")
    id_field = _pick(fields, src.id_field, ID_FIELDS, where, "id")
    columns = [text_field] + ([id_field] if id_field else [])
    row = 0
    for rb in pf.iter_batches(batch_size=batch, columns=columns):
        texts = rb.column(text_field).to_pylist()
        ids = rb.column(id_field).to_pylist() if id_field else [None] * len(texts)
        for rid, text in zip(ids, texts):
            row += 1
            yield (str(rid) if rid is not None else str(row)), text if isinstance(text, str) else ""


def coco_captions(path: Path, mode: str = "first", where: str = "") -> list[tuple[str, str]]:
    """(id, caption) rows of a COCO caption annotation file.

    ``first``: one row per image (its first caption in annotation order, stripped), sorted by
    image id; id = image id. ``all``: every caption, sorted by image id then annotation order;
    id = "image_id:annotation_id".
    """
    where = where or str(path)
    if not Path(path).is_file():
        raise PoolSpecError(f"{where}: no such file {path} (set the path in the spec or with --set NAME.path=FILE)")
    if mode == "first":  # the one rule rdmeval uses for COCO captions (prompts/coco.py, RDM's build_coco_pairs)
        try:
            return [(str(image_id), caption) for image_id, caption in first_captions(Path(path))]
        except PromptFileError as exc:
            raise PoolSpecError(f"{where}: {exc}") from None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise PoolSpecError(f"{where}: {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise PoolSpecError(f"{where}: {path} is not a COCO caption file (no 'annotations' list)")
    rows: list[tuple[int, int, str, str]] = []
    for order, ann in enumerate(data["annotations"]):
        try:
            image_id, caption = int(ann["image_id"]), str(ann["caption"])
        except (KeyError, TypeError, ValueError):
            raise PoolSpecError(f"{where}: {path} annotations[{order}] needs 'image_id' and 'caption'") from None
        rows.append((image_id, order, str(ann.get("id", order)), caption.strip()))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(f"{image_id}:{ann_id}", caption) for image_id, _, ann_id, caption in rows]


def prompt_set_rows(src: PoolSource) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, text, metadata) rows of a prompt_set source."""
    from rdmeval.prompts import load_prompt_set

    name = src.prompt_set or str(src.path)
    try:
        ps = load_prompt_set(name, path=src.path) if src.prompt_set else load_prompt_set(src.path)  # type: ignore[arg-type]
    except RdmevalError as exc:
        raise type(exc)(
            f"source '{src.name}' (prompt set {name}): {exc} "
            f"[offline: --set {src.name}.path=FOLDER_OR_FILE or RDMEVAL_PROMPTS_PATH]"
        ) from None
    return [(p.id if p.id is not None else str(p.index), p.text, p.metadata) for p in ps.prompts]


def template_rows(src: PoolSource) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, text, metadata) rows of a geneval_templates source (classes from ``classes_from``)."""
    from rdmeval.contamination.structure import vocabulary_from_prompts
    from rdmeval.contamination.templates import geneval_template_records
    from rdmeval.prompts import load_prompt_set

    try:
        classes_ps = load_prompt_set(src.classes_from, path=src.path)
    except RdmevalError as exc:
        raise type(exc)(
            f"source '{src.name}' needs GenEval's class names from prompt set '{src.classes_from}': {exc} "
            f"[offline: --set {src.name}.path=FOLDER_OR_FILE]"
        ) from None
    classes = vocabulary_from_prompts(classes_ps.prompts)
    records = geneval_template_records(classes, seed=src.seed, n_per_task=src.n_per_task)
    return [(f"t{src.seed}-{i}", r["prompt"], r) for i, r in enumerate(records)]


def iter_source(src: PoolSource, chunk_size: int = DEFAULT_CHUNK) -> Iterator[PoolChunk]:
    """Stream one source as chunks; checks ``expected_rows`` when the source is exhausted."""
    if src.kind == "txt":
        rows: Iterator[tuple[str, str]] = _txt_rows(src)
    elif src.kind == "jsonl":
        rows = _jsonl_rows(src)
    elif src.kind == "csv":
        rows = _csv_rows(src)
    elif src.kind == "parquet":
        rows = _parquet_rows(src, chunk_size)
    elif src.kind == "coco":
        assert src.path is not None
        rows = iter(coco_captions(src.path, src.captions, f"source '{src.name}'"))
    elif src.kind == "prompt_set":
        rows = ((i, t) for i, t, _ in prompt_set_rows(src))
    elif src.kind == "geneval_templates":
        rows = ((i, t) for i, t, _ in template_rows(src))
    else:  # pragma: no cover - kinds are validated when the spec is parsed
        raise PoolSpecError(f"source '{src.name}': unknown kind {src.kind!r}")
    n = 0
    for chunk in _chunks(src.name, rows, chunk_size):
        n += len(chunk)
        yield chunk
    if src.expected_rows is not None and n != src.expected_rows:
        raise PoolSpecError(
            f"source '{src.name}' ({src.path or src.prompt_set}): read {n} rows but the spec expects "
            f"expected_rows = {src.expected_rows}. Check that the file is the right one "
            f"(e.g. captions_train2014.json, captions = \"{src.captions}\") or drop the check with --set {src.name}.expected_rows=0"
        )
