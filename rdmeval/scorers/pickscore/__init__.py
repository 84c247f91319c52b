"""PickScore (CLIP ViT-H/14 fine-tuned on Pick-a-Pic): pure arithmetic, the model, run scoring, comparison.

- ``functional``: ``pickscore_from_embeddings``, mean over prompts, bootstrap and paired bootstrap (no model);
- ``model``: ``PickScorer`` on transformers (uint8 PIL images in, text truncated at 77 tokens);
- ``score``: ``score_pickscore_run`` over a run directory (resumable, shardable, parquet out);
- ``compare``: ``compare_runs`` for two runs on the same prompts.

``functional`` (which needs torch) is imported eagerly; the names of the other modules load on
first use, so importing the package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from rdmeval.scorers.pickscore.functional import (
    PairedComparison,
    bootstrap_ci,
    mean_over_prompts,
    paired_bootstrap,
    per_prompt_means,
    pickscore_from_embeddings,
)

_LAZY: dict[str, str] = {
    "PickScorer": "model",
    "to_uint8_pil": "model",
    "PickScoreRunResult": "score",
    "score_pickscore_run": "score",
    "RunComparison": "compare",
    "compare_runs": "compare",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PairedComparison",
    "PickScoreRunResult",
    "PickScorer",
    "RunComparison",
    "bootstrap_ci",
    "compare_runs",
    "mean_over_prompts",
    "paired_bootstrap",
    "per_prompt_means",
    "pickscore_from_embeddings",
    "score_pickscore_run",
    "to_uint8_pil",
]
