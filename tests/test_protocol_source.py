"""Each benchmark's protocol is written once (benchmarks/paper-table.toml): rdmeval/protocol.py's
defaults for ``rdmeval generate`` and its help text follow the file, read here with plain tomllib."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from rdmeval.api import SeedPolicy
from rdmeval.cli.main import build_parser
from rdmeval.protocol import PROTOCOLS

SUITE = Path(__file__).resolve().parents[1] / "benchmarks" / "paper-table.toml"


def _benchmarks() -> dict[str, dict]:
    return {b["prompts"]: b for b in tomllib.loads(SUITE.read_text(encoding="utf-8"))["benchmarks"]}


@pytest.mark.parametrize("name", ["geneval", "coco-val", "pickapic-test"])
def test_generate_defaults_are_the_suites(name):
    b, p = _benchmarks()[name], PROTOCOLS[name]
    assert (p.n_per_prompt, p.ctx_len, p.batch_size) == (b["n_per_prompt"], b["ctx_len"], b["batch_size"])
    kind, _, arg = b["seed_policy"].partition(":")
    assert p.seed_policy == (SeedPolicy(kind, base=int(arg)) if kind == "per-sample" else SeedPolicy(kind, seed=int(arg)))


def test_demo_sets_follow_the_benchmark_they_stand_in_for():
    for demo, real in (("demo-geneval", "geneval"), ("demo-captions", "coco-val")):
        d, r = PROTOCOLS[demo], PROTOCOLS[real]
        assert (d.n_per_prompt, d.ctx_len, d.seed_policy, d.batch_size) == (r.n_per_prompt, r.ctx_len, r.seed_policy, r.batch_size)


def test_generate_help_states_the_suites_numbers():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["generate"].format_help()
    for name, b in _benchmarks().items():
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{name}:"))
        assert f"ctx {b['ctx_len']}" in line and f"batch {b['batch_size']}" in line
        assert line.split(":", 1)[1].strip().startswith(f"{b['n_per_prompt']} image")
