"""``geneval-heldout``: GenEval prompts whose structure is in no official prompt and no training pool.

The set is drawn by ``rdmeval.prompts.geneval_generator`` (GenEval's own rules) with a documented
seed. A candidate is excluded when its *structure* (the audit's structure level,
``rdmeval.contamination.structure``: task, classes with counts and colours, relation; object
order and the direction of a relation do not matter) equals the structure of an official GenEval
prompt or of any prompt of the given pools. For each task every candidate the rules allow
(``candidate_params``, a fixed order) is shuffled with ``numpy.random.default_rng([seed,
task_index])`` (``task_index``: the task's place in GenEval's order, 0 = single_object) and taken in
that order, skipping an excluded structure or one already taken, until the task has as many
prompts as in the official set.

single_object cannot be held out: the official set already holds all 80 objects, so no
single-object structure is left. The held-out set omits that task (``NOT_HELD_OUT``) and every
report of it says so.

v1 was made against the pools' prompt-set sources (``kind = "prompt_set"`` or
``"geneval_templates"``), which carry GenEval metadata (``write_heldout``, its recipe): the released
student's pools (``benchmarks/pools/rdm-s180-*.toml``) hold GenEval only through the registered
``geneval`` set, which the official exclusion already covers. Their COCO caption blocks were not
read, because the caption file is not shipped. ``write_heldout_set`` makes a set against every
readable part of the pools, captions included (``rdmeval.contamination.heldout_pools``), and writes
beside it which parts were checked and which were not (``<set>.exclusion.json``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rdmeval.contamination.heldout_pools import (
    PROMPT_SOURCE_KINDS,
    RELEASED_POOL_NAMES,
    Exclusion,
    source_structures,
    with_local,
)
from rdmeval.contamination.pool_spec import PoolSpec, PoolSpecError, pool_spec_from_dict
from rdmeval.contamination.structure import Structure, StructureParser, structure_from_metadata
from rdmeval.errors import RdmevalError
from rdmeval.geneval_classes import GENEVAL_OBJECT_NAMES
from rdmeval.io import atomic_write_json, atomic_write_text
from rdmeval.prompts.geneval import EXPECTED_COUNTS, TAGS
from rdmeval.prompts.geneval_generator import GenevalItem, candidate_params
from rdmeval.specs import read_toml

#: The seed of ``geneval-heldout`` v1.
HELDOUT_SEED = 1
#: Tasks the held-out set cannot cover (every structure of the task is official).
NOT_HELD_OUT: tuple[str, ...] = ("single_object",)
#: Prompts per task: the official counts, for the tasks that can be held out.
HELDOUT_COUNTS: dict[str, int] = {t: n for t, n in EXPECTED_COUNTS.items() if t not in NOT_HELD_OUT}
#: The released student's pools (spec files): their GenEval blocks are excluded by default.
RELEASED_POOLS: tuple[str, ...] = tuple(f"{name}.toml" for name in RELEASED_POOL_NAMES)


def prompt_sources(path: Path) -> PoolSpec:
    """A pool spec restricted to its prompt-set sources (text-only sources, whose files may not be
    on this machine, are dropped before their paths are resolved)."""
    raw = dict(read_toml(path, PoolSpecError, f"{path}: no such pool spec"))
    sources = [s for s in raw.get("source", []) if isinstance(s, dict)
               and (s.get("kind") in PROMPT_SOURCE_KINDS or ("kind" not in s and "prompt_set" in s))]
    if not sources:
        raise PoolSpecError(f"{path}: no prompt-set source (kind = \"prompt_set\" or \"geneval_templates\") to exclude")
    return pool_spec_from_dict({**raw, "source": sources}, file=path.resolve())


def released_pool_specs() -> list[PoolSpec]:
    from rdmeval._assets import asset_dir

    return [prompt_sources(asset_dir("benchmarks") / "pools" / name) for name in RELEASED_POOLS]


def structures_of_records(records: Iterable[Mapping[str, Any]]) -> set[Structure]:
    return {structure_from_metadata(r) for r in records}


def pool_structures(specs: Sequence[PoolSpec], local: Mapping[str, Path] | None = None) -> set[Structure]:
    """Structures of every GenEval-template row in the pools' prompt-set sources. ``local`` maps a
    registered set's name to a local copy, used by sources that name the set without a path."""
    parser = StructureParser(GENEVAL_OBJECT_NAMES)
    out: set[Structure] = set()
    for spec in specs:
        for src in spec.sources:
            if src.kind in PROMPT_SOURCE_KINDS:
                out |= source_structures(with_local(src, local), spec.name, parser)[0]
    return out


