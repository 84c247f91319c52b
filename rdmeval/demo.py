"""``rdmeval demo``: every pipeline stage, end to end, on CPU, with tiny models built offline.

It calls the same functions as a real run (prompt sets -> generate_run -> run store -> scorers
-> results); only the models are tiny and random, so its numbers mean nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rdmeval.generation import generate_run
from rdmeval.generators.registry import GeneratorOptions, build_generator
from rdmeval.prompts import load_prompt_set
from rdmeval.protocol import protocol_for


@dataclass
class DemoReport:
    out: Path
    stages: list[tuple[str, float, str]] = field(default_factory=list)

    def stage(self, name: str, fn: Callable[[], str]) -> None:
        t0 = time.time()
        print(f"[demo] {name} ...", flush=True)
        detail = fn()
        self.stages.append((name, time.time() - t0, detail))
        print(f"[demo] {name}: {detail} ({time.time() - t0:.1f}s)", flush=True)


def run_demo(out: str | Path, *, progress: bool = False) -> DemoReport:
    out = Path(out)
    report = DemoReport(out)
    runs: dict[str, Path] = {}

    def gen(model: str, set_name: str) -> str:
        ps = load_prompt_set(set_name)
        proto = protocol_for(ps.name, ps.format)
        generator = build_generator(model, GeneratorOptions(height=64, width=64, device="cpu"))
        run_dir = out / "runs" / model / set_name
        summary = generate_run(generator, ps, run_dir, n_per_prompt=proto.n_per_prompt, seed_policy=proto.seed_policy,
                               rng_device="cpu", batch_size=8, progress=progress)
        runs[f"{model}/{set_name}"] = run_dir
        return summary.line()

    for set_name in ("demo-geneval", "demo-captions"):
        report.stage(f"generate dummy on {set_name}", lambda s=set_name: gen("dummy", s))
    return report


def main(out: str | Path, progress: bool = False) -> int:
    t0 = time.time()
    report = run_demo(out, progress=progress)
    print(f"\nrdmeval demo finished in {time.time() - t0:.1f}s. Outputs under {report.out.resolve()}:")
    for name, secs, detail in report.stages:
        print(f"  - {name} [{secs:.1f}s]")
    print("These models are tiny and random: the numbers exercise the pipeline and mean nothing.")
    return 0
