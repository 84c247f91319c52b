"""The truncated Qwen3 text path: identical to the full model on the layers used, and to diffusers' encoder."""

from __future__ import annotations

import copy

import pytest
import torch

from rdmeval.errors import RdmevalError
from rdmeval.generators.text_encoder import PromptEncoder, Qwen3HiddenStates, load_text_encoder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["a photo of a cat", "", "two blue dogs " * 20, "a photo of a cat"]  # short, empty, truncated, repeated




@pytest.fixture(scope="module")
def full(tiny_klein):
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    model = Qwen3ForCausalLM.from_pretrained(tiny_klein["base"], subfolder="text_encoder").eval()
    tok = AutoTokenizer.from_pretrained(tiny_klein["base"] / "tokenizer")
    return model, tok


def test_fixture_has_the_real_depth_and_a_qwen3_template(full):
    model, tok = full
    assert model.config.num_hidden_layers == 36
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    thinking = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert "<think>" not in thinking
    ids = tok(text, padding="max_length", truncation=True, max_length=48)
    assert len(ids["input_ids"]) == 48 and ids["input_ids"][-1] == tok.pad_token_id and tok.padding_side == "right"


@pytest.mark.parametrize("layers", [(9, 18, 27), (0, 5), (35,)])
def test_truncated_states_equal_full_model_hidden_states(full, layers):
    model, tok = full
    enc = tok([tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True, enable_thinking=False) for p in PROMPTS],
              padding="max_length", truncation=True, max_length=48, return_tensors="pt")
    with torch.no_grad():
        ref = model(**enc, output_hidden_states=True, use_cache=False).hidden_states
        wrapped = Qwen3HiddenStates(copy.deepcopy(model), layers)
        got = wrapped(enc["input_ids"], enc["attention_mask"])
    assert len(wrapped.model.layers) == max(layers)  # the deeper layers are gone
    assert got.shape == (len(PROMPTS), len(layers), 48, 32)
    for i, k in enumerate(layers):
        assert torch.equal(got[:, i], ref[k]), f"layer {k} differs"
    assert not torch.equal(got[:, -1], ref[max(layers) + 1])  # control: a neighbouring layer differs


def test_loader_keeps_only_needed_layers_and_matches_diffusers_prompt_embeds(tiny_klein, full):
    from diffusers import Flux2KleinPipeline

    model, tok = full
    enc = load_text_encoder(str(tiny_klein["base"]), layers=(9, 18, 27))
    assert len(enc.model.layers) == 27 and not hasattr(enc.model, "lm_head")
    pe = PromptEncoder(tok, enc, ctx_len=48)
    with torch.no_grad():
        ref = Flux2KleinPipeline._get_qwen3_prompt_embeds(model, tok, PROMPTS, max_sequence_length=48)
    got = pe(PROMPTS)
    assert got.shape == (4, 48, 96) and got.dtype == torch.float32
    assert torch.equal(got, ref)
    assert pe.n_encoded == 3  # the repeated prompt is encoded once


def test_prompt_cache_across_calls_and_ctx_len(tiny_klein, full):
    _, tok = full
    enc = load_text_encoder(str(tiny_klein["base"]))
    pe = PromptEncoder(tok, enc, ctx_len=48, cache_size=2)
    a = pe(["x", "y"])
    b = pe(["y", "z"])
    assert pe.n_encoded == 3 and torch.equal(a[1], b[0])
    pe(["w", "v", "x"])  # evicts; x is encoded again
    assert pe.n_encoded == 6
    long = PromptEncoder(tok, enc, ctx_len=232)(["x"])
    assert long.shape == (1, 232, 96)
    assert torch.equal(long[0, :12], a[0, :12])  # causal attention: the template tokens are unaffected by padding length


def test_bad_layer_indices_are_refused(tiny_klein):
    with pytest.raises(RdmevalError, match="text-encoder-layers"):
        load_text_encoder(str(tiny_klein["base"]), layers=(9, 40))
    with pytest.raises(RdmevalError, match="below 36"):
        load_text_encoder(str(tiny_klein["base"]), layers=(36,))
    with pytest.raises(RdmevalError, match="ctx-len"):
        PromptEncoder(None, None, ctx_len=0)  # type: ignore[arg-type]
