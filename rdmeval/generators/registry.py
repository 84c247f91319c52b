"""Named models: ``dummy`` and the three FLUX.2 [klein] presets (teacher, naive, student)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable

from rdmeval.api import Generator, Registry
from rdmeval.generators.text_encoder import DEFAULT_TEXT_LAYERS

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
    height: int = 512
    width: int = 512
    uint8: str = "round"
    compile: bool = False

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

#: Name -> description of every registered model (the CLI's --model choices).
MODELS: dict[str, str] = {name: GENERATORS.description(name) for name in GENERATORS}


def build_generator(model: str, options: GeneratorOptions) -> Generator:
    """The generator registered as ``model``, built with ``options`` (unknown names suggest the closest)."""
    return GENERATORS.get(model)(options)