def make_heldout(seed: int, excluded: set[Structure], counts: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """The held-out records, tasks in GenEval's order; raise if a task runs out of candidates."""
    counts = dict(HELDOUT_COUNTS if counts is None else counts)
    bad = [t for t in counts if t in NOT_HELD_OUT or t not in TAGS]
    if bad:
        raise RdmevalError(f"cannot hold out task(s) {bad}; choose among {', '.join(HELDOUT_COUNTS)}")
    out: list[dict[str, Any]] = []
    for tag in TAGS:
        if tag not in counts:
            continue
        params = candidate_params(tag)
        rng = np.random.default_rng([int(seed), TAGS.index(tag)])
        taken: set[Structure] = set()
        for k in rng.permutation(len(params)):
            if len(taken) == counts[tag]:
                break
            record = GenevalItem(tag, *params[k]).record()
            s = structure_from_metadata(record)
            if s not in excluded and s not in taken:
                taken.add(s)
                out.append(record)
        if len(taken) < counts[tag]:
            raise RdmevalError(f"{tag}: only {len(taken)} structures are not excluded, {counts[tag]} were asked for")
    return out


def heldout_text(records: Sequence[Mapping[str, Any]]) -> str:
    """The file form: one ``json.dumps`` line per record, each ending in a newline (as GenEval's)."""
    import json

    return "".join(json.dumps(dict(r)) + "\n" for r in records)


def write_heldout(
    out: Path,
    seed: int,
    official: Sequence[Mapping[str, Any]],
    pools: Sequence[PoolSpec] | None = None,
    local: Mapping[str, Path] | None = None,
) -> list[dict[str, Any]]:
    """Build the held-out set (official structures and the pools' excluded; default pools: the
    released student's) and write it atomically. ``local``: as in ``pool_structures``."""
    specs = released_pool_specs() if pools is None else pools
    excluded = structures_of_records(official) | pool_structures(specs, local)
    records = make_heldout(seed, excluded)
    atomic_write_text(out, heldout_text(records))
    return records


def exclusion_path(out: Path) -> Path:
    """Where the record of a set's exclusion goes: ``name.jsonl`` -> ``name.exclusion.json``."""
    return out.with_name(f"{out.stem}.exclusion.json")


def write_heldout_set(out: Path, seed: int, exclusion: Exclusion) -> list[dict[str, Any]]:
    """Make a held-out set excluding ``exclusion.structures``; write it and, beside it, the record of
    what was excluded (``exclusion_path``): the official set, every pool part checked and every part
    not checked, and why. Both writes are atomic; neither holds a machine path."""
    import hashlib

    records = make_heldout(seed, exclusion.structures)
    text = heldout_text(records)
    atomic_write_text(out, text)
    counts = {t: sum(r["tag"] == t for r in records) for t in TAGS if t not in NOT_HELD_OUT}
    atomic_write_json(exclusion_path(out), {
        "set": out.name, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "n_prompts": len(records),
        "seed": int(seed), "rules": "rdmeval.prompts.geneval_generator (GenEval's templates and metadata rules)",
        "counts": counts, "not_held_out": list(NOT_HELD_OUT),
        "excluded": "every structure (the audit's structure level) of the official prompts and of every pool part checked",
        **exclusion.describe(),
    })
    return records
