"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own RDMEVAL_CACHE and no network."""
    monkeypatch.setenv("RDMEVAL_CACHE", str(tmp_path_factory.mktemp("rdmeval-cache")))
    monkeypatch.setenv("RDMEVAL_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RDMEVAL_PROMPTS_PATH", raising=False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real GenEval / Pick-a-Pic files in ../shared/data (present in CI; never committed)."""
    if not (SHARED_DATA / "geneval" / "evaluation_metadata.jsonl").is_file():
        msg = (
            f"the real prompt files are not at {SHARED_DATA} (expected geneval/evaluation_metadata.jsonl "
            "and rdm-assets/pickapic_test_prompts.jsonl beside the checkout)"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED_DATA
