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


@pytest.fixture(scope="session")
def tiny_klein(tmp_path_factory) -> dict[str, Path]:
    """The tiny FLUX.2 [klein] fixture (built offline once per session): paths from build_tiny_klein."""
    from rdmeval.fixtures import build_tiny_klein

    return build_tiny_klein(tmp_path_factory.getbasetemp() / "tiny-klein")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A tiny random CLIP model + processor folder (PickScore's architecture, built offline)."""
    from rdmeval.fixtures.tiny_clip import build_tiny_clip

    return build_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture
def one_torch_thread():
    """Tiny models: extra threads only add overhead and contention on a 2-core CI host."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
