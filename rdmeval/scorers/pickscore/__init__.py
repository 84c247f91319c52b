"""PickScore (CLIP ViT-H/14 fine-tuned on Pick-a-Pic): pure arithmetic, the model, run scoring, comparison.

- ``functional``: ``pickscore_from_embeddings``, mean over prompts, bootstrap and paired bootstrap (no model);
- ``model``: ``PickScorer`` on transformers (uint8 PIL images in, text truncated at 77 tokens);
- ``score``: ``score_pickscore_run`` over a run directory (resumable, shardable, parquet out);
- ``compare``: ``compare_runs`` for two runs on the same prompts.

Every name loads its module on first use, so importing the package (or its torch-free ``defaults``)
stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "PairedComparison": "functional",
    "bootstrap_ci": "functional",
    "mean_over_prompts": "functional",
    "paired_bootstrap": "functional",
    "per_prompt_means": "functional",
    "pickscore_from_embeddings": "functional",
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
