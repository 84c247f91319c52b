"""Data shipped with rdmeval: prompts/, benchmarks/ and results/ from the repository top level.

In a source checkout they are read from the top-level folders; in an installed wheel they are
mapped into this package (see pyproject.toml [tool.setuptools.package-dir]).
"""

from __future__ import annotations

from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def asset_dir(name: str) -> Path:
    """Return the folder of a top-level data directory ('prompts', 'benchmarks', 'results')."""
    here = Path(__file__).resolve().parent / name
    if here.is_dir():
        return here
    repo = _REPO / name
    if repo.is_dir():
        return repo
    raise FileNotFoundError(f"rdmeval data folder '{name}' not found (looked in {here} and {repo})")
