"""The protocol section's text: one setting (ctx_len, seeds, precision, scorer, ...) of one result row.

A result row's ``protocol`` (and ``versions``) is a nested object (:mod:`rdmeval.api.rows`);
:func:`setting` reads one named setting from it as the text the table prints. The provenance
settings (weights, base pipeline, git commit, command) also read the run's ``manifest.json``
(``execution.command`` and ``execution.provenance``). Files are printed by name, never by path
(:func:`rdmeval.provenance.shown_path`).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import pandas as pd

from rdmeval.generators.diffusers_presets import is_diffusers_model
from rdmeval.provenance import shown_command, shown_path
from rdmeval.results.table_model import _int

#: Provenance rows of the protocol section: (key, label).
PROVENANCE_SETTINGS: tuple[tuple[str, str], ...] = (
    ("weights", "weights (file, sha256, naming, dtype)"), ("base", "base pipeline"),
    ("git_commit", "git commit (generation)"), ("command", "command"),
)
SHA_SHOWN = 12  # hex digits of a sha256 printed


def _find_key(d: Any, key: str) -> Any:
    """The first value of ``key`` in a nested dict (depth first)."""
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            found = _find_key(v, key)
            if found is not None:
                return found
    return None


def _first(d: dict[str, Any], *names: str) -> Any:
    for n in names:
        if d.get(n) is not None:
            return d[n]
    return None


def _compact(d: Any, keys: Iterable[str] | None = None) -> str:
    if not isinstance(d, dict):
        return "" if d is None else str(d)
    items = [(k, d[k]) for k in (keys or d.keys()) if k in d and d[k] is not None]
    return ", ".join(f"{k} {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in items)


def _weights_text(model: dict[str, Any]) -> str:
    w = model.get("weights")
    if isinstance(w, dict):
        naming = {"bfl": "BFL", "diffusers": "diffusers"}.get(str(w.get("naming")), w.get("naming"))
        dtypes = w.get("file_dtypes")
        parts = [f"sha256 {str(w['sha256'])[:SHA_SHOWN]}" if w.get("sha256") else "",
                 f"{naming} naming" if naming else "",
                 "/".join(map(str, dtypes)) if isinstance(dtypes, list) and dtypes else ""]
        inner = ", ".join(x for x in parts if x)
        return shown_path(w.get("path") or "?") + (f" ({inner})" if inner else "")
    if isinstance(w, str) and w:
        return shown_path(w)
    if isinstance(model.get("base"), dict):
        return "none: the base pipeline's transformer"
    return ""


def _base_text(model: dict[str, Any], execution: dict[str, Any]) -> str:
    b = model.get("base")
    if not isinstance(b, dict):
        return ""
    if b.get("source") == "hub":
        rev = str(b.get("revision") or "")
        return f"{b.get('repo_id', '?')}" + (f" @ {rev[:SHA_SHOWN]} (hub commit)" if rev else " (hub, commit not recorded)")
    if b.get("source") == "local":
        prov = execution.get("provenance") if isinstance(execution.get("provenance"), dict) else {}
        name = f"folder {shown_path(b.get('path') or '?')}"
        if prov.get("base_sha256"):
            return f"{name} (sha256 {str(prov['base_sha256'])[:SHA_SHOWN]} over {prov.get('base_files', '?')} files)"
        if is_diffusers_model(str(model.get("preset") or "")):  # the one-step field, diffusers:<folder>
            return f"{name} (content not hashed: rdmeval hashes klein's base folder only)"
        return f"{name} (content not hashed: made before rdmeval recorded folder hashes)"
    return str(b.get("source") or "")


def _setting(key: str, row: pd.Series, manifest: dict[str, Any] | None = None) -> str:
    """One protocol setting of one result row, as text ('' when the row does not record it);
    ``manifest``: the run's manifest.json (provenance settings only)."""
    p = row.get("protocol") or {}  # a dict: rows.read_rows decodes the nested fields
    model = p.get("model", {}) if isinstance(p.get("model"), dict) else {}
    execution = (manifest or {}).get("execution") or {}
    if key == "weights":
        return _weights_text(model)
    if key == "base":
        return _base_text(model, execution if isinstance(execution, dict) else {})
    if key == "git_commit":
        commit = str(row.get("git_commit") or ((manifest or {}).get("environment") or {}).get("git_commit") or "")
        sha, dirty, _ = commit.partition("-dirty")
        return (sha[:SHA_SHOWN] + (" (uncommitted changes)" if dirty else "")) if commit else ""
    if key == "command":
        command = execution.get("command") if isinstance(execution, dict) else None
        return shown_command(str(command)) if command else ""
    if key == "prompt set":
        n = _int(row.get("n_prompts"))
        return f"{row.get('benchmark')} v{row.get('benchmark_version')}" + (f", {n:,} prompts" if n else "")
    if key == "definition":
        return str(row.get("benchmark_definition") or "")
    if key == "n_per_prompt":
        return str(p.get("n_per_prompt") or "")
    if key == "ctx_len":
        return str(_first(model, "ctx_len", "max_sequence_length") or p.get("ctx_len") or "")
    if key == "steps":
        return str(_first(model, "steps", "num_inference_steps", "num_steps") or p.get("steps") or "")
    if key == "precision":
        prec = _first(model, "precision", "dtype") or p.get("precision") or ""
        if isinstance(prec, dict):  # the klein regime: name first, then its parts
            name = prec.get("name", "")
            return (f"{name}: " if name else "") + ", ".join(f"{k} {v}" for k, v in prec.items() if k != "name")
        return str(prec)
    if key == "seeds":
        sp = p.get("seed_policy")
        return str(sp.get("formula") or sp.get("kind")) if isinstance(sp, dict) else str(sp or "")
    if key == "rng_device":
        return str(p.get("rng_device") or "")
    if key == "resolution":
        res = p.get("resolution")
        return f"{res[0]}x{res[1]}" if isinstance(res, list) and len(res) == 2 else str(res or "")
    if key == "scorer":
        return f"{row.get('scorer')} v{row.get('scorer_version')}"
    if key == "scorer_settings":
        g = p.get("geneval")
        if isinstance(g, dict):
            det = g.get("detector") or {}
            parts = [_compact(g.get("judge_options"))]
            if isinstance(det, dict) and det:
                parts.append(f"detector {det.get('detector', '?')}"
                             + "".join(f", {k} {shown_path(det[k])}" for k in ("config", "config_builtin", "checkpoint", "mmdet", "mmcv") if k in det))
            return "; ".join(x for x in parts if x)
        s = p.get("scorer")
        if isinstance(s, dict):
            model_src = s.get("model") if isinstance(s.get("model"), dict) else {}
            return "; ".join(x for x in (
                f"model {shown_path(_first(model_src, 'id', 'path') or '?')}" + (f"@{model_src['commit'][:10]}" if model_src.get("commit") else ""),
                f"dtype {s.get('dtype')}" if s.get("dtype") else "", str(s.get("text") or ""), str(s.get("images") or ""),
            ) if x)
        return ""
    if key == "scorer_libs":
        libs = _find_key(p, "scorer_versions")
        return _compact(libs) if isinstance(libs, dict) else ""
    if key == "generation_libs":
        v = row.get("versions") or {}
        return _compact(v, ("torch", "diffusers", "transformers")) if v else ""
    if key == "bootstrap":
        b = _find_key(p, "bootstrap")
        if isinstance(b, dict):
            lvl = b.get("level")
            return (f"{int(round(lvl * 100))}% " if isinstance(lvl, (int, float)) else "") + \
                f"percentile bootstrap, {b.get('n_resamples')} resamples, seed {b.get('seed')}, {b.get('resampling', 'prompts')}"
        return ""
    raise KeyError(key)
