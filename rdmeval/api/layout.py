"""Where everything of a run lives on disk: the one place that spells out the folder layout.

A run (GenEval's official layout, used for every prompt set)::

    <run>/manifest.json                          what was asked + where/when it ran
    <run>/<idx:05d>/metadata.jsonl               the prompt's record
    <run>/<idx:05d>/samples/<j:04d>.png          image j of prompt idx
    <run>/scores/<scorer>/summary.parquet        result rows (+ summary.json)
    <run>/scores/<scorer>/per_image.parquet      one row per image (per_prompt.parquet: per prompt)
    <run>/scores/<scorer>/<cache>/<idx:05d>/<j:04d>.json   per-image caches (GenEval: detections, colors)

A run root (the ``--out`` of ``rdmeval reproduce``) holds ``runs/<model>/<benchmark>/`` runs and the
``table.md`` and ``report/`` made from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

MANIFEST = "manifest.json"
PROMPT_METADATA = "metadata.jsonl"
SUMMARY = "summary.parquet"
PER_IMAGE = "per_image.parquet"
PER_PROMPT = "per_prompt.parquet"
#: ``<idx:05d>/samples/<j:04d>.png`` at the end of a path (any separator): groups prompt and sample index.
IMAGE_PATH_PATTERN = re.compile(r"(\d{5})[/\\]samples[/\\](\d{4})\.png$")


class WorkItem(NamedTuple):
    """One image of a run: sample ``sample_index`` of prompt ``prompt_index``."""

    prompt_index: int
    sample_index: int


def image_name(prompt_index: int, sample_index: int) -> str:
    """The image's path relative to its run: ``<idx:05d>/samples/<j:04d>.png``."""
    return f"{prompt_index:05d}/samples/{sample_index:04d}.png"


@dataclass(frozen=True)
class _Folder:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))  # accept str and os.PathLike


@dataclass(frozen=True)
class RunLayout(_Folder):
    """The paths of one run directory (nothing is created or read here)."""

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    def prompt_dir(self, prompt_index: int) -> Path:
        return self.root / f"{prompt_index:05d}"

    def prompt_metadata(self, prompt_index: int) -> Path:
        return self.prompt_dir(prompt_index) / PROMPT_METADATA

    def image(self, prompt_index: int, sample_index: int) -> Path:
        return self.root / image_name(prompt_index, sample_index)

    # ----- what scorers write
    def scores(self, scorer: str) -> Path:
        """The folder of one scorer's outputs (``scorer`` is its folder name: geneval, pickscore)."""
        return self.root / "scores" / scorer

    def summary(self, scorer: str) -> Path:
        return self.scores(scorer) / SUMMARY

    def per_image(self, scorer: str) -> Path:
        return self.scores(scorer) / PER_IMAGE

    def per_prompt(self, scorer: str) -> Path:
        return self.scores(scorer) / PER_PROMPT

    def cache_file(self, scorer: str, cache: str, prompt_index: int, sample_index: int) -> Path:
        """A per-image cache entry: ``scores/<scorer>/<cache>/<idx:05d>/<j:04d>.json``."""
        return self.scores(scorer) / cache / f"{prompt_index:05d}" / f"{sample_index:04d}.json"

    def is_scored(self, scorer: str) -> bool:
        """Whether ``scorer``'s summary exists and is no older than the manifest (rewritten whenever images are made)."""
        summary, manifest = self.summary(scorer), self.manifest
        return summary.is_file() and manifest.is_file() and summary.stat().st_mtime >= manifest.stat().st_mtime

    @classmethod
    def of_summary(cls, summary: str | Path) -> tuple["RunLayout", str]:
        """The run and scorer folder name a ``scores/<scorer>/summary.parquet`` belongs to."""
        summary = Path(summary)
        return cls(summary.parents[2]), summary.parent.name


@dataclass(frozen=True)
class RunRootLayout(_Folder):
    """The paths of a run root: ``runs/<model>/<benchmark>/`` plus what is made from them."""

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def run(self, model: str, benchmark: str) -> RunLayout:
        return RunLayout(self.runs / model / benchmark)

    def summaries(self) -> list[Path]:
        """Every ``runs/<model>/<benchmark>/scores/<scorer>/summary.parquet``, sorted."""
        return sorted(self.runs.glob(f"*/*/scores/*/{SUMMARY}"))

    def manifests(self) -> list[Path]:
        """Every ``runs/<model>/<benchmark>/manifest.json``, sorted."""
        return sorted(self.runs.glob(f"*/*/{MANIFEST}"))

    @property
    def table(self) -> Path:
        return self.root / "table.md"

    @property
    def report(self) -> Path:
        return self.root / "report"
