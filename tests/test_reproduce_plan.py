"""How `rdmeval reproduce` walks its jobs: one pipeline load per model, each benchmark at its own ctx_len.

The paper table's benchmarks use two text lengths (GenEval 48, COCO-val and Pick-a-Pic 232). A klein generator
changes its text length in place (``set_ctx_len``: tests/test_sweep.py checks it gives the images and the record
of a fresh load), so each klein model is loaded once; a generator without it is built again per text length.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rdmeval import reproduce
from rdmeval.reproduce import ReproduceOptions, suite_jobs
from rdmeval.suites import load_suite

DEMO = {"geneval": "demo-geneval", "coco-val": "demo-captions", "pickapic-test": "demo-captions"}


class _Generator:
    def __init__(self, preset: str, ctx_len: int, log: list, in_place: bool):
        self.preset, self.ctx_len, self.log = preset, ctx_len, log
        if in_place:
            self.set_ctx_len = self._set_ctx_len

    def _set_ctx_len(self, ctx_len: int) -> None:
        self.log.append(("set_ctx_len", self.preset, ctx_len))
        self.ctx_len = ctx_len


@pytest.mark.parametrize("in_place", [True, False])
def test_each_model_loads_once_and_runs_each_benchmark_at_its_ctx_len(tmp_path, monkeypatch, in_place):
    log: list[tuple] = []

    def build(preset, options):
        log.append(("load", preset, options.ctx_len))
        return _Generator(preset, options.ctx_len, log, in_place)

    def generate(generator, ps, out, **kw):
        log.append(("generate", generator.preset, out.name, generator.ctx_len))
        return SimpleNamespace(line=lambda: "")

    monkeypatch.setattr(reproduce, "build_generator", build)
    monkeypatch.setattr(reproduce, "generate_run", generate)
    monkeypatch.setattr(reproduce, "_free_memory", lambda: None)
    suite = load_suite("paper-table")
    ctx = {b.name: b.ctx_len for b in suite.benchmarks}
    assert sorted(set(ctx.values())) == [48, 232]  # two text lengths, so the plan matters
    opts = ReproduceOptions(out=tmp_path, prompt_overrides=DEMO, progress=False)
    runs = reproduce._generate_all(suite_jobs(suite, opts), opts)

    assert set(runs) == {(m.name, b.name) for m in suite.models for b in suite.benchmarks}
    generated = [e for e in log if e[0] == "generate"]
    assert sorted((p, bench) for _, p, bench, _ in generated) == sorted(runs)
    assert all(c == ctx[bench] for _, _, bench, c in generated)  # every benchmark at its own ctx_len
    loads = [e for e in log if e[0] == "load"]
    if in_place:
        assert [p for _, p, _ in loads] == [m.preset for m in suite.models]  # one load per model
        assert [e for e in log if e[0] == "set_ctx_len"] == [("set_ctx_len", m.preset, 232) for m in suite.models]
    else:
        assert sorted((p, c) for _, p, c in loads) == sorted((m.preset, c) for m in suite.models for c in (48, 232))
