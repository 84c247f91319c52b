"""The klein text conditioning: Qwen3 hidden states of layers (9, 18, 27), run only as deep as needed.

klein conditions its DiT on the hidden states after layers 9, 18 and 27 of Qwen3-4B's 36 (index 0
is the embedding output), stacked along the feature axis into ``(ctx_len, 3 * hidden)``. Layers 28-35,
the final norm's output and the LM head are never used, so :class:`Qwen3HiddenStates` keeps only
the first ``max(layers)`` decoder layers of a ``Qwen3Model`` and reads the hidden states with forward
hooks. The layers it runs are transformers' own modules called by transformers' own forward
(same masks, same rotary tables), so the states are identical to ``output_hidden_states`` of
the full model; ``tests/test_klein_text_encoder.py`` checks that bit for bit.

Prompts are encoded exactly as diffusers' ``Flux2KleinPipeline`` (and BFL's ``Qwen3Embedder``) do:
one user turn through the chat template with ``add_generation_prompt=True,
enable_thinking=False``, then ``padding="max_length", truncation=True, max_length=ctx_len``.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from rdmeval.errors import RdmevalError

from rdmeval.generators.text_layers import DEFAULT_TEXT_LAYERS  # re-exported


def _base_model(model: nn.Module) -> nn.Module:
    """The decoder stack (``Qwen3Model``) of a ``Qwen3ForCausalLM`` or the model itself."""
    inner = getattr(model, "model", None)
    return inner if isinstance(inner, nn.Module) and hasattr(inner, "layers") else model


def validate_layers(layers: Sequence[int], n_layers: int) -> tuple[int, ...]:
    layers = tuple(int(x) for x in layers)
    if not layers:
        raise RdmevalError("--text-encoder-layers: give at least one hidden-state index (klein uses 9,18,27)")
    bad = [x for x in layers if not 0 <= x <= n_layers]
    if bad:
        raise RdmevalError(
            f"--text-encoder-layers {','.join(map(str, layers))}: indices {bad} are out of range; the text encoder has "
            f"{n_layers} layers, so hidden-state indices run 0..{n_layers} (0 = embeddings)"
        )
    return layers


class Qwen3HiddenStates(nn.Module):
    """Qwen3 truncated after the deepest requested layer; returns the requested hidden states.

    ``forward(input_ids, attention_mask)`` -> ``(B, len(layers), L, hidden)``. Entry ``i`` is the output
    of decoder layer ``layers[i]`` (index 0: the embeddings), taken before any final norm, so it
    equals ``full_model(..., output_hidden_states=True).hidden_states[layers[i]]`` for every index
    below the full model's depth (transformers replaces the last entry by the normed output).
    The wrapped model is truncated in place (its deeper layers are dropped).
    """

    def __init__(self, model: nn.Module, layers: Sequence[int] = DEFAULT_TEXT_LAYERS):
        super().__init__()
        base = _base_model(model)
        n_layers = len(base.layers)
        self.layers = validate_layers(layers, n_layers)
        self.depth = max(self.layers)
        base.layers = nn.ModuleList(list(base.layers)[: self.depth])
        base.config.num_hidden_layers = self.depth
        if getattr(base.config, "layer_types", None) is not None:
            base.config.layer_types = list(base.config.layer_types)[: self.depth]
        self.model = base
        self._captured: dict[int, torch.Tensor] = {}

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    @contextlib.contextmanager
    def _hooks(self) -> Iterator[None]:
        handles = []

        def grab(index: int):
            def hook(_module: nn.Module, _args: Any, output: Any) -> None:
                self._captured[index] = output[0] if isinstance(output, tuple) else output

            return hook

        for index in set(self.layers):
            module = self.model.embed_tokens if index == 0 else self.model.layers[index - 1]
            handles.append(module.register_forward_hook(grab(index)))
        try:
            yield
        finally:
            for h in handles:
                h.remove()
            self._captured = {}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with self._hooks():
            self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
            return torch.stack([self._captured[i] for i in self.layers], dim=1)


def load_text_encoder(
    source: str, *, subfolder: str | None = "text_encoder", layers: Sequence[int] = DEFAULT_TEXT_LAYERS,
    dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
) -> Qwen3HiddenStates:
    """Load only the Qwen3 layers that ``layers`` needs (no LM head, no deeper layers) from ``source``."""
    from transformers import AutoConfig, Qwen3Model
    from transformers.utils import logging as hf_logging

    kwargs: dict[str, Any] = {"subfolder": subfolder} if subfolder else {}
    config = AutoConfig.from_pretrained(source, **kwargs)
    layers = validate_layers(layers, config.num_hidden_layers)
    depth = max(layers)
    if depth >= config.num_hidden_layers:
        raise RdmevalError(f"--text-encoder-layers: use hidden-state indices below {config.num_hidden_layers}")
    config.num_hidden_layers = depth
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = list(config.layer_types)[:depth]
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the deeper layers and the LM head are "unexpected" on purpose
    hf_logging.disable_progress_bar()
    try:
        model, info = Qwen3Model.from_pretrained(source, config=config, dtype=dtype, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise RdmevalError(
            f"text encoder in {source}: {len(missing)} weights are missing from the checkpoint "
            f"(first: {', '.join(missing[:5])}); the download is incomplete or not a Qwen3 model"
        )
    return Qwen3HiddenStates(model.to(device).eval().requires_grad_(False), layers)


class PromptEncoder:
    """Prompt strings -> klein prompt embeddings ``(B, ctx_len, len(layers) * hidden)``.

    Each distinct prompt is encoded once; a small LRU cache keeps recent prompts so that the samples
    of one prompt split across batches are not encoded again. Embeddings are returned in
    ``out_dtype`` on the encoder's device.
    """

    def __init__(self, tokenizer: Any, encoder: Qwen3HiddenStates, *, ctx_len: int, out_dtype: torch.dtype = torch.float32, cache_size: int = 16, batch_size: int = 32):
        if ctx_len < 1:
            raise RdmevalError(f"--ctx-len must be >= 1, got {ctx_len}")
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.ctx_len = int(ctx_len)
        self.out_dtype = out_dtype
        self.cache_size = cache_size
        self.batch_size = batch_size
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.n_encoded = 0  # prompts actually run through the encoder (for tests and benchmarks)

    def template(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, enable_thinking=False
        )

    def tokenize(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """One prompt at a time, as diffusers and BFL do, then concatenated."""
        ids, masks = [], []
        for p in prompts:
            enc = self.tokenizer(self.template(p), return_tensors="pt", padding="max_length", truncation=True, max_length=self.ctx_len)
            ids.append(enc["input_ids"])
            masks.append(enc["attention_mask"])
        return torch.cat(ids), torch.cat(masks)

    @torch.no_grad()
    def _encode(self, prompts: Sequence[str]) -> torch.Tensor:
        input_ids, mask = self.tokenize(prompts)
        states = self.encoder(input_ids.to(self.encoder.device), mask.to(self.encoder.device))  # (B, n, L, D)
        b, n, seq, dim = states.shape
        self.n_encoded += b
        return states.permute(0, 2, 1, 3).reshape(b, seq, n * dim).to(self.out_dtype)

    def __call__(self, prompts: Sequence[str]) -> torch.Tensor:
        todo = list(OrderedDict.fromkeys(p for p in prompts if p not in self._cache))
        fresh: dict[str, torch.Tensor] = {}
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            fresh.update(zip(chunk, self._encode(chunk)))
        rows = []
        for p in prompts:
            emb = fresh.get(p)
            if emb is None:
                emb = self._cache[p]
                self._cache.move_to_end(p)
            rows.append(emb)
        for p, emb in fresh.items():
            self._cache[p] = emb
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return torch.stack(rows)
