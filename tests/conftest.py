"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"  # where CI puts the real prompt files, beside the checkout
#: RDMEVAL_PROMPTS_PATH as the user set it, read before ``_isolated_cache`` removes it from every test.
USER_PROMPTS_PATH = os.environ.get("RDMEVAL_PROMPTS_PATH", "")
#: The real files some tests need, by their place in the layout the ``shared_data`` fixture returns.
REAL_FILES = (
    "geneval/evaluation_metadata.jsonl",
    "geneval/object_names.txt",
    "rdm-assets/pickapic_test_prompts.jsonl",
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own RDMEVAL_CACHE and no network."""
    monkeypatch.setenv("RDMEVAL_CACHE", str(tmp_path_factory.mktemp("rdmeval-cache")))
    monkeypatch.setenv("RDMEVAL_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("RDMEVAL_PROMPTS_PATH", raising=False)


def _find_real_file(rel: str, folders: list[Path]) -> Path | None:
    """``rel`` (e.g. geneval/object_names.txt) in a folder, as laid out in ``REAL_FILES`` or flat."""
    for folder in folders:
        for candidate in (folder / rel, folder / Path(rel).name):
            if candidate.is_file():
                return candidate
    return None


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """A folder holding the real GenEval / Pick-a-Pic files (never committed), laid out as ``REAL_FILES``.

    Looked up in the folders of $RDMEVAL_PROMPTS_PATH, then in ../shared/data beside the checkout (CI).
    Missing files skip the test, or fail it under CI=1.
    """
    folders = [Path(p).expanduser() for p in USER_PROMPTS_PATH.split(os.pathsep) if p] + [SHARED_DATA]
    found = {rel: _find_real_file(rel, folders) for rel in REAL_FILES}
    missing = [rel for rel, path in found.items() if path is None]
    if missing:
        msg = (
            f"the real prompt files {missing} are not in {[str(f) for f in folders]}. To run these tests, set "
            f"RDMEVAL_PROMPTS_PATH to a folder with {', '.join(REAL_FILES)} (or the three files side by side): "
            "evaluation_metadata.jsonl and object_names.txt from djghosh13/geneval (prompts/), "
            "pickapic_test_prompts.jsonl from vita-epfl/RDM (assets/)"
        )
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    if all(path == SHARED_DATA / rel for rel, path in found.items()):
        return SHARED_DATA
    root = tmp_path_factory.mktemp("real-prompt-files")
    for rel, path in found.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(path.resolve())
    return root


@pytest.fixture(scope="session")
def tiny_klein(tmp_path_factory) -> dict[str, Path]:
    """The tiny FLUX.2 [klein] fixture (built offline once per session): paths from build_tiny_klein."""
    from rdmeval.fixtures import build_tiny_klein

    return build_tiny_klein(tmp_path_factory.getbasetemp() / "tiny-klein")


@pytest.fixture(scope="session")
def tiny_flux_assets(tiny_klein, tmp_path_factory) -> Path:
    """flux_tiny's assets (ctx and τ tables, bundles) built from the tiny klein fixture once per session."""
    from rdmeval.distill.tiny_assets import build_tiny_assets

    return build_tiny_assets(tiny_klein["root"], tmp_path_factory.getbasetemp() / "tiny-flux-assets")


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
