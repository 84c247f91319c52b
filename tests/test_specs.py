"""One validation layer for every spec file: the same errors for suites, pools, published numbers, prompt sets."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from rdmeval._assets import asset_dir
from rdmeval.contamination.pool_spec import load_pool_spec
from rdmeval.errors import RdmevalError
from rdmeval.prompts.registry import load_registry, registry
from rdmeval.results.published import load_published, published_path
from rdmeval.specs import SpecError, Where, from_mapping
from rdmeval.suites import load_suite


def _edit(src: Path, dst: Path, old: str, new: str) -> Path:
    """``src`` with the first ``old`` (a whole line) replaced by ``new``, written to ``dst``."""
    text = src.read_text(encoding="utf-8")
    pattern = re.compile(rf"^{re.escape(old)}$", re.M)
    assert pattern.search(text), f"{old!r} is not a line of {src}"
    dst.write_text(pattern.sub(new, text, count=1), encoding="utf-8")
    return dst


# Per spec kind: (packaged file, loader, a line to break, where the error must point).
SUITE = asset_dir("benchmarks") / "paper-table.toml"
POOL = asset_dir("benchmarks") / "pools" / "demo.toml"
SETS = asset_dir("prompts") / "sets.toml"
CASES = {
    "suite": (SUITE, load_suite, "batch_size = 16             # chunks of 16, as the reference", "benchmarks[1]"),
    "pool": (POOL, load_pool_spec, 'prompt_set = "demo-geneval"', "source[1] (demo-geneval-x32)"),
    "published": (published_path(), load_published, 'decimals = 2', "values[0]"),
    "prompt-sets": (SETS, load_registry, 'n_prompts = 553', "geneval"),
}


def _key_of(line: str) -> str:
    return line.split("=")[0].strip()


@pytest.mark.parametrize("kind", CASES)
def test_typo_key_names_file_table_key_and_suggests(tmp_path, kind):
    src, load, line, table = CASES[kind]
    key = _key_of(line)
    typo = key[:-2] + key[-1] + key[-2]  # swap the last two letters: batch_size -> batch_siez
    bad = _edit(src, tmp_path / src.name, line, line.replace(key, typo, 1))
    with pytest.raises(SpecError) as info:
        load(bad)
    msg = str(info.value)
    assert msg.startswith(f"{bad}: {table}: unknown key '{typo}' (did you mean '{key}'?)"), msg
    assert "valid keys:" in msg


WRONG_TYPES = {
    # kind: (line to break, its replacement, what the message must say)
    "suite": ("n_per_prompt = 4", 'n_per_prompt = "4"', "benchmarks[0]: key 'n_per_prompt' must be an integer, got '4' (str)"),
    "pool": ("weight = 32", "weight = true", "key 'weight' must be an integer or a number or a string, got True (bool)"),
    "published": ("decimals = 2", "decimals = 2.0", "values[0]: key 'decimals' must be an integer, got 2.0 (float)"),
    "prompt-sets": ("n_prompts = 553", 'n_prompts = "553"', "geneval: key 'n_prompts' must be an integer, got '553' (str)"),
}


@pytest.mark.parametrize("kind", WRONG_TYPES)
def test_wrong_type_names_the_key_and_what_is_expected(tmp_path, kind):
    src, load, _, _ = CASES[kind]
    old, new, expected = WRONG_TYPES[kind]
    bad = _edit(src, tmp_path / src.name, old, new)
    with pytest.raises(SpecError) as info:
        load(bad)
    assert str(info.value).startswith(f"{bad}: "), info.value
    assert expected in str(info.value)


def test_missing_required_key_is_named(tmp_path):
    bad = _edit(SUITE, tmp_path / "s.toml", "ctx_len = 232", "")
    with pytest.raises(SpecError, match=re.escape(f"{bad}: benchmarks[2]: key 'ctx_len' is required (an integer)")):
        load_suite(bad)


def test_suite_smoke_table_is_checked_too(tmp_path):
    """A typo in [smoke] (or a benchmark name there) used to be ignored: the smoke run silently fell back."""
    bad = _edit(SUITE, tmp_path / "s.toml", "resolution = 64", "resolutoin = 64")
    with pytest.raises(SpecError, match=re.escape("smoke: unknown key 'resolutoin' (did you mean 'resolution'?)")):
        load_suite(bad)
    bad = _edit(SUITE, tmp_path / "t.toml", "n_per_prompt = { geneval = 1 }", "n_per_prompt = { genevel = 1 }")
    with pytest.raises(SpecError, match=re.escape("smoke.n_per_prompt: unknown key 'genevel' (did you mean 'geneval'?)")):
        load_suite(bad)


def test_spec_errors_keep_their_specific_classes(tmp_path):
    from rdmeval.contamination.pool_spec import PoolSpecError
    from rdmeval.results.published import PublishedFileError

    assert issubclass(PoolSpecError, SpecError) and issubclass(PublishedFileError, SpecError)
    assert issubclass(SpecError, RdmevalError)  # the CLI prints it and exits with 2


def test_every_packaged_spec_loads(tmp_path, monkeypatch):
    for suite in sorted(asset_dir("benchmarks").glob("*.toml")):
        assert load_suite(suite).benchmarks
    for pool in sorted((asset_dir("benchmarks") / "pools").glob("*.toml")):
        raw = tomllib.loads(pool.read_text(encoding="utf-8"))
        for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", pool.read_text(encoding="utf-8")):
            monkeypatch.setenv(var, str(tmp_path / f"{var}.json"))
        assert len(load_pool_spec(pool).sources) == len(raw["source"])
    assert load_published().values
    assert set(registry()) == set(tomllib.loads(SETS.read_text(encoding="utf-8")))


# ------------------------------------------------------------------ from_mapping itself


@dataclass(frozen=True)
class _Example:
    name: str
    count: int = 0
    ratio: float = 1.0
    mode: Literal["a", "b"] = "a"
    tags: list[str] = field(default_factory=list)
    table: dict[str, Any] = field(default_factory=dict)
    maybe: int | None = None


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"name": "x", "count": True}, "key 'count' must be an integer, got True (bool)"),  # TOML true is no count
        ({"name": "x", "ratio": "1"}, "key 'ratio' must be a number, got '1' (str)"),
        ({"name": "x", "mode": "c"}, "key 'mode' must be one of 'a', 'b', got 'c' (str)"),
        ({"name": "x", "tags": ["a", 1]}, "key 'tags' must be a list of strings, got ['a', 1] (list)"),
        ({"name": "x", "table": [1]}, "key 'table' must be a table, got [1] (list)"),
        ({"name": "x", "maybe": "1"}, "key 'maybe' must be an integer, got '1' (str)"),
        ({}, "key 'name' is required (a string)"),
        ({"name": "x", "cuont": 1, "zzz": 2}, "unknown keys 'cuont' (did you mean 'count'?); 'zzz'; valid keys: count, maybe,"),
        ([1], "must be a table, got [1] (list)"),
    ],
)
def test_from_mapping_errors(raw, message):
    with pytest.raises(SpecError, match=re.escape(f"f.toml: things[3]: {message}")):
        from_mapping(_Example, raw, Where("f.toml").child("things").item(3))


def test_from_mapping_builds_the_dataclass_and_takes_fixed_fields():
    got = from_mapping(_Example, {"count": 2, "ratio": 3, "tags": ["t"], "maybe": None}, Where("f.toml"), name="fixed")
    assert got == _Example(name="fixed", count=2, ratio=3, tags=["t"])  # an int is a valid float
    with pytest.raises(SpecError, match="unknown key 'name'"):  # a fixed field is not a key of the file
        from_mapping(_Example, {"name": "x"}, Where("f.toml"), name="fixed")
