"""The result schema: one row per (run, scorer, category, metric), provenance on every row.

Scorers write ``<run>/scores/<scorer>/summary.parquet`` (+ ``summary.json``) with these columns;
``rdmeval table`` renders tables from these rows only, never from hand-typed numbers.

``protocol`` and ``versions`` are nested objects: dicts in memory, JSON objects in ``summary.json``.
Parquet has no free-form nested type, so there (only there) they are JSON text with sorted keys;
:func:`read_rows` decodes them back, so a reader of the rows gets dicts and never decodes twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path
from typing import Any, Iterable, TypedDict

import pandas as pd

from rdmeval import __version__
from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_bytes, atomic_write_json


class ResultRow(TypedDict, total=False):
    run_id: str              # the run directory's path relative to the run root (or absolute)
    model: str               # generator preset name (teacher / naive / student / dummy ...)
    model_config_sha256: str # hash of the manifest's request.model (weights hashes, steps, ctx_len ...)
    benchmark: str           # prompt set name (geneval, pickapic-test, coco-val, ...)
    benchmark_version: str
    benchmark_sha256: str
    benchmark_definition: str
    scorer: str              # geneval-mmdet, pickscore
    scorer_version: str
    category: str            # task name for GenEval, "overall", or "all"
    metric: str              # accuracy, overall, pickscore_mean, pct_correct_images, ...
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int                   # images (or prompts) behind the number
    n_prompts: int
    coverage: float          # present / expected images (1.0 for complete runs)
    complete: bool
    higher_is_better: bool
    protocol: dict[str, Any] # ctx_len, steps, seeds, rng device, precision, scorer options ...
    rdmeval_version: str
    git_commit: str
    versions: dict[str, Any] # library versions
    timestamp: str


RESULT_COLUMNS: tuple[str, ...] = tuple(ResultRow.__annotations__)
#: The fields that hold nested objects (stored as JSON text in parquet).
NESTED_COLUMNS: tuple[str, ...] = ("protocol", "versions")


def nested_to_text(value: Any) -> Any:
    """The parquet form of a nested field: JSON text with sorted keys (None stays None; text is kept as given)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def nested_from_text(value: Any, where: str = "result rows") -> dict[str, Any]:
    """A nested field as a dict: decodes the parquet JSON text (None, NaN or "" -> {})."""
    if isinstance(value, dict):
        return value
    if value is None or value == "" or (isinstance(value, float) and value != value):
        return {}
    try:
        out = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        raise RdmevalError(f"{where}: a nested field holds {str(value)[:60]!r}, not a JSON object; rescore the run") from None
    if not isinstance(out, dict):
        raise RdmevalError(f"{where}: a nested field holds {str(value)[:60]!r}, not a JSON object; rescore the run")
    return out


def provenance_from_run(manifest: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Row fields shared by every number computed from one run directory."""
    req = manifest.get("request", {})
    model = req.get("model", {})
    ps = req.get("prompt_set", {})
    env = manifest.get("environment", {})
    protocol = {
        "n_per_prompt": req.get("n_per_prompt"),
        "seed_policy": req.get("seed_policy"),
        "rng_device": req.get("rng_device"),
        "resolution": req.get("resolution"),
        "model": {k: v for k, v in model.items() if k not in ("weights_sha256",)},
    }
    return {
        "run_id": run_id,
        "model": str(model.get("preset") or model.get("name", "?")),
        "model_config_sha256": hashlib.sha256(json.dumps(model, sort_keys=True).encode()).hexdigest(),
        "benchmark": ps.get("name", "?"),
        "benchmark_version": str(ps.get("version", "?")),
        "benchmark_sha256": ps.get("sha256", ""),
        "benchmark_definition": ps.get("definition", ""),
        "protocol": protocol,
        "rdmeval_version": __version__,
        "git_commit": env.get("git_commit", ""),
        "versions": dict(env.get("versions") or {}),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_rows(rows: Iterable[dict[str, Any]], parquet_path: str | Path) -> pd.DataFrame:
    """Write rows (missing columns filled with None) to parquet and a JSON twin, atomically.

    ``protocol`` and ``versions`` are JSON text in the parquet file and JSON objects in the twin.
    Returns the frame as written to parquet.
    """
    rows = [{k: nested_to_text(v) if k in NESTED_COLUMNS else v for k, v in row.items()} for row in rows]
    df = pd.DataFrame(rows)
    for col in RESULT_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df[list(RESULT_COLUMNS) + [c for c in df.columns if c not in RESULT_COLUMNS]]
    parquet_path = Path(parquet_path)
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(parquet_path, buf.getvalue())
    records = json.loads(df.to_json(orient="records"))
    for record in records:
        for col in NESTED_COLUMNS:
            if record.get(col) is not None:
                record[col] = nested_from_text(record[col], str(parquet_path))
    atomic_write_json(parquet_path.with_suffix(".json"), records)
    return df


def _read_parquet(path: str | Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise RdmevalError(f"result rows file not found: {path} (score the run first: `rdmeval score ...`)") from None
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise RdmevalError(f"{path} is not a readable result rows parquet file: {exc}") from None
    for col in NESTED_COLUMNS:  # the one place the parquet JSON text becomes objects again
        if col in df.columns:
            df[col] = pd.Series([nested_from_text(v, str(path)) for v in df[col]], index=df.index, dtype=object)
    return df


def read_rows(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate result rows files (written by :func:`write_rows`); a missing or unreadable one is an error.

    ``protocol`` and ``versions`` come back as dicts.
    """
    frames = [_read_parquet(p) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(RESULT_COLUMNS))
