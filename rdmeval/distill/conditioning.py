"""The trainer's conditioning tables, built from a pool spec: the ctx pool and the τ text table.

A generator pool is a contamination-audit pool spec (``benchmarks/pools/*.toml``) read in order,
each source's rows repeated ``weight`` times as a block: ``rdm-s180-generator`` is the 82,783 COCO
train2014 first captions, then the 553 GenEval prompts tiled 32 times (100,479 rows; row
``y >= 82,783`` is GenEval prompt ``(y - 82,783) mod 553``). Both tables are built over that row order
(the same ``prompts_sha256``), so the trainer draws one row index and reads the prompt's ctx and τ:

* **ctx** (``build_ctx_table``): klein's prompt embeddings, Qwen3 hidden states 9/18/27 at ``ctx_len``
  48 through the chat template, as :class:`~rdmeval.generators.text_encoder.PromptEncoder` makes them
  for generation (Qwen3 in bf16), stored float16: rows ``(48, 7680)``, ~69 GiB for the real pool
  (~57 GiB stored, each distinct prompt once);
* **τ** (``build_text_table``): the SigLIP2 text tower (open_clip ``ViT-SO400M-16-SigLIP2-256``, or
  the first of the reference's fallbacks that open_clip has), under bf16 autocast on CUDA,
  L2-normalised, stored float32: rows ``(1152,)``.

Builds are sharded and resumable (:func:`rdmeval.distill.tables.write_table`).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from rdmeval.contamination.pool_spec import PoolSpec, PoolSpecError, load_pool_spec
from rdmeval.distill.tables import Table, TableError, check_row_aligned, prompts_sha256, write_table
from rdmeval.generators.text_encoder import DEFAULT_TEXT_LAYERS

KLEIN_BASE = "black-forest-labs/FLUX.2-klein-4B"
CTX_LEN = 48
#: The reference's SigLIP2 text towers, in order of preference (the first open_clip has wins).
TEXT_TOWERS: tuple[str, ...] = (
    "ViT-SO400M-16-SigLIP2-256", "ViT-SO400M-16-SigLIP2-384", "ViT-SO400M-14-SigLIP2-378", "ViT-SO400M-16-SigLIP2-512",
)
EXTRA = "pip install 'rdmeval[distill]'"


@dataclass(frozen=True)
class PoolBlock:
    source: str
    rows_read: int
    copies: int


@dataclass(frozen=True)
class PoolRows:
    """A generator pool, row by row: ``prompts[y]`` conditions training row ``y``."""

    name: str
    prompts: list[str]
    blocks: tuple[PoolBlock, ...]

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def sha256(self) -> str:
        return prompts_sha256(self.prompts)

    def describe(self) -> dict[str, Any]:
        return {"pool": self.name, "rows": len(self), "blocks": [vars(b) for b in self.blocks]}


def pool_rows(pool: PoolSpec | str | os.PathLike[str], overrides: Sequence[str] | None = None) -> PoolRows:
    """Read a pool spec (a packaged name such as ``rdm-s180-generator``, a TOML path, or a parsed spec)
    into its rows: each source in order, its rows repeated ``weight`` times as a block."""
    from rdmeval.contamination.pools import iter_source

    spec = pool if isinstance(pool, PoolSpec) else load_pool_spec(pool, overrides)
    prompts: list[str] = []
    blocks = []
    for src in spec.sources:
        texts = [t for chunk in iter_source(src) for t in chunk.texts]
        weight = src.row_weight(len(texts))
        if weight.denominator != 1:
            raise PoolSpecError(
                f"{spec.file or spec.name} source '{src.name}': weight {float(weight):g} is not a whole number; a "
                "conditioning table repeats each row a whole number of times (set weight = N or rows = N x rows read)"
            )
        prompts.extend(texts * int(weight))
        blocks.append(PoolBlock(src.name, len(texts), int(weight)))
    return PoolRows(spec.name, prompts, tuple(blocks))


@dataclass
class TableEncoder:
    """Prompts -> rows, with what the table stores about it (compared on resume) and its storage dtype."""

    encode: Callable[[Sequence[str]], Tensor]
    info: dict[str, Any]
    dtype: str
    batch_size: int = 64
    shard_rows: int = 4096

    def __call__(self, prompts: Sequence[str]) -> Tensor:
        return self.encode(prompts)


def _device(device: str | torch.device | None) -> torch.device:
    from rdmeval.generators.klein import resolve_device

    return resolve_device(None if device is None else str(device))


def ctx_encoder(
    base: str = KLEIN_BASE,
    *,
    ctx_len: int = CTX_LEN,
    layers: Sequence[int] = DEFAULT_TEXT_LAYERS,
    dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device | None = None,
    batch_size: int = 64,
) -> TableEncoder:
    """klein's text conditioning from ``base`` (a klein pipeline folder or hub id): rows (ctx_len, 3 x hidden)."""
    from transformers import AutoTokenizer

    from rdmeval.generators.klein import resolve_base
    from rdmeval.generators.text_encoder import PromptEncoder, load_text_encoder

    dev = _device(device)
    local, base_info = resolve_base(base, need_transformer=False)
    tokenizer = AutoTokenizer.from_pretrained(local / "tokenizer")
    text = load_text_encoder(str(local), subfolder="text_encoder", layers=layers, dtype=dtype, device=dev)
    prompts = PromptEncoder(tokenizer, text, ctx_len=ctx_len, out_dtype=torch.float32, cache_size=0, batch_size=batch_size)
    info = {"kind": "ctx", "base": base_info.get("repo_id", base_info.get("path", base)), "revision": base_info.get("revision"),
            "layers": list(text.layers), "ctx_len": ctx_len, "text_dtype": str(dtype).removeprefix("torch.")}
    # one row of (48, 7680) float16 is 720 KiB: 512 rows make a 360 MiB shard
    return TableEncoder(prompts, info, "float16", batch_size=batch_size, shard_rows=512)


