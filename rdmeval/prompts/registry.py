"""The registry of named prompt sets (prompts/sets.toml) and ``load_prompt_set``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from rdmeval._assets import asset_dir
from rdmeval.api import Registry
from rdmeval.errors import PromptFileError, RdmevalError
from rdmeval.io import sha256_file
from rdmeval.prompts.coco import DEFINITION_V1, coco_val_prompts
from rdmeval.prompts.readers import read_prompt_file
from rdmeval.prompts.schema import PromptSet
from rdmeval.prompts.sources import RemoteFile, fetch
from rdmeval.specs import SpecError, Where, check_keys, from_mapping, keys_of, read_toml


@dataclass(frozen=True)
class PromptSetSpec:
    name: str
    version: str
    format: str
    description: str
    license: str
    citation: str
    url: str = ""
    filename: str = ""
    sha256: str = ""
    member: str = ""
    local: str = ""
    n_prompts: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def remote(self) -> RemoteFile:
        return RemoteFile(self.name, self.url, self.filename, self.sha256, self.member)


@dataclass(frozen=True)
class _CocoParams:
    """Keys of a ``coco-captions`` set beyond PromptSetSpec's fields (kept in ``PromptSetSpec.extra``)."""

    n_default: int | None = None  # images sampled when no n is given
    seed: int | None = None  # the sampling seed when none is given


def load_registry(path: Path) -> dict[str, PromptSetSpec]:
    """Read and validate a prompt-set registry file (the format of prompts/sets.toml)."""
    raw = read_toml(path)
    top = Where(str(path))
    extra_keys = keys_of(_CocoParams)
    spec_keys = tuple(k for k in keys_of(PromptSetSpec) if k not in ("name", "extra"))  # name: the table's
    specs = {}
    for name, body in raw.items():
        where = top.child(name)
        if not isinstance(body, dict):
            raise SpecError(f"{where}: must be a table ([{name}]), got {body!r}")
        check_keys(body, spec_keys + extra_keys, where)
        extra = {k: v for k, v in body.items() if k in extra_keys}
        from_mapping(_CocoParams, extra, where)
        specs[name] = from_mapping(
            PromptSetSpec, {k: v for k, v in body.items() if k in spec_keys}, where, name=name, extra=extra
        )
    return specs


@lru_cache(maxsize=1)
def registry() -> dict[str, PromptSetSpec]:
    return load_registry(asset_dir("prompts") / "sets.toml")


def get_spec(name: str) -> PromptSetSpec:
    lookup = Registry.of("prompt set", registry(), suffix="; or pass a path to a .jsonl/.txt/.csv file.")
    return lookup.get(name)


def _looks_like_path(name_or_path: str | Path) -> bool:
    s = str(name_or_path)
    return isinstance(name_or_path, Path) or "/" in s or s.endswith((".jsonl", ".json", ".txt", ".csv"))


def load_prompt_set(name_or_path: str | Path, path: str | Path | None = None, **params: Any) -> PromptSet:
    """Load a named set (optionally from a local ``path``: file or folder) or a user prompt file.

    ``params`` are set parameters: for ``coco-val``, ``n`` (default 1000) and ``seed`` (default 0).
    """
    if _looks_like_path(name_or_path) and str(name_or_path) not in registry():
        if params:
            raise RdmevalError(f"parameters {sorted(params)} apply to named sets only, not to {name_or_path}")
        file = Path(name_or_path).expanduser()
        prompts, fmt = read_prompt_file(file)
        return PromptSet(
            name=file.stem,
            version="file",
            prompts=prompts,
            sha256=sha256_file(file, use_cache=False),
            source=str(file.resolve()),
            format=fmt,
            definition=f"user file {file.name}",
        )
    spec = get_spec(str(name_or_path))
    local = Path(path) if path is not None else None
    if spec.local:
        file = asset_dir("prompts") / spec.local
        prompts, fmt = read_prompt_file(file)
        digest = sha256_file(file, use_cache=False)
        if spec.sha256 and digest != spec.sha256:
            raise PromptFileError(
                f"{file}: sha256 {digest} differs from the pinned {spec.sha256} of prompt set '{spec.name}' "
                "(the shipped file was changed; restore it from the repository)"
            )
        source = f"rdmeval:prompts/{spec.local}"
    elif spec.format == "coco-captions":
        return _load_coco(spec, local, params)
    else:
        file, digest = fetch(spec.remote, local)
        prompts, fmt = read_prompt_file(file)
        source = spec.url
    if params:
        raise RdmevalError(f"prompt set '{spec.name}' takes no parameters (got {sorted(params)})")
    if fmt != spec.format:
        raise PromptFileError(f"{file}: expected {spec.format} records for prompt set '{spec.name}', found {fmt}")
    if spec.n_prompts is not None and len(prompts) != spec.n_prompts:
        raise PromptFileError(f"{file}: prompt set '{spec.name}' should hold {spec.n_prompts} prompts, found {len(prompts)}")
    return PromptSet(
        name=spec.name,
        version=spec.version,
        prompts=prompts,
        sha256=digest,
        source=source,
        format=fmt,
        definition=spec.description,
    )


def _load_coco(spec: PromptSetSpec, local: Path | None, params: dict[str, Any]) -> PromptSet:
    unknown = set(params) - {"n", "seed"}
    if unknown:
        raise RdmevalError(f"prompt set '{spec.name}' takes parameters n and seed, not {sorted(unknown)}")
    n = int(params.get("n", spec.extra.get("n_default", 1000)))
    seed = int(params.get("seed", spec.extra.get("seed", 0)))
    file, file_digest = fetch(spec.remote, local)
    prompts = coco_val_prompts(file, n=n, seed=seed)
    content = "\n".join(f"{p.id}\t{p.text}" for p in prompts).encode("utf-8")
    return PromptSet(
        name=spec.name,
        version=spec.version,
        prompts=prompts,
        sha256=hashlib.sha256(content).hexdigest(),
        source=f"{spec.url}#{spec.member}",
        format="jsonl",
        definition=f"{spec.name} {spec.version}: " + DEFINITION_V1.format(n=n, seed=seed),
        params={"n": n, "seed": seed, "annotation_sha256": file_digest},
    )
