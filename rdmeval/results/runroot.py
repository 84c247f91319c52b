"""Reading a run root: the scorers' result rows and the run directories under ``<root>/runs``.

:func:`read_run_root` finds every ``runs/<model>/<benchmark>/scores/<scorer>/summary.parquet`` and
every ``runs/<model>/<benchmark>/manifest.json`` and returns them as a :class:`RunRoot`, which the
section builder (:mod:`rdmeval.results.sections`) and the report read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rdmeval.api.layout import RunLayout, RunRootLayout
from rdmeval.errors import RdmevalError
from rdmeval.api.rows import read_rows


@dataclass
class RunRoot:
    """What is under ``<root>/runs``: the result rows and the run directories (generated or not)."""

    root: Path
    rows: pd.DataFrame  # read_rows + _run_dir, _model_key, _scorer_dir
    runs: dict[tuple[str, str], Path]  # (model folder, benchmark) -> run dir
    presets: dict[str, str]  # model folder -> generator preset (for published lookups)


def runs_dir(root: str | Path) -> Path:
    runs = RunRootLayout(root).runs
    if runs.is_dir():
        return runs
    raise RdmevalError(
        f"{root} has no runs/ folder; RUN_ROOT is the folder that holds runs/<model>/<benchmark>/ "
        "(the --out of `rdmeval reproduce`)"
    )


def read_run_root(root: str | Path) -> RunRoot:
    root = Path(root)
    base = runs_dir(root)
    frames = []
    for path in RunRootLayout(root).summaries():
        try:
            df = read_rows([path])
        except Exception as exc:  # pyarrow raises several types for a corrupt file
            raise RdmevalError(f"{path}: cannot read the result rows ({exc}); rescore that run") from None
        run_dir = RunLayout.of_summary(path)[0].root
        df["_run_dir"] = str(run_dir)
        df["_model_key"] = run_dir.parent.name
        df["_bench_key"] = run_dir.name  # the suite's benchmark (a smoke run may use a stand-in prompt set)
        df["_scorer_dir"] = path.parent.name
        frames.append(df)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["_run_dir", "_model_key", "_bench_key", "_scorer_dir", "model", "benchmark", "scorer"])
    runs: dict[tuple[str, str], Path] = {}
    presets: dict[str, str] = {}
    for manifest in RunRootLayout(root).manifests():
        try:
            req = json.loads(manifest.read_text()).get("request", {})
        except (OSError, json.JSONDecodeError):
            continue  # a broken manifest leaves the run "not run"; `rdmeval generate` explains it
        run_dir = manifest.parent
        runs[(run_dir.parent.name, run_dir.name)] = run_dir
        model = req.get("model", {})
        presets.setdefault(run_dir.parent.name, str(model.get("preset") or model.get("name") or run_dir.parent.name))
    for _, r in rows.drop_duplicates("_run_dir").iterrows():
        presets[r["_model_key"]] = str(r.get("model") or r["_model_key"])
        runs.setdefault((r["_model_key"], r["_bench_key"]), Path(r["_run_dir"]))
    if rows.empty and not runs:
        raise RdmevalError(
            f"nothing under {base}: no run directories (runs/<model>/<benchmark>/manifest.json) and no score summaries "
            "(runs/*/*/scores/*/summary.parquet). Generate and score runs first (`rdmeval reproduce` does both)"
        )
    return RunRoot(root=root, rows=rows, runs=runs, presets=presets)
