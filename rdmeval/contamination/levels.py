"""The match levels of the audit and the settings that define them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rdmeval.errors import RdmevalError

#: Levels a user can ask for (``--levels``), cheapest first.
LEVELS: tuple[str, ...] = ("exact", "normalized", "structure", "ngram", "minhash", "semantic")
DEFAULT_LEVELS: tuple[str, ...] = ("exact", "normalized", "structure", "ngram", "minhash")

DEFAULT_SEMANTIC_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class AuditConfig:
    """Every setting that changes a number in the audit report (all recorded in it)."""

    levels: tuple[str, ...] = DEFAULT_LEVELS
    ngram_sizes: tuple[int, ...] = (8, 13)
    minhash_threshold: float = 0.8
    minhash_num_perm: int = 128
    minhash_shingle: int = 2
    minhash_min_recall: float = 0.995
    semantic_model: str = DEFAULT_SEMANTIC_MODEL
    semantic_threshold: float = 0.9
    semantic_batch_size: int = 256
    semantic_device: str | None = None
    max_examples: int = 5
    chunk_size: int = 8192
    workers: int = 1
    dirty_levels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        bad = [lv for lv in self.levels if lv not in LEVELS]
        if bad or not self.levels:
            raise RdmevalError(f"--levels: unknown level(s) {bad or '(none)'}; choose from {','.join(LEVELS)}")
        if not self.ngram_sizes or any(n < 1 for n in self.ngram_sizes):
            raise RdmevalError(f"--ngram-sizes must be positive integers, got {self.ngram_sizes}")
        if not 0.0 < self.minhash_threshold <= 1.0:
            raise RdmevalError(f"--minhash-threshold must be in (0, 1], got {self.minhash_threshold}")
        if not -1.0 <= self.semantic_threshold <= 1.0:
            raise RdmevalError(f"--semantic-threshold must be a cosine in [-1, 1], got {self.semantic_threshold}")
        if self.workers < 1:
            raise RdmevalError(f"--workers must be >= 1, got {self.workers}")
        if self.chunk_size < 1:
            raise RdmevalError(f"chunk size must be >= 1, got {self.chunk_size}")
        if self.max_examples < 0:
            raise RdmevalError(f"--max-examples must be >= 0, got {self.max_examples}")
        if self.dirty_levels is not None:
            known = set(self.result_levels())
            bad = [lv for lv in self.dirty_levels if lv not in known]
            if bad:
                raise RdmevalError(f"--dirty-levels: {bad} not among the levels run ({', '.join(sorted(known))})")

    def result_levels(self) -> list[str]:
        """Names of the per-prompt flags the run produces (ngram and structure split into parts)."""
        out: list[str] = []
        for lv in self.levels:
            if lv == "structure":
                out += ["structure", "template_family"]
            elif lv == "ngram":
                out += [f"ngram{n}" for n in self.ngram_sizes]
            else:
                out.append(lv)
        return out

    def default_dirty_levels(self) -> list[str]:
        """A prompt is "contaminated" if flagged at any of these (default: all text levels except the
        template family, which flags every same-template prompt, and the primary n-gram size only)."""
        if self.dirty_levels is not None:
            return list(self.dirty_levels)
        out = []
        for lv in self.result_levels():
            if lv == "template_family" or lv == "semantic":
                continue
            if lv.startswith("ngram") and lv != f"ngram{self.ngram_sizes[0]}":
                continue
            out.append(lv)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["levels"] = list(self.levels)
        d["ngram_sizes"] = list(self.ngram_sizes)
        d["dirty_levels"] = self.default_dirty_levels()
        return d