def resolve_text_tower(model_name: str | None = None, pretrained: str | None = None) -> tuple[str, str | None]:
    """``(model, pretrained tag)``: as given, or the first of :data:`TEXT_TOWERS` that open_clip lists."""
    if model_name is not None:
        return model_name, pretrained
    open_clip = _open_clip()
    listed = open_clip.list_pretrained()
    for name in TEXT_TOWERS:
        for model, tag in listed:
            if model == name:
                return model, tag
    raise TableError(f"open_clip {open_clip.__version__} has none of the SigLIP2 text towers {', '.join(TEXT_TOWERS)}; upgrade it")


def _open_clip() -> Any:
    try:
        return importlib.import_module("open_clip")
    except ImportError:
        raise TableError(f"the τ text table needs the open_clip_torch package; install it with {EXTRA}") from None


class SigLIPText:
    """An open_clip model's text tower: prompts -> L2-normalised float32 rows (bf16 autocast on CUDA)."""

    def __init__(self, model: Any, tokenizer: Any, device: torch.device):
        self.model, self.tokenizer, self.device = model, tokenizer, device

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(list(prompts)).to(self.device)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            features = self.model.encode_text(tokens)
        return F.normalize(features.float(), dim=-1)


def text_encoder(
    model_name: str | None = None,
    pretrained: str | None = None,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 512,
) -> TableEncoder:
    """The SigLIP2 text tower (:func:`resolve_text_tower`) as a table encoder: rows (1152,) float32."""
    open_clip = _open_clip()
    dev = _device(device)
    name, tag = resolve_text_tower(model_name, pretrained)
    try:
        model = open_clip.create_model(name, pretrained=tag, device=dev)
    except (RuntimeError, OSError, ValueError) as exc:
        raise TableError(f"cannot build open_clip {name} ({tag}): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                         "run once with network access so open_clip can fetch its weights") from None
    model.eval().requires_grad_(False)
    info = {"kind": "tau", "model": name, "pretrained": tag, "autocast": "bf16" if dev.type == "cuda" else "none",
            "normalized": "l2"}
    return TableEncoder(SigLIPText(model, open_clip.get_tokenizer(name), dev), info, "float32",
                        batch_size=batch_size, shard_rows=16384)


def build_table(
    pool: PoolRows,
    folder: str | os.PathLike[str],
    encoder: TableEncoder,
    *,
    shard_rows: int | None = None,
    batch_size: int | None = None,
    progress: bool = False,
) -> Table:
    """Encode ``pool`` into ``folder`` (resumable; each distinct prompt once) and open the table."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=f"{encoder.info.get('kind', 'table')} {Path(folder).name}", unit="shard")

    def on_shard(i: int, n: int) -> None:
        if bar is not None:
            bar.total = n
            bar.n = i
            bar.refresh()

    try:
        write_table(folder, pool.prompts, encoder, shard_rows=shard_rows or encoder.shard_rows,
                    batch_size=batch_size or encoder.batch_size, dtype=encoder.dtype, on_shard=on_shard,
                    info={**encoder.info, **pool.describe()}, dedupe=True)
    finally:
        if bar is not None:
            bar.close()
    return Table(folder)


def build_ctx_table(pool: PoolRows | str | os.PathLike[str], folder: str | os.PathLike[str], *, encoder: TableEncoder | None = None,
                    overrides: Sequence[str] | None = None, shard_rows: int | None = None, progress: bool = False,
                    **options: Any) -> Table:
    """The ctx pool of ``pool``; ``options`` go to :func:`ctx_encoder` (base, ctx_len, layers, dtype, device, batch_size)."""
    rows = pool if isinstance(pool, PoolRows) else pool_rows(pool, overrides)
    return build_table(rows, folder, encoder or ctx_encoder(**options), shard_rows=shard_rows, progress=progress)


def build_text_table(pool: PoolRows | str | os.PathLike[str], folder: str | os.PathLike[str], *, encoder: TableEncoder | None = None,
                     overrides: Sequence[str] | None = None, shard_rows: int | None = None, progress: bool = False,
                     **options: Any) -> Table:
    """The τ table of ``pool``; ``options`` go to :func:`text_encoder` (model_name, pretrained, device, batch_size)."""
    rows = pool if isinstance(pool, PoolRows) else pool_rows(pool, overrides)
    return build_table(rows, folder, encoder or text_encoder(**options), shard_rows=shard_rows, progress=progress)


def build_conditioning_tables(
    pool: PoolRows | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    overrides: Sequence[str] | None = None,
    ctx: Mapping[str, Any] | None = None,
    tau: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> tuple[Table, Table]:
    """Both tables of ``pool`` in ``OUT/ctx`` and ``OUT/tau``, row-aligned; ``ctx``/``tau`` are encoder options."""
    rows = pool if isinstance(pool, PoolRows) else pool_rows(pool, overrides)
    out = Path(out_dir)
    tables = (build_ctx_table(rows, out / "ctx", progress=progress, **dict(ctx or {})),
              build_text_table(rows, out / "tau", progress=progress, **dict(tau or {})))
    check_row_aligned(*tables)
    return tables


def open_conditioning_tables(out_dir: str | os.PathLike[str]) -> tuple[Table, Table]:
    """``OUT/ctx`` and ``OUT/tau``, memory-mapped, checked to be row-aligned."""
    out = Path(out_dir)
    tables = (Table(out / "ctx"), Table(out / "tau"))
    check_row_aligned(*tables)
    return tables
