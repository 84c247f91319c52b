"""Preflight: find every input a command needs before any model loads or any image is made.

``rdmeval reproduce`` (and ``generate``, ``score``) first resolve each input: prompt sets, the base
pipeline, the student weights, the detector config and checkpoint, the CLIP color weights, the
PickScore model and processor. An input is *missing* when it is neither a local file nor in a cache
and downloads are off (``RDMEVAL_OFFLINE`` / ``HF_HUB_OFFLINE``), or when a path given for it does not
exist. Everything missing is reported together, each with the flag that provides it, so one run of
the command (or ``rdmeval reproduce --check``) lists all of them. Online, an input that is not cached
counts as available: it is downloaded when needed (nothing here touches the network).
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from rdmeval.cache import cache_dir
from rdmeval.errors import RdmevalError

GO_ONLINE = "or run with network access (unset RDMEVAL_OFFLINE and HF_HUB_OFFLINE)"
#: Files rdmeval accepts as student weights (``rdmeval.generators.weights`` reads them).
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


@dataclass(frozen=True)
class Missing:
    """One input that is not available: what it is, why, and the flag (or step) that provides it."""

    what: str
    why: str
    fix: str

    def line(self) -> str:
        return f"{self.what}: {self.why}; {self.fix}"


class PreflightError(RdmevalError):
    """Inputs are missing; the message lists every one of them."""

    def __init__(self, missing: list[Missing], command: str):
        self.missing = missing
        if len(missing) == 1:  # one line, as every other error
            super().__init__(f"{command}: 1 input missing (nothing was loaded or generated): {missing[0].line()}")
            return
        lines = "\n".join(f"  - {m.line()}" for m in missing)
        super().__init__(f"{command}: {len(missing)} inputs missing (nothing was loaded or generated):\n{lines}")


@dataclass
class Preflight:
    """What was checked and what is missing; :meth:`raise_if_missing` stops the command."""

    command: str
    checked: list[str] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)

    def add(self, what: str, problem: Missing | None) -> None:
        self.checked.append(what)
        if problem is not None:
            self.missing.append(problem)

    def raise_if_missing(self) -> None:
        if self.missing:
            raise PreflightError(self.missing, self.command)

    def line(self) -> str:
        return f"{self.command}: all {len(self.checked)} inputs are available ({', '.join(self.checked)})"


def offline() -> bool:
    return bool(os.environ.get("RDMEVAL_OFFLINE") or os.environ.get("HF_HUB_OFFLINE"))


def _hub_cached(repo_id: str, filenames: tuple[str, ...]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, name), str) for name in filenames)


def _looks_like_hub_id(text: str) -> bool:
    return not text.startswith(("/", ".", "~")) and text.count("/") == 1 and not Path(text).exists()


# ----------------------------------------------------------------------------- the inputs


def check_prompt_set(name: str, local: str | None, *, what: str, flag: str) -> Missing | None:
    """A registered set (packaged, local copy, $RDMEVAL_PROMPTS_PATH, cache, or downloadable) or a user file.

    ``flag`` is how the command that prints the hint takes a local copy (``--prompts-file PATH`` for
    ``generate``, ``--prompts-file BENCHMARK=PATH`` for ``reproduce``)."""
    from rdmeval.prompts.registry import _looks_like_path, get_spec, registry
    from rdmeval.prompts.sources import prompts_search_path

    if _looks_like_path(name) and name not in registry():
        if Path(name).expanduser().exists():
            return None  # present: reading it names what is wrong with it, if anything
        return Missing(what, f"no such file {name}", "check the path (a .jsonl/.txt/.csv prompt file)")
    try:
        spec = get_spec(name)
    except RdmevalError as exc:
        return Missing(what, str(exc), "use a name from `rdmeval prompts list` or a prompt file")
    if spec.local:
        return None
    names = {spec.filename} | ({Path(spec.member).name} if spec.member else set())
    if local is not None:
        p = Path(local).expanduser()
        if p.is_file() or any((p / n).is_file() for n in names):
            return None
        why = f"{local} is a folder without {spec.filename}" if p.is_dir() else f"no such file or folder {local}"
        return Missing(what, why, f"pass {flag} to a copy of {spec.url}")
    if any((folder / spec.filename).is_file() for folder in prompts_search_path()):
        return None
    if (cache_dir() / "prompts" / spec.filename).is_file() or not offline():
        return None
    return Missing(what, "not cached and downloads are off",
                   f"download {spec.url} and pass {flag} (or add its folder to RDMEVAL_PROMPTS_PATH), {GO_ONLINE}")


def check_base(base: str) -> Missing | None:
    """The base pipeline: a folder holding model_index.json, or a hub id (cached, or fetched online)."""
    what = f"base pipeline {base}"
    if not _looks_like_hub_id(base):
        p = Path(base).expanduser()
        if (p / "model_index.json").is_file():
            return None
        why = f"{p} has no model_index.json (not a diffusers pipeline folder)" if p.is_dir() else f"no such folder {p}"
        return Missing(what, why, "pass --base FOLDER (a diffusers FLUX.2 [klein] pipeline folder) or a hub id")
    if not offline() or _hub_cached(base, ("model_index.json",)):
        return None
    return Missing(what, "not in the Hugging Face cache and downloads are off (its weights are fetched from the hub)",
                   f"pass --base FOLDER (a local copy of the pipeline: `hf download {base} --local-dir FOLDER` where "
                   f"there is network), {GO_ONLINE}")


def check_weights(weights: str | None) -> Missing | None:
    """The student DiT weights: required, an existing model.safetensors or .pth (or a folder with one)."""
    fix = "pass --weights PATH (the student's model.safetensors or its training .pth)"
    if not weights:
        return Missing("student weights", "the student model needs --weights (its DiT weights; never the base's)", fix)
    from rdmeval.generators.weights import _sniff, damaged

    p = Path(weights).expanduser()
    if p.is_dir():
        inside = [p / n for n in ("model.safetensors", "diffusion_pytorch_model.safetensors") if (p / n).is_file()]
        if not inside:
            return Missing(f"student weights {weights}", "a folder without model.safetensors", fix)
        if len(inside) > 1:  # the loader would not know which one is meant
            return Missing(f"student weights {weights}", "a folder with both model.safetensors and "
                           "diffusion_pytorch_model.safetensors", "pass --weights with the file itself")
        p = inside[0]
    elif not p.is_file():
        return Missing(f"student weights {weights}", "no such file", fix)
    elif p.suffix.lower() not in WEIGHT_SUFFIXES and _sniff(p) == "unknown":
        return Missing(f"student weights {weights}", "not a .safetensors file or a torch checkpoint", fix)
    problem = damaged(p)  # header and directory only: a truncated copy is found before any model loads
    if problem:
        return Missing(f"student weights {p}", problem, "copy or download it again (and compare its size and sha256)")
    return None


def check_out_folder(out: str | Path, flag: str = "--out") -> Missing | None:
    """The output folder: an existing folder, or a path whose nearest existing parent is a folder one may write to."""
    p = Path(out).expanduser()
    fix = f"pass a folder you may write to as {flag}"
    if p.exists() and not p.is_dir():
        return Missing(f"output folder {out}", "this is a file, not a folder", fix)
    parent = p.absolute()  # its chain of parents ends at the root, which exists
    while not parent.exists():
        if parent.is_symlink():  # a link to nothing: no folder can be made there (mkdir says it exists)
            return Missing(f"output folder {out}", f"{parent} is a link to {os.readlink(parent)}, which does not exist", fix)
        parent = parent.parent
    if not parent.is_dir():
        return Missing(f"output folder {out}", f"{parent} is a file, so no folder can be made below it", fix)
    if not os.access(parent, os.W_OK | os.X_OK):
        return Missing(f"output folder {out}", f"{parent} is not writable", fix)
    return None


def check_detector_config(config: str | None) -> Missing | None:
    """The mmdet config: ``--detector-config`` or the Mask2Former Swin-S config inside the installed mmdet."""
    from rdmeval.scorers.geneval.detector_files import CONFIG_NAME

    if config:
        return None if Path(config).expanduser().is_file() else Missing(
            f"detector config {config}", "no such file", "pass --detector-config FILE (an mmdet 3.x config)")
    spec = importlib.util.find_spec("mmdet")
    if spec is None or spec.origin is None:
        return Missing("detector config", "mmdet is not installed", "install the geneval extra (`pip install 'rdmeval[geneval]'`)")
    path = Path(spec.origin).parent / ".mim" / "configs" / "mask2former" / CONFIG_NAME
    if path.is_file():
        return None
    return Missing("detector config", f"the installed mmdet does not ship {CONFIG_NAME}",
                   "install mmdet==3.3.0 from PyPI, or pass --detector-config FILE")


def check_detector_checkpoint(checkpoint: str | None) -> Missing | None:
    """A local checkpoint file, or a URL (the pinned official one by default) cached or downloadable."""
    from rdmeval.scorers.geneval.detector_files import CHECKPOINT_URL

    spec = checkpoint or CHECKPOINT_URL
    if not re.match(r"^[a-z]+://", spec):
        return None if Path(spec).expanduser().is_file() else Missing(
            f"detector checkpoint {spec}", "no such file", f"pass --detector-checkpoint FILE (download {CHECKPOINT_URL})")
    name = spec.rsplit("/", 1)[-1]
    if (cache_dir() / "detectors" / name).is_file() or not offline():
        return None
    return Missing(f"detector checkpoint {name}", "not cached and downloads are off",
                   f"download {spec} and pass --detector-checkpoint FILE, {GO_ONLINE}")


def check_clip(pretrained: str, model: str = "ViT-L-14") -> Missing | None:
    """open_clip weights for the color classifier: 'random' (tests), a local file, or a tag (cached or downloadable)."""
    if pretrained == "random":
        return None
    what = f"CLIP {model} weights {pretrained!r}"
    fix = "pass --clip-pretrained FILE (a local open_clip weights file)"
    if os.sep in pretrained or Path(pretrained).suffix in {".pt", ".pth", ".bin", ".safetensors"}:
        return None if Path(pretrained).expanduser().is_file() else Missing(what, "no such file", fix)
    if not offline():
        return None
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, pretrained) or {}
    hub = (cfg.get("hf_hub") or "").strip("/")
    url = cfg.get("url") or ""
    if hub and _hub_cached(hub, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")):
        return None
    if url and (Path.home() / ".cache" / "clip" / url.rsplit("/", 1)[-1]).is_file():
        return None
    return Missing(what, "not cached and downloads are off", f"{fix}, {GO_ONLINE}")


def check_hf_folder_or_id(name: str, *, what: str, flag: str, files: tuple[str, ...]) -> Missing | None:
    """A transformers model or processor: a local folder, or a hub id (cached, or fetched online)."""
    p = Path(name).expanduser()
    if p.is_dir():
        return None
    if not _looks_like_hub_id(name):
        return Missing(f"{what} {name}", "no such folder", f"pass {flag} FOLDER or a hub id")
    if not offline() or _hub_cached(name, files):
        return None
    return Missing(f"{what} {name}", "not in the Hugging Face cache and downloads are off",
                   f"pass {flag} FOLDER (a local copy), {GO_ONLINE}")


# ----------------------------------------------------------------------------- per command


def scorer_inputs(pf: Preflight, scorers: set[str], settings: dict) -> None:
    """The models of the named scorers (``settings``: the ScorerOptions settings of reproduce)."""
    if "geneval" in scorers:
        pf.add("detector config", check_detector_config(settings.get("detector_config")))
        if not settings.get("random_detector"):
            pf.add("detector checkpoint", check_detector_checkpoint(settings.get("detector_checkpoint")))
            # CLIP loads only to classify colors; a random detector (testing only) keeps almost no detection,
            # so its runs may never need it, and it is not required up front there
            pf.add("CLIP", check_clip(settings.get("clip_pretrained") or "openai"))
    if "pickscore" in scorers:
        pf.add("PickScore model", check_hf_folder_or_id(settings["pickscore_model"],
                                                         what="PickScore model", flag="--pickscore-model", files=("config.json",)))
        pf.add("PickScore processor", check_hf_folder_or_id(settings["pickscore_processor"],
                                                             what="PickScore processor", flag="--pickscore-processor",
                                                             files=("preprocessor_config.json",)))


def model_inputs(pf: Preflight, presets: set[str], base: str, weights: str | None) -> None:
    """The base pipeline of klein presets and the student's weights."""
    if "student" in presets:
        pf.add("student weights", check_weights(weights))
    if presets & {"teacher", "naive", "student"}:
        pf.add("base pipeline", check_base(base))



