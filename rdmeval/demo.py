"""``rdmeval demo``: every pipeline stage, end to end, on CPU, with tiny models built offline.

It is ``rdmeval reproduce --smoke`` (the paper-table suite on the tiny klein fixture, a random
detector and a tiny PickScore CLIP: generate -> score -> table -> report) followed by a
contamination audit of the demo GenEval prompts against a demo training pool. Every stage calls
the same functions as a real run; only the models are tiny and random, so the numbers mean nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from rdmeval._assets import asset_dir
from rdmeval.api.layout import RunRootLayout


def run_demo(out: str | Path, *, progress: bool = False) -> dict[str, Path]:
    from rdmeval.contamination import run_audit
    from rdmeval.reproduce import ReproduceOptions, reproduce, smoke_options
    from rdmeval.suites import load_suite

    out = Path(out)
    suite = load_suite("paper-table")
    opts = smoke_options(suite, ReproduceOptions(out=out, progress=progress), out / "fixtures")
    table = reproduce(suite, opts)
    layout = RunRootLayout(out)
    runs = layout.runs
    scores = {m: layout.run(m, "geneval").per_image("geneval") for m in ("student", "teacher")}
    audit_dir = out / "audit"
    print("[demo] contamination audit: demo-geneval against the demo training pool ...", flush=True)
    run_audit("demo-geneval", asset_dir("benchmarks") / "pools" / "demo.toml", out_dir=audit_dir,
              scores={k: v for k, v in scores.items() if v.exists()}, progress=progress)
    return {"runs": runs, "table": table or layout.table, "report": layout.report / "index.html",
            "audit": audit_dir / "report.md"}


def main(out: str | Path, progress: bool = False) -> int:
    t0 = time.time()
    outputs = run_demo(out, progress=progress)
    print(f"\nrdmeval demo finished in {time.time() - t0:.0f}s. Outputs:")
    for name, path in outputs.items():
        print(f"  {name:<7} {Path(path).resolve()}")
    print("The models are tiny and random: the numbers exercise the pipeline and mean nothing.")
    print("GenEval's detections and verdicts come from a stand-in detector with random weights: they mean nothing "
          "(the table, the report and the audit say so too).")
    return 0
