"""Named models: ``dummy``, the three FLUX.2 [klein] presets (teacher, naive, student), the one-step
field's presets (:mod:`rdmeval.generators.diffusers_presets`) and ``diffusers:<hub id or folder>``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from rdmeval.api import Generator, Registry
from rdmeval.errors import RdmevalError
from rdmeval.generators.diffusers_presets import DIFFUSERS_PREFIX, PRESETS, is_diffusers_model, native_resolution
from rdmeval.generators.text_layers import DEFAULT_TEXT_LAYERS

KLEIN_BASE = "black-forest-labs/FLUX.2-klein-4B"


@dataclass
class GeneratorOptions:
    """What the CLI knows about how to build a generator; presets fill in the rest."""

    base: str = KLEIN_BASE
    weights: str | None = None
    ctx_len: int = 48
    text_layers: tuple[int, ...] = DEFAULT_TEXT_LAYERS  # Qwen3 hidden states stacked into the prompt embedding
    steps: int | None = None  # None: the preset's (teacher 4, naive/student 1)
    device: str | None = None
    precision: str = "faithful"
    height: int | None = 512  # None (diffusers models only): the model's native resolution
    width: int | None = 512
    uint8: str = "round"
    compile: bool = False
    guidance_scale: float | None = None  # diffusers models only: None is the preset's (or the pipeline's default)
    pipeline: str | None = None  # diffusers presets only: a local copy (or another hub id) of the preset's pipeline

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: How a generator is registered: options in, a ready :class:`rdmeval.api.Generator` out.
GeneratorFactory = Callable[[GeneratorOptions], Generator]


def _klein(preset: str) -> GeneratorFactory:
    def build(options: GeneratorOptions) -> Generator:
        from rdmeval.generators.klein import build_preset  # diffusers loads only when a klein model is built

        return build_preset(preset, options)

    return build


GENERATORS: Registry[GeneratorFactory] = Registry("model")
GENERATORS.register("teacher", _klein("teacher"), "FLUX.2 [klein]-4B, released weights, 4 steps")
GENERATORS.register("naive", _klein("naive"), "FLUX.2 [klein]-4B, released weights, 1 step (no distillation)")
GENERATORS.register("student", _klein("student"), "FLUX.2 [klein]-4B with the RDM DiT weights (--weights), 1 step")
GENERATORS.register("dummy", "rdmeval.generators.dummy:build", "deterministic stand-in without weights (tests, smoke runs)")


def _diffusers(preset: str) -> GeneratorFactory:
    def build(options: GeneratorOptions) -> Generator:
        from rdmeval.generators.diffusers_backend import build_diffusers  # diffusers loads only when one is built

        return build_diffusers(preset, options)

    return build


for _name, _preset in PRESETS.items():
    GENERATORS.register(_name, _diffusers(_name), _preset.description)

#: Name -> description of every registered model (the CLI's --model choices; also diffusers:<hub id or folder>).
MODELS: dict[str, str] = {name: GENERATORS.description(name) for name in GENERATORS}
KLEIN_RESOLUTION = 512


def is_model(model: str) -> bool:
    """A registered name or ``diffusers:<hub id or folder>``."""
    return model in GENERATORS or is_diffusers_model(model)


def default_resolution(model: str) -> int | None:
    """The resolution a model runs at unless told otherwise: a diffusers preset's native one, klein's 512, or
    None for ``diffusers:<id>`` (the pipeline's own default, read when it loads)."""
    return native_resolution(model) if is_diffusers_model(model) else KLEIN_RESOLUTION


def build_generator(model: str, options: GeneratorOptions) -> Generator:
    """The generator registered as ``model`` (or ``diffusers:<id>``), built with ``options`` (unknown names suggest the closest)."""
    if model.startswith(DIFFUSERS_PREFIX) and model not in GENERATORS:
        return _diffusers(model)(options)
    if not is_diffusers_model(model) and options.guidance_scale is not None:
        raise RdmevalError(f"--guidance-scale applies to diffusers models only; --model {model} fixes its own")
    return GENERATORS.get(model)(options)