def diffusers_inputs(pf: Preflight, name: str, model: str, pipeline: str | None, weights: str | None, *,
                     base_flag: str = "--base FOLDER", weights_flag: str = "--weights FILE") -> None:
    """A diffusers model's pipeline (a preset's hub id, or the folder given for it) and its swap weights."""
    from rdmeval.generators.diffusers_presets import DIFFUSERS_PREFIX, PRESETS

    preset = PRESETS.get(model)
    source = pipeline or (preset.base if preset else model[len(DIFFUSERS_PREFIX):])
    what = f"pipeline of {name} ({source})"
    if not _looks_like_hub_id(source):
        p = Path(source).expanduser()
        if not (p / "model_index.json").is_file():
            why = f"{p} has no model_index.json (not a diffusers pipeline folder)" if p.is_dir() else f"no such folder {p}"
            pf.add(what, Missing(what, why, f"pass {base_flag} (a diffusers pipeline folder) or a hub id"))
            return
        pf.add(what, None)
    else:
        cached = _hub_cached(source, ("model_index.json",))
        pf.add(what, None if cached or not offline() else Missing(
            what, "not in the Hugging Face cache and downloads are off", f"pass {base_flag} (a local copy), {GO_ONLINE}"))
    if weights:
        ok = Path(weights).expanduser().is_file()
        pf.add(f"weights of {name}", None if ok else Missing(f"weights of {name} {weights}", "no such file", f"check {weights_flag}"))
    elif preset is not None and preset.swap is not None:
        swap = preset.swap
        cached = _hub_cached(swap.repo_id, (swap.filename,))
        pf.add(f"weights of {name}", None if cached or not offline() else Missing(
            f"weights of {name} ({swap.repo_id}/{swap.filename})", "not in the Hugging Face cache and downloads are off",
            f"download it and pass {weights_flag}, {GO_ONLINE}"))
