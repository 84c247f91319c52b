"""PickScore (CLIP ViT-H/14 fine-tuned on Pick-a-Pic): pure arithmetic, the model, run scoring, comparison.

- ``functional``: ``pickscore_from_embeddings``, mean over prompts, bootstrap and paired bootstrap (no model);
- ``model``: ``PickScorer`` on transformers (uint8 PIL images in, text truncated at 77 tokens);
- ``score``: ``score_pickscore_run`` over a run directory (resumable, shardable, parquet out);
- ``compare``: ``compare_runs`` for two runs on the same prompts.

Only ``functional`` is imported eagerly; the others load torch/transformers-heavy code on use.
"""

from rdmeval.scorers.pickscore.functional import (
    PairedComparison,
    bootstrap_ci,
    mean_over_prompts,
    paired_bootstrap,
    per_prompt_means,
    pickscore_from_embeddings,
)

__all__ = [
    "PairedComparison",
    "bootstrap_ci",
    "mean_over_prompts",
    "paired_bootstrap",
    "per_prompt_means",
    "pickscore_from_embeddings",
]
