"""Paired comparison of two PickScore-scored runs on the same prompts (e.g. student vs teacher).

It reads only the files the PickScore scorer wrote (so the results layer needs no scorer code);

Reads each run's ``scores/pickscore/per_prompt.parquet`` (written by ``rdmeval score pickscore``),
checks that both runs used the same prompt set (name, version, sha256, parameters), the same
prompts, and the same scorer (model, processor, dtype, preprocessing), then reports
mean(A - B) over prompts with a paired bootstrap interval and the win rate of A.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rdmeval.api.layout import PER_PROMPT, RunLayout
from rdmeval.bootstrap import LEVEL, N_RESAMPLES, SEED, PairedComparison, paired_bootstrap
from rdmeval.errors import RdmevalError
from rdmeval.api.rows import provenance_from_run
from rdmeval.store import RunStore, diff_requests

#: The PickScore scorer's folder under ``<run>/scores/``.
SCORES_FOLDER = "pickscore"


@dataclass(frozen=True)
class ScoredRun:
    run_dir: Path
    manifest: dict[str, Any]
    per_prompt: pd.DataFrame

    @property
    def prompt_set(self) -> dict[str, Any]:
        return self.manifest.get("request", {}).get("prompt_set", {})

    @property
    def model(self) -> str:
        m = self.manifest.get("request", {}).get("model", {})
        return str(m.get("preset") or m.get("name", "?"))


def load_scored_run(run_dir: str | os.PathLike[str], scores_dir: str | os.PathLike[str] | None = None) -> ScoredRun:
    store = RunStore(Path(run_dir))
    manifest = store.read_manifest()
    path = Path(scores_dir) / PER_PROMPT if scores_dir else RunLayout(store.root).per_prompt(SCORES_FOLDER)
    if not path.is_file():
        raise RdmevalError(f"{path} not found: score the run first with `rdmeval score pickscore {run_dir}`")
    return ScoredRun(store.root, manifest, pd.read_parquet(path))


@dataclass(frozen=True)
class RunComparison:
    a: ScoredRun
    b: ScoredRun
    paired: PairedComparison

    def line(self) -> str:
        p, ps = self.paired, self.a.prompt_set
        pct = int(round(p.level * 100))
        lines = [
            f"PickScore {ps.get('name', '?')} version {ps.get('version', '?')}: A = {self.a.run_dir} ({self.a.model}), "
            f"B = {self.b.run_dir} ({self.b.model}), {p.n} prompts",
            f"  mean A {p.mean_a:.4f}   mean B {p.mean_b:.4f}",
            f"  A - B = {p.mean_diff:+.4f}  {pct}% paired-bootstrap CI [{p.ci_low:+.4f}, {p.ci_high:+.4f}]",
            f"  win rate of A = {p.win_rate:.3f}  {pct}% CI [{p.win_rate_ci_low:.3f}, {p.win_rate_ci_high:.3f}]  "
            f"(wins {p.wins}, losses {p.losses}, ties {p.ties}; ties count half)",
        ]
        if ps.get("definition"):
            lines.append(f"  prompt set {ps.get('name')} version {ps.get('version')}: {ps['definition']}")
        return "\n".join(lines)

    def rows(self) -> list[dict[str, Any]]:
        """Result rows (rdmeval.api.rows schema): the difference and the win rate."""
        prov = provenance_from_run(self.a.manifest, f"{self.a.run_dir} - {self.b.run_dir}")
        protocol = {
            "a": prov["protocol"],
            "b": provenance_from_run(self.b.manifest, str(self.b.run_dir))["protocol"],
            "scorer_identity": json.loads(self.a.per_prompt["scorer_identity"].iloc[0]),
            "paired_bootstrap": {"n_resamples": self.paired.n_resamples, "seed": self.paired.seed, "level": self.paired.level,
                                 "resampling": "prompts, pairs kept together", "win": "A > B; ties count half"},
        }
        p = self.paired
        base = {**prov, "model": f"{self.a.model} - {self.b.model}", "protocol": protocol,
                "scorer": f"{self.a.per_prompt['scorer'].iloc[0]}-paired", "scorer_version": str(self.a.per_prompt["scorer_version"].iloc[0]),
                "category": "all", "n": p.n,
                "n_prompts": p.n, "coverage": 1.0, "complete": True, "higher_is_better": True,
                "run_a": str(self.a.run_dir), "run_b": str(self.b.run_dir)}
        return [
            {**base, "metric": "pickscore_diff", "value": p.mean_diff, "ci_low": p.ci_low, "ci_high": p.ci_high},
            {**base, "metric": "pickscore_win_rate", "value": p.win_rate, "ci_low": p.win_rate_ci_low, "ci_high": p.win_rate_ci_high},
        ]


def _check_comparable(a: ScoredRun, b: ScoredRun, allow_scorer_mismatch: bool) -> None:
    keys = ("name", "version", "sha256", "params")
    diffs = diff_requests({k: a.prompt_set.get(k) for k in keys}, {k: b.prompt_set.get(k) for k in keys})
    if diffs:
        raise RdmevalError(
            f"{a.run_dir} and {b.run_dir} were generated from different prompt sets, so a paired comparison is "
            "meaningless:\n  " + "\n  ".join(diffs) + "\nCompare runs of the same prompt set (same name, version and parameters)."
        )
    pa, pb = set(a.per_prompt["prompt_index"].tolist()), set(b.per_prompt["prompt_index"].tolist())
    if pa != pb:
        raise RdmevalError(
            f"the scored prompts differ: {a.run_dir} has {len(pa)}, {b.run_dir} has {len(pb)}, {len(pa & pb)} in common "
            "(an incomplete or --limit run?). Complete both runs with `rdmeval generate` and score them again."
        )
    ta = dict(zip(a.per_prompt["prompt_index"], a.per_prompt["prompt"]))
    tb = dict(zip(b.per_prompt["prompt_index"], b.per_prompt["prompt"]))
    bad = [i for i in sorted(pa) if ta[i] != tb[i]]
    if bad:
        raise RdmevalError(f"prompt texts differ at indices {bad[:10]} although the prompt sets match; regenerate one of the runs")
    ia = set(a.per_prompt["scorer_identity"]) if "scorer_identity" in a.per_prompt else {None}
    ib = set(b.per_prompt["scorer_identity"]) if "scorer_identity" in b.per_prompt else {None}
    if ia != ib and not allow_scorer_mismatch:
        raise RdmevalError(
            f"the two runs were scored differently:\n  A: {sorted(map(str, ia))}\n  B: {sorted(map(str, ib))}\n"
            "Score both with the same --model, --processor, --dtype and --image-backend "
            "(or pass --allow-scorer-mismatch to compare anyway)."
        )


def compare_runs(
    run_a: str | os.PathLike[str],
    run_b: str | os.PathLike[str],
    *,
    scores_a: str | os.PathLike[str] | None = None,
    scores_b: str | os.PathLike[str] | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
    allow_scorer_mismatch: bool = False,
) -> RunComparison:
    """A vs B prompt by prompt (per-prompt means), paired bootstrap over prompts."""
    a, b = load_scored_run(run_a, scores_a), load_scored_run(run_b, scores_b)
    _check_comparable(a, b, allow_scorer_mismatch)
    sa = a.per_prompt.set_index("prompt_index")["pickscore"].sort_index()
    sb = b.per_prompt.set_index("prompt_index")["pickscore"].reindex(sa.index)
    return RunComparison(a, b, paired_bootstrap(sa.to_numpy(), sb.to_numpy(), n_resamples=n_resamples, seed=seed, level=level))
