"""The ``shared_data`` fixture finds the real prompt files in either layout, the user's folders first."""

from __future__ import annotations

from conftest import REAL_FILES, _find_real_file


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x", encoding="utf-8")
    return path


def test_finds_the_ci_layout_and_a_flat_folder_in_search_order(tmp_path):
    ci, flat, empty = tmp_path / "ci", tmp_path / "flat", tmp_path / "empty"
    empty.mkdir()
    for rel in REAL_FILES:
        _touch(ci / rel)
    flat_meta = _touch(flat / "evaluation_metadata.jsonl")
    assert _find_real_file(REAL_FILES[0], [empty, flat, ci]) == flat_meta  # the first folder holding it wins
    assert _find_real_file(REAL_FILES[0], [ci, flat]) == ci / REAL_FILES[0]
    assert _find_real_file(REAL_FILES[2], [empty, flat, ci]) == ci / REAL_FILES[2]
    assert _find_real_file(REAL_FILES[2], [empty, flat]) is None
