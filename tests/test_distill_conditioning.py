"""Conditioning tables from pool specs: the pool's row order, the ctx rows (tiny klein's Qwen3) against
diffusers' own prompt embeddings, the τ rows (a tiny open_clip text tower), row alignment, resume."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from rdmeval.contamination.pool_spec import PoolSpecError, pool_spec_from_dict
from rdmeval.distill.conditioning import (
    TEXT_TOWERS,
    build_conditioning_tables,
    build_ctx_table,
    build_text_table,
    ctx_encoder,
    open_conditioning_tables,
    pool_rows,
    resolve_text_tower,
    text_encoder,
)
from rdmeval.distill.tables import Table, TableError, write_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_TOWER = "rdmeval-tiny-text-tower"  # no "siglip" in the name: open_clip would pick the Gemma tokenizer
# A SigLIP2-style open_clip model (custom text tower, last-token pool, no causal mask), tiny; open_clip's
# bundled BPE tokenizer instead of the Gemma one, which would be a download.
TINY_TOWER_CONFIG = {
    "embed_dim": 24, "init_logit_bias": -10, "custom_text": True,
    "vision_cfg": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1, "mlp_ratio": 2.0,
                 "no_causal_mask": True, "proj_bias": True, "pool_type": "last", "norm_kwargs": {"eps": 1e-6},
                 "act_kwargs": {"approximate": "tanh"}},
}


@pytest.fixture(scope="module")
def tiny_tower(tmp_path_factory):
    import open_clip
    path = tmp_path_factory.mktemp("open-clip-config") / f"{TINY_TOWER}.json"
    path.write_text(json.dumps(TINY_TOWER_CONFIG))
    open_clip.add_model_config(path)
    torch.manual_seed(0)
    return text_encoder(TINY_TOWER, None, device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def tiny_ctx(tiny_klein):
    return ctx_encoder(str(tiny_klein["base"]), dtype=torch.float32, device="cpu", batch_size=3)


# ------------------------------------------------------------------------------------- the pool


def test_demo_pool_rows_are_its_sources_in_order_with_blocks_tiled():
    pool = pool_rows("demo")
    assert len(pool) == 4 + 6 * 32 and [(b.source, b.rows_read, b.copies) for b in pool.blocks] == [
        ("captions", 4, 1), ("demo-geneval-x32", 6, 32)]
    tail = pool.prompts[4:]
    assert all(tail[y] == tail[y % 6] for y in range(len(tail)))  # row 4 + y is prompt y mod 6
    assert len(set(tail)) == 6


def test_released_generator_pool_layout(tmp_path, shared_data):
    coco = {"images": [], "annotations": [
        {"image_id": 9, "id": 1, "caption": " a dog "}, {"image_id": 2, "id": 2, "caption": "a cat"},
        {"image_id": 9, "id": 3, "caption": "a second dog caption"}]}
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    pool = pool_rows("rdm-s180-generator", [f"coco-train2014.path={tmp_path / 'captions.json'}", "coco-train2014.expected_rows=2",
                                            f"geneval-x32.path={shared_data / 'geneval' / 'evaluation_metadata.jsonl'}"])
    assert pool.name == "rdm-s180-generator"
    assert len(pool) == 2 + 553 * 32  # 82,783 + 17,696 = 100,479 with the real captions
    assert pool.prompts[:2] == ["a cat", "a dog"]  # first caption per image, sorted by image id
    geneval = [json.loads(line)["prompt"] for line in (shared_data / "geneval" / "evaluation_metadata.jsonl").read_text().splitlines() if line.strip()]
    assert all(pool.prompts[2 + y] == geneval[y % 553] for y in range(0, 553 * 32, 97))


def test_a_fractional_weight_is_refused():
    spec = pool_spec_from_dict({"name": "p", "source": [{"name": "caps", "prompt_set": "demo-captions", "rows": 6}]})
    with pytest.raises(PoolSpecError, match="source 'caps': weight 1.5 is not a whole number"):
        pool_rows(spec)


# ------------------------------------------------------------------------------------- ctx and τ


def test_ctx_rows_are_klein_prompt_embeddings_in_float16(tmp_path, tiny_klein, tiny_ctx):
    from diffusers import Flux2KleinPipeline
    from transformers import AutoTokenizer, Qwen3ForCausalLM

    pool = pool_rows("demo")
    table = build_ctx_table(pool, tmp_path / "ctx", encoder=tiny_ctx)
    assert len(table) == 196 and table.row_shape == (48, 96) and table.meta["stored_rows"] == 10
    assert table.meta["dtype"] == "float16" and table.info["layers"] == [9, 18, 27] and table.info["ctx_len"] == 48
    distinct = list(dict.fromkeys(pool.prompts))
    model = Qwen3ForCausalLM.from_pretrained(tiny_klein["base"], subfolder="text_encoder").eval()
    tok = AutoTokenizer.from_pretrained(tiny_klein["base"] / "tokenizer")
    with torch.no_grad():
        ref = Flux2KleinPipeline._get_qwen3_prompt_embeds(model, tok, distinct, max_sequence_length=48)
    rows = table[[pool.prompts.index(p) for p in distinct]]
    torch.testing.assert_close(rows, ref, rtol=2**-10, atol=1e-7)  # fp16 storage: one rounding
    assert torch.equal(rows, rows.half().float())
    assert torch.equal(table[4], table[4 + 6 * 31])  # a tiled GenEval row is the same row


def test_tau_rows_are_l2_normalised_text_features(tmp_path, tiny_tower):
    pool = pool_rows("demo")
    table = build_text_table(pool, tmp_path / "tau", encoder=tiny_tower)
    assert len(table) == 196 and table.row_shape == (24,) and table.meta["dtype"] == "float32"
    assert table.info["model"] == TINY_TOWER and table.info["normalized"] == "l2"
    rows = table[list(range(len(pool)))]
    torch.testing.assert_close(rows.norm(dim=-1), torch.ones(196), rtol=0, atol=1e-6)
    import open_clip

    model, tokenizer = tiny_tower.encode.model, open_clip.get_tokenizer(TINY_TOWER)
    with torch.no_grad():
        expected = model.encode_text(tokenizer(pool.prompts[:6]))
    torch.testing.assert_close(rows[:6], expected / expected.norm(dim=-1, keepdim=True), rtol=1e-5, atol=1e-6)


def test_both_tables_are_row_aligned_and_resume_after_an_exception(tmp_path, tiny_ctx, tiny_tower):
    pool = pool_rows("demo")
    ctx, tau = build_conditioning_tables(pool, tmp_path / "ref", ctx={"encoder": tiny_ctx}, tau={"encoder": tiny_tower})
    assert ctx.prompts_sha256 == tau.prompts_sha256 == pool.sha256
    calls = []

    def failing(prompts):
        if len(calls) == 2:
            raise KeyboardInterrupt  # stopped mid-way through the shards
        calls.append(list(prompts))
        return tiny_ctx(prompts)

    with pytest.raises(KeyboardInterrupt):
        write_table(tmp_path / "run" / "ctx", pool.prompts, failing, shard_rows=3, batch_size=3, dtype="float16",
                    info={**tiny_ctx.info, **pool.describe()}, dedupe=True)
    with pytest.raises(TableError, match="did not finish"):
        Table(tmp_path / "run" / "ctx")
    before = tiny_ctx.encode.n_encoded
    ctx2, tau2 = build_conditioning_tables(pool, tmp_path / "run", ctx={"encoder": tiny_ctx, "shard_rows": 3},
                                           tau={"encoder": tiny_tower})
    assert len(ctx2.shards) == 4 and tiny_ctx.encode.n_encoded - before == 4  # 10 distinct prompts; 6 were on disk
    assert torch.equal(ctx2[list(range(196))], ctx[list(range(196))])
    assert torch.equal(tau2[list(range(196))], tau[list(range(196))])
    opened = open_conditioning_tables(tmp_path / "run")
    assert [len(t) for t in opened] == [196, 196]


def test_open_refuses_tables_of_different_pools(tmp_path, tiny_tower):
    build_text_table(pool_rows("demo"), tmp_path / "out" / "tau", encoder=tiny_tower)
    write_table(tmp_path / "out" / "ctx", ["only", "two"], lambda p: torch.zeros(len(p), 2))
    with pytest.raises(TableError, match="different prompts or row orders"):
        open_conditioning_tables(tmp_path / "out")


def test_the_text_tower_is_the_references_siglip2():
    assert resolve_text_tower() == ("ViT-SO400M-16-SigLIP2-256", "webli")
    assert TEXT_TOWERS[0] == "ViT-SO400M-16-SigLIP2-256"
    assert resolve_text_tower("ViT-B-32", "openai") == ("ViT-B-32", "openai")


def test_missing_open_clip_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(TableError, match=r"open_clip_torch package; install it with pip install 'rdmeval\[distill\]'"):
        text_encoder(device="cpu")


def test_tau_norm_is_not_a_coincidence(tiny_tower):
    raw = tiny_tower.encode.model.encode_text(tiny_tower.encode.tokenizer(["a photo of a cat"]))
    assert abs(float(raw.norm()) - 1.0) > 1e-3  # the tower's own output is not unit-norm: the table normalises
    assert torch.equal(tiny_tower(["a photo of a cat"]), F.normalize(raw.float(), dim=-1))


def test_tables_cli_builds_the_ctx_table_and_resumes(tmp_path, tiny_klein, capsys):
    from rdmeval.distill.tables_cli import main

    args = ["--pool", "demo", "--base", str(tiny_klein["base"]), "--only", "ctx", "--device", "cpu", "--out", str(tmp_path),
            "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "pool demo-pool: 196 rows, 10 distinct prompts (captions 4 x1, demo-geneval-x32 6 x32)" in out
    assert "196 rows of (48, 96) float16" in out
    first = Table(tmp_path / "ctx")[list(range(196))]
    assert main(args) == 0 and torch.equal(Table(tmp_path / "ctx")[list(range(196))], first)  # a rerun keeps the shards
    assert main([*args[:-3], "--ctx-len", "32", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "holds a table of other info; use another output folder or remove it" in capsys.readouterr().err
    assert main(["--pool", "nope", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "nope" in capsys.readouterr().err
    (tmp_path / "a-file").write_text("")  # an OS error is one line too (it was a NotADirectoryError traceback)
    assert main([*args[:-3], "--out", str(tmp_path / "a-file"), "--no-progress"]) == 2
    assert "a part of this path is a file where a folder is expected" in capsys.readouterr().err


def test_rdmeval_train_tables_is_the_same_command(tmp_path, tiny_klein, capsys):
    from rdmeval.cli.main import main as rdmeval_main
    from rdmeval.distill.tables_cli import main

    args = ["--pool", "demo", "--base", str(tiny_klein["base"]), "--only", "ctx", "--device", "cpu", "--no-progress"]
    assert rdmeval_main(["train", "tables", *args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert torch.equal(Table(tmp_path / "a" / "ctx")[list(range(196))], Table(tmp_path / "b" / "ctx")[list(range(196))])
    capsys.readouterr()
    assert rdmeval_main(["train", "tables", "--pool", "nope", "--out", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err.startswith("rdmeval: error:")
    with pytest.raises(SystemExit):
        rdmeval_main(["train", "tables", "--help"])
    assert "usage: rdmeval train tables" in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--text-encoder-layers", "--text-layers"])
def test_tables_layer_errors_name_a_flag_the_command_has(tmp_path, tiny_klein, capsys, flag):
    """The text encoder's range error names --text-encoder-layers, which `rdmeval train tables` did not accept."""
    from rdmeval.cli.main import main as rdmeval_main

    args = ["--pool", "demo", "--base", str(tiny_klein["base"]), "--only", "ctx", "--device", "cpu", "--no-progress"]
    assert rdmeval_main(["train", "tables", *args, flag, "1,999", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "--text-encoder-layers 1,999: indices [999] are out of range" in err
    from rdmeval.distill.tables_cli import build_parser

    assert "--text-encoder-layers I,J,K" in build_parser(prog="rdmeval train tables").format_help()


def test_tables_help_examples_name_the_command_that_shows_them():
    """rdmeval train tables --help used to show `python -m rdmeval.distill.tables_cli ...` examples."""
    from rdmeval.distill.tables_cli import build_parser

    examples = build_parser(prog="rdmeval train tables").format_help().split("examples:")[1]
    assert "rdmeval train tables --pool demo --base" in examples and "python -m" not in examples
    assert "python -m rdmeval.distill.tables_cli --pool demo" in build_parser().format_help()
