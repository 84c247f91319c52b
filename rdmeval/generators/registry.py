"""Named models: ``dummy`` and the three FLUX.2 [klein] presets (teacher, naive, student)."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any

from rdmeval.errors import RdmevalError
from rdmeval.generators.base import Generator
from rdmeval.generators.text_encoder import DEFAULT_TEXT_LAYERS

KLEIN_BASE = "black-forest-labs/FLUX.2-klein-4B"
MODELS: dict[str, str] = {
    "teacher": "FLUX.2 [klein]-4B, released weights, 4 steps",
    "naive": "FLUX.2 [klein]-4B, released weights, 1 step (no distillation)",
    "student": "FLUX.2 [klein]-4B with the RDM DiT weights (--weights), 1 step",
    "dummy": "deterministic stand-in without weights (tests, smoke runs)",
}


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


def build_generator(model: str, options: GeneratorOptions) -> Generator:
    if model not in MODELS:
        close = difflib.get_close_matches(model, MODELS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise RdmevalError(f"--model {model!r} is not known.{hint} Choose one of: {', '.join(MODELS)}")
    if model == "dummy":
        from rdmeval.generators.dummy import DummyGenerator

        return DummyGenerator(options.height, options.width, options.uint8)
    from rdmeval.generators.klein import build_preset

    return build_preset(model, options)
