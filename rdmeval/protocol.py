"""Per-prompt-set protocol defaults for ``rdmeval generate`` (docs/protocol.md, sections 3-5).

The numbers are not stated here: they are read from the packaged paper-table suite
(``benchmarks/paper-table.toml``), the one place each benchmark's protocol is written, so a
hand-run ``rdmeval generate`` and ``rdmeval reproduce`` cannot disagree. Only the protocol of a
user prompt file (:data:`DEFAULT`) is set here. Every value is recorded in the run manifest; all
of them can be overridden on the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

from rdmeval.api import Benchmark, SeedPolicy
from rdmeval.api.benchmark import PICKAPIC_SEEDS
from rdmeval.prompts.schema import PromptSet

RESOLUTION = 512
#: The suite whose benchmarks define the protocol of each named prompt set.
PROTOCOL_SUITE = "paper-table"
#: Why each benchmark's context length is what it is (the number itself comes from the suite).
_CTX_REASON = {"geneval": "training geometry", "pickapic-test": "headline", "coco-val": "training captions"}
#: Demo sets follow the protocol of the benchmark they stand in for.
_DEMO_SETS = {"demo-geneval": "geneval", "demo-captions": "coco-val"}
#: Sets measured with another benchmark's protocol: held-out GenEval is judged exactly as GenEval
#: (4 images per prompt, per-sample seeds over its own prompt list, ctx 48; docs/heldout.md).
_SAME_PROTOCOL = {"geneval-heldout": "geneval"}


@dataclass(frozen=True)
class GenerationProtocol:
    n_per_prompt: int
    ctx_len: int
    seed_policy: SeedPolicy
    note: str
    batch_size: int = 16  # images per DiT forward: the reference's composition (see rdmeval/generation.py)


def _seeds(policy: SeedPolicy) -> str:
    if policy.kind == "per-sample":
        return f"per-sample seeds {policy.base} + 100*idx + j"
    return f"one-call seed-{policy.seed} noise"


def describe(n_per_prompt: int, ctx_len: int, seed_policy: SeedPolicy, batch_size: int, why: str = "") -> str:
    """``4 images/prompt, ctx 48 (training geometry), per-sample seeds ..., batch 4``."""
    images = f"{n_per_prompt} image{'s' if n_per_prompt != 1 else ''}/prompt"
    return f"{images}, ctx {ctx_len}{f' ({why})' if why else ''}, {_seeds(seed_policy)}, batch {batch_size}"


def _from_benchmark(b: Benchmark, label: str) -> GenerationProtocol:
    note = f"{label}: " + describe(b.n_per_prompt, b.ctx_len, b.seed_policy, b.batch_size, _CTX_REASON.get(b.prompts, ""))
    return GenerationProtocol(b.n_per_prompt, b.ctx_len, b.seed_policy, note, batch_size=b.batch_size)


def _protocols() -> dict[str, GenerationProtocol]:
    from rdmeval.suites import load_suite

    by_set = {b.prompts: b for b in load_suite(PROTOCOL_SUITE).benchmarks}
    out = {name: _from_benchmark(b, name) for name, b in by_set.items()}
    same = {**_DEMO_SETS, **_SAME_PROTOCOL}
    out.update({name: _from_benchmark(by_set[real], f"{name} ({real} protocol)") for name, real in same.items()})
    return out


PROTOCOLS: dict[str, GenerationProtocol] = _protocols()
DEFAULT = GenerationProtocol(1, 48, PICKAPIC_SEEDS, "user prompt file: " + describe(1, 48, PICKAPIC_SEEDS, 16))


def protocol_for(prompt_set: PromptSet) -> GenerationProtocol:
    """The defaults of a registered set; user files get the GenEval protocol if they hold GenEval
    records, else DEFAULT (a file named like a registered set does not inherit its protocol)."""
    if prompt_set.version != "file" and prompt_set.name in PROTOCOLS:
        return PROTOCOLS[prompt_set.name]
    if prompt_set.format == "geneval":
        return PROTOCOLS["geneval"]
    return DEFAULT


def help_text() -> str:
    """The protocol defaults, one line per named set, for CLI help texts."""
    return "\n".join(f"  {p.note}" for name, p in PROTOCOLS.items() if not name.startswith("demo-"))
