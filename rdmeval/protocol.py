"""Per-benchmark protocol defaults (../shared/docs/protocol.md sections 3-5), in one place.

Every value here is recorded in the run manifest; all of them can be overridden on the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdmeval.generators.noise import GENEVAL_SEEDS, PICKAPIC_SEEDS, SeedPolicy
from rdmeval.prompts.schema import PromptSet

RESOLUTION = 512


@dataclass(frozen=True)
class GenerationProtocol:
    n_per_prompt: int
    ctx_len: int
    seed_policy: SeedPolicy
    note: str
    batch_size: int = 16  # images per DiT forward: the reference's composition (see rdmeval/generation.py)


PROTOCOLS: dict[str, GenerationProtocol] = {
    "geneval": GenerationProtocol(4, 48, GENEVAL_SEEDS, "GenEval: 4 images/prompt, ctx 48 (training geometry), per-sample seeds, one forward per prompt", batch_size=4),
    "pickapic-test": GenerationProtocol(1, 232, PICKAPIC_SEEDS, "Pick-a-Pic: 1 image/prompt, ctx 232 (headline), one-call seed-0 noise"),
    "coco-val": GenerationProtocol(1, 48, PICKAPIC_SEEDS, "COCO-val (rdmeval definition): 1 image/prompt, ctx 48 (training captions), one-call seed-0 noise"),
    "demo-geneval": GenerationProtocol(4, 48, GENEVAL_SEEDS, "demo: GenEval protocol", batch_size=4),
    "demo-captions": GenerationProtocol(1, 48, PICKAPIC_SEEDS, "demo: caption protocol"),
}
DEFAULT = GenerationProtocol(1, 48, PICKAPIC_SEEDS, "user prompt file: 1 image/prompt, ctx 48, one-call seed-0 noise")


def protocol_for(prompt_set: PromptSet) -> GenerationProtocol:
    """The defaults of a registered set; user files get the GenEval protocol if they hold GenEval
    records, else DEFAULT (a file named like a registered set does not inherit its protocol)."""
    if prompt_set.version != "file" and prompt_set.name in PROTOCOLS:
        return PROTOCOLS[prompt_set.name]
    if prompt_set.format == "geneval":
        return PROTOCOLS["geneval"]
    return DEFAULT
