"""The training pools a held-out GenEval set is made and checked against, part by part.

A pool spec (``benchmarks/pools/*.toml``) is a list of sources. For ``geneval-heldout`` each source is
either read or reported as *not checked*, never skipped silently:

- prompt-set sources (``prompt_set``, ``geneval_templates``) are GenEval-style prompts; a row's
  structure is the one its GenEval metadata gives (its text's when it has none), as when
  ``geneval-heldout`` v1 was made;
- text sources (``coco``, ``txt``, ``jsonl``, ``csv``, ``parquet``: captions) are read when their
  file is given: the spec's ``${VAR}`` is set, or ``--set SOURCE.path=FILE``. A row's structure is
  what the audit's structure level reads off its text (``StructureParser.parse``: GenEval's templates
  with an optional frame, either article, number words, naive plurals). A caption that is not such a
  template form has no structure and excludes nothing. A text source whose path names an unset
  variable is not checked, and every report says so; a path that is given but wrong is an error.

:func:`heldout_exclusion` gathers the structures to exclude (the official prompts' and the readable
pool parts'), :func:`check_against_pools` runs the audit's own structure level
(``audit.benchmark_data`` and ``audit.scan_pool`` with ``levels = ("structure",)``) of a held-out set
against the readable parts: the check that a pinned set is still held out once a caption file is at hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rdmeval.contamination.pool_spec import (
    PoolSource,
    PoolSpec,
    PoolSpecError,
    parse_overrides,
    pool_spec_file,
    pool_spec_from_dict,
    unset_variables,
)
from rdmeval.contamination.pools import iter_source, prompt_set_rows, template_rows
from rdmeval.contamination.structure import Structure, StructureParser, structure_from_metadata
from rdmeval.geneval_classes import GENEVAL_OBJECT_NAMES
from rdmeval.io import sha256_file
from rdmeval.prompts.schema import PromptSet
from rdmeval.specs import read_toml

#: The released student's pools (benchmarks/pools/): the default of ``make-heldout``.
RELEASED_POOL_NAMES: tuple[str, ...] = ("rdm-s180-generator", "rdm-s180-reference")
#: Pool source kinds whose rows carry GenEval metadata.
PROMPT_SOURCE_KINDS: tuple[str, ...] = ("prompt_set", "geneval_templates")


@dataclass(frozen=True)
class SourcePart:
    """One source of one pool: read (``checked``) or not, and what reading it found."""

    pool: str
    source: str
    kind: str
    checked: bool
    rows: int = 0
    template_rows: int = 0  # rows with a GenEval-template structure
    read_as: str = ""
    file: str = ""  # a text source's file name (never its folder)
    sha256: str = ""
    why: str = ""  # why it was not checked

    @property
    def label(self) -> str:
        return f"{self.pool}/{self.source}"

    def line(self) -> str:
        if self.checked:
            what = f"{self.file}, " if self.file else ""
            return (f"checked      {self.label} ({self.kind}: {what}{self.rows:,} rows, {self.template_rows:,} of them "
                    f"GenEval-template prompts; {self.read_as})")
        return f"NOT checked  {self.label} ({self.kind}): {self.why}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v != "" and not (k in ("rows", "template_rows") and not self.checked)}


@dataclass(frozen=True)
class PoolParts:
    """A pool: its readable sources as a spec (None when none is readable) and the parts left unread."""

    name: str
    spec_file: str  # the spec's file name
    spec: PoolSpec | None
    unread: tuple[SourcePart, ...] = ()
    order: tuple[str, ...] = ()  # every source's name, in the spec's order

    def in_order(self, parts: Mapping[str, SourcePart]) -> list[SourcePart]:
        return [parts[name] for name in self.order if name in parts]


def _is_text(raw: Mapping[str, Any]) -> bool:
    kind = raw.get("kind")
    return kind not in PROMPT_SOURCE_KINDS and not (kind is None and "prompt_set" in raw)


def load_pool_parts(name_or_path: str | Path, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                    local: Mapping[str, Path] | None = None) -> PoolParts:
    """A pool spec by name or path, split into what can be read here and what cannot.

    ``overrides``: ``{source: {key: value}}`` (``--set``; names of other pools' sources are ignored).
    ``local`` maps a registered prompt set's name to a local copy, for sources that name the set
    without a path.
    """
    file = pool_spec_file(name_or_path)
    raw = dict(read_toml(file, PoolSpecError, f"{file}: no such pool spec (a TOML file with [[source]] tables)"))
    name = str(raw.get("name") or file.stem)
    sources = [s for s in raw.get("source", []) if isinstance(s, dict)]
    overrides = {k: v for k, v in (overrides or {}).items() if k in {str(s.get("name")) for s in sources}}
    readable, unread = [], []
    for s in sources:
        merged = {**s, **overrides.get(str(s.get("name")), {})}
        unset = unset_variables(str(merged.get("path", ""))) if _is_text(merged) else []
        if unset:
            var = unset[0]
            unread.append(SourcePart(name, str(s.get("name")), str(merged.get("kind", "text")), False,
                                     why=f"its file is not given: the path uses ${{{var}}}, which is not set "
                                         f"(export {var}=FILE, or --set {s.get('name')}.path=FILE)"))
        else:
            readable.append(s)
    spec = None
    if readable:
        names = {str(s.get("name")) for s in readable}
        spec = pool_spec_from_dict({**raw, "source": readable}, file=file.resolve(),
                                   overrides={k: v for k, v in overrides.items() if k in names})
        spec = replace(spec, sources=tuple(with_local(src, local) for src in spec.sources))
    return PoolParts(name, file.name, spec, tuple(unread), tuple(str(s.get("name")) for s in sources))


def with_local(src: PoolSource, local: Mapping[str, Path] | None) -> PoolSource:
    """A prompt-set source reading ``local[set name]`` when it names a registered set without a path."""
    copy = (local or {}).get(src.prompt_set if src.kind == "prompt_set" else src.classes_from)
    if src.kind in PROMPT_SOURCE_KINDS and copy is not None and src.path is None:
        return replace(src, path=Path(copy))
    return src


def load_pools(pools: Sequence[str | Path] | None = None, set_items: Sequence[str] | None = None,
               local: Mapping[str, Path] | None = None) -> list[PoolParts]:
    """The pools (default: the released student's), each ``--set SOURCE.KEY=VALUE`` applied to every
    pool that has a source of that name (an error when none has)."""
    overrides = parse_overrides(set_items)
    out = [load_pool_parts(p, overrides, local) for p in (pools or RELEASED_POOL_NAMES)]
    seen = {name for pool in out for name in pool.order}
    missing = sorted(set(overrides) - seen)
    if missing:
        raise PoolSpecError(f"--set: no pool has a source named {missing}; their sources are {sorted(seen)}")
    return out


def source_structures(src: PoolSource, pool: str, parser: StructureParser) -> tuple[set[Structure], SourcePart]:
    """The structures of one source's rows and what was read (see the module docstring)."""
    found: set[Structure] = set()
    rows = template = 0
    if src.kind in PROMPT_SOURCE_KINDS:
        for _, text, meta in (prompt_set_rows(src) if src.kind == "prompt_set" else template_rows(src)):
            rows += 1
            s = parser.structure_of(text, meta)
            if s is not None:
                template += 1
                found.add(s)
        what = src.prompt_set if src.kind == "prompt_set" and src.prompt_set else src.kind
        return found, SourcePart(pool, src.name, src.kind, True, rows, template,
                                 f"prompt set {what}: GenEval metadata (the text where a row has none)")
    for chunk in iter_source(src):
        rows += len(chunk)
        for text in chunk.texts:
            s = parser.parse(text)
            if s is not None:
                template += 1
                found.add(s)
    assert src.path is not None
    return found, SourcePart(pool, src.name, src.kind, True, rows, template, "text, by the audit's structure parser",
                             file=src.path.name, sha256=sha256_file(src.path, use_cache=False))


@dataclass
class Exclusion:
    """What a held-out set excludes: the official prompts' structures and the pools' readable parts'."""

    official: set[Structure]
    official_info: dict[str, Any]
    pools: set[Structure] = field(default_factory=set)
    parts: list[SourcePart] = field(default_factory=list)
    pool_files: dict[str, str] = field(default_factory=dict)  # pool name -> spec file name

    @property
    def structures(self) -> set[Structure]:
        return self.official | self.pools

    @property
    def not_checked(self) -> list[SourcePart]:
        return [p for p in self.parts if not p.checked]

    def describe(self) -> dict[str, Any]:
        pools = [{"pool": name, "spec": spec_file, "sources": [{k: v for k, v in p.to_dict().items() if k != "pool"} for p in self.parts if p.pool == name]}
                 for name, spec_file in self.pool_files.items()]
        return {"official": self.official_info, "pools": pools, "every_pool_part_checked": not self.not_checked,
                "not_checked": [p.label for p in self.not_checked]}


def heldout_exclusion(official: PromptSet, pools: Sequence[PoolParts]) -> Exclusion:
    """The structures of the official prompts and of every readable part of the pools."""
    parser = StructureParser(GENEVAL_OBJECT_NAMES)
    info = {"prompt_set": official.name, "version": official.version, "n_prompts": len(official), "sha256": official.sha256}
    ex = Exclusion({structure_from_metadata(p.metadata) for p in official.prompts}, info)
    for pool in pools:
        ex.pool_files[pool.name] = pool.spec_file
        parts: dict[str, SourcePart] = {p.source: p for p in pool.unread}
        for src in pool.spec.sources if pool.spec is not None else ():
            found, parts[src.name] = source_structures(src, pool.name, parser)
            ex.pools |= found
        ex.parts += pool.in_order(parts)
    return ex


@dataclass(frozen=True)
class Collision:
    """A held-out prompt whose structure the audit's structure level finds in a pool part."""

    prompt_index: int
    prompt: str
    structure: str
    source: str  # pool/source
    rows: int  # pool rows of that source with the structure
    example: str  # one of them

    def line(self) -> str:
        return (f"[{self.prompt_index}] {self.prompt!r} ({self.structure}) is in {self.source}: "
                f"{self.rows} row(s), e.g. {self.example!r}")


def check_against_pools(heldout: PromptSet, pools: Sequence[PoolParts]) -> tuple[list[Collision], list[SourcePart]]:
    """The audit's structure level of ``heldout`` against the readable parts of ``pools``: the
    prompts found (with the part and a matching row), and every part, checked or not."""
    from rdmeval.contamination.audit import benchmark_data, scan_pool
    from rdmeval.contamination.levels import AuditConfig

    cfg = AuditConfig(levels=("structure",), max_examples=5)
    bench, _, described = benchmark_data(heldout, cfg)
    collisions: list[Collision] = []
    parts: list[SourcePart] = []
    for pool in pools:
        mine: dict[str, SourcePart] = {p.source: p for p in pool.unread}
        if pool.spec is not None:
            tally, _ = scan_pool(pool.spec, bench, cfg, desc=pool.name)
            for src in pool.spec.sources:
                template = sum(c[src.name] for c in tally.family_rows.values())
                text = src.kind not in PROMPT_SOURCE_KINDS
                what = "" if text else f"prompt set {src.prompt_set or src.kind}: "
                mine[src.name] = SourcePart(pool.name, src.name, src.kind, True, tally.rows_read[src.name], template,
                                            f"{what}text, by the audit's structure level",
                                            file=src.path.name if text and src.path is not None else "")
            for p, per_source in sorted(tally.prompt_rows.get("structure", {}).items()):
                examples = tally.examples("structure", p)
                for source, n in sorted(per_source.items()):
                    ex = next((e.text for e in examples if e.source == source), "")
                    collisions.append(Collision(p, heldout.prompts[p].text, described[p], f"{pool.name}/{source}", n, ex))
        parts += pool.in_order(mine)
    return collisions, parts
