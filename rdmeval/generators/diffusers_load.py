"""Loading a diffusers pipeline for :mod:`rdmeval.generators.diffusers_backend`: source, swap, scheduler.

* the source is a local pipeline folder or a hub id; a hub id is fetched with diffusers' own
  ``DiffusionPipeline.download`` (only the folders model_index.json names; a swapped component's
  weights are skipped, its config kept) and its snapshot commit is recorded;
* the class is the one model_index.json names (diffusers' ``DiffusionPipeline.from_pretrained``);
* a denoiser swap builds the ``unet``/``transformer`` from the base's config without allocating and
  loads the swap file into it strictly (missing / unexpected keys and shape mismatches are one
  error naming the file; there is no fallback to the base's weights);
* a scheduler swap is ``cls.from_config(pipe.scheduler.config, **overrides)``, as the model cards do.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from rdmeval.errors import RdmevalError
from rdmeval.generators.diffusers_presets import DenoiserSwap, SchedulerSwap
from rdmeval.generators.weights import SHOW, WeightsError, read_state_dict, strip_wrapper_prefixes


def _first_line(exc: BaseException) -> str:
    """The error's first line, without pointers to a stack trace that rdmeval does not print."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    line = re.sub(r"\s*Please check out the root cause in the stacktrace above\.?", "", line).strip()
    return f"{type(exc).__name__}: {line}"


def is_local(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or source.count("/") != 1 or Path(source).expanduser().exists()


def resolve_source(source: str, *, variant: str | None, skip: tuple[str, ...] = (), flag: str = "--base") -> tuple[Path, dict[str, Any]]:
    """A local folder for ``source`` and its provenance (``source``: local/hub, path or repo_id + revision)."""
    if is_local(source):
        path = Path(source).expanduser()
        if not (path / "model_index.json").is_file():
            why = "has no model_index.json (not a diffusers pipeline folder)" if path.is_dir() else "no such folder"
            raise RdmevalError(f"{flag} {source}: {why}; give a diffusers pipeline folder or a hub id")
        return path.resolve(), {"source": "local", "path": str(path.resolve())}
    from diffusers import DiffusionPipeline

    try:
        local = Path(DiffusionPipeline.download(source, variant=variant, **{name: None for name in skip}))
    except Exception as exc:  # huggingface_hub / diffusers raise many kinds (offline, gated, 404)
        raise RdmevalError(
            f"{flag} {source}: cannot get the pipeline from the Hugging Face hub ({_first_line(exc)}). Run once with "
            "network access (and `hf auth login` if the repo is gated), or pass a local pipeline folder"
        ) from None
    return local, {"source": "hub", "repo_id": source, "revision": local.name}


def pipeline_class(folder: Path, source: str, expected: str | None, flag: str = "--base") -> str:
    """The pipeline class model_index.json names (checked against a preset's)."""
    try:
        name = json.loads((folder / "model_index.json").read_text()).get("_class_name")
    except (OSError, json.JSONDecodeError):
        raise RdmevalError(f"{flag} {source}: {folder / 'model_index.json'} is unreadable; not a diffusers pipeline folder") from None
    if expected and name != expected:
        raise RdmevalError(f"{flag} {source}: model_index.json names {name!r}, but this preset runs {expected}; "
                           "pass the preset's own pipeline (or use --model diffusers:FOLDER)")
    if not isinstance(name, str):
        raise RdmevalError(f"{flag} {source}: model_index.json names no pipeline class (_class_name)")
    return name


def variant_present(folder: Path, variant: str | None) -> str | None:
    """``variant`` if the folder holds files of it (hub snapshots do; local copies may hold only the default files)."""
    if variant is None:
        return None
    return variant if any(folder.glob(f"*/*.{variant}.*")) else None


def resolve_swap_file(swap: DenoiserSwap, weights: str | None) -> tuple[Path, dict[str, Any]]:
    """The swap's file: ``--weights`` (a local copy) or the published file, fetched from the hub."""
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            of = f" (a copy of {swap.repo_id}/{swap.filename})" if not swap.repo_id.startswith("(") else ""
            raise WeightsError(f"--weights {weights}: no such file{of}; pass the {swap.component} weights file")
        return path.resolve(), {"path": str(path.resolve())}
    from huggingface_hub import hf_hub_download

    try:
        path = Path(hf_hub_download(swap.repo_id, swap.filename))
    except Exception as exc:
        raise WeightsError(
            f"{swap.repo_id}/{swap.filename}: cannot get the {swap.component} weights from the hub ({_first_line(exc)}); "
            "run once with network access, or pass a local copy with --weights"
        ) from None
    return path, {"path": str(path), "repo_id": swap.repo_id, "filename": swap.filename, "revision": path.parent.name}


def load_denoiser(folder: Path, component: str, path: Path, dtype: torch.dtype, target: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build ``component`` from the base's config on the meta device and load ``path`` into it strictly."""
    import diffusers

    try:
        library, cls_name = json.loads((folder / "model_index.json").read_text())[component]
    except (KeyError, ValueError, TypeError):
        raise RdmevalError(f"{target}: the pipeline has no {component!r} component to swap") from None
    cls = getattr(diffusers, cls_name)
    config = cls.load_config(folder, subfolder=component)
    with torch.device("meta"):
        model = cls.from_config(config)
    raw = read_state_dict(path)
    sd, stripped = strip_wrapper_prefixes(raw)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [f"{k} {tuple(sd[k].shape)} vs {tuple(expected[k])}" for k in expected if k in sd and sd[k].shape != expected[k]]
    if missing or unexpected or mismatched:
        parts = [f"{name}: {len(keys)} (first: {', '.join(keys[:SHOW])})" for name, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches (file vs model)", mismatched)) if keys]
        raise WeightsError(f"--weights {path} does not fit the {cls_name} of {target}: " + "; ".join(parts)
                           + ". These weights are for another architecture; rdmeval does not fall back to the base weights")
    model.load_state_dict(sd, strict=True, assign=True)
    model = torch.nn.Module.to(model, dtype=dtype).eval().requires_grad_(False)
    info = {"component": component, "class": cls_name, "stripped_prefixes": stripped, "n_tensors": len(sd),
            "file_dtypes": sorted({str(t.dtype).removeprefix("torch.") for t in sd.values()})}
    return model, info


def swap_scheduler(pipe: Any, swap: SchedulerSwap) -> None:
    import diffusers

    cls = getattr(diffusers, swap.cls)
    pipe.scheduler = cls.from_config(pipe.scheduler.config, **dict(swap.config))


def load_pipeline(folder: Path, *, dtype: torch.dtype, variant: str | None, components: dict[str, Any]) -> Any:
    """``DiffusionPipeline.from_pretrained(folder)`` (the class model_index.json names) in ``dtype``."""
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    bars = [(lib, lib.is_progress_bar_enabled()) for lib in (diffusers_logging, transformers_logging)]
    for lib, _ in bars:  # no "Loading pipeline components" bars in rdmeval's output
        lib.disable_progress_bar()
    try:
        return DiffusionPipeline.from_pretrained(folder, dtype=dtype, variant=variant_present(folder, variant), **components)
    except (OSError, ValueError) as exc:
        raise RdmevalError(f"{folder}: diffusers cannot load this pipeline ({_first_line(exc)})") from None
    finally:
        for lib, enabled in bars:
            if enabled:
                lib.enable_progress_bar()
