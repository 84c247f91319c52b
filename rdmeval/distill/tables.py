"""Row-aligned conditioning tables (the ctx pool and the τ text table), written in shards.

A table is a folder: ``table.json`` (rows, row shape, dtype, shard size, the prompts' sha256) and
``shard-00000.npy``, ``shard-00001.npy``, ... . Shards are written atomically one by one, so a build
that stops resumes at the first missing shard; readers memory-map the shards (the real ctx pool is
~69 GiB) and gather rows by index.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_bytes, atomic_write_json

TABLE_FORMAT = "rdmeval.distill.table/1"


class TableError(RdmevalError):
    """A conditioning table is missing, incomplete or inconsistent with its prompts."""


def prompts_sha256(prompts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for p in prompts:
        h.update(p.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def _shard_path(folder: Path, i: int) -> Path:
    return folder / f"shard-{i:05d}.npy"


def write_table(
    folder: str | os.PathLike[str],
    prompts: Sequence[str],
    encode: Callable[[Sequence[str]], Tensor],
    *,
    shard_rows: int = 4096,
    batch_size: int = 64,
    dtype: str = "float16",
    on_shard: Callable[[int, int], None] | None = None,
) -> Path:
    """Encode ``prompts`` in order into ``folder``; shards already there are kept (resume)."""

    def read_rows(start: int, stop: int) -> Tensor:
        rows = prompts[start:stop]
        return torch.cat([encode(rows[j:j + batch_size]).detach().float().cpu() for j in range(0, len(rows), batch_size)])

    return write_rows(
        folder, len(prompts), read_rows, prompts_digest=prompts_sha256(prompts), shard_rows=shard_rows, dtype=dtype,
        on_shard=on_shard,
    )


def write_rows(
    folder: str | os.PathLike[str],
    n_rows: int,
    read_rows: Callable[[int, int], Tensor | np.ndarray],
    *,
    prompts_digest: str,
    shard_rows: int = 4096,
    dtype: str = "float16",
    on_shard: Callable[[int, int], None] | None = None,
) -> Path:
    """Write rows ``read_rows(start, stop)`` for ``[0, n_rows)`` shard by shard (resumable).

    ``prompts_digest`` is the :func:`prompts_sha256` of the prompts the rows belong to: tables of
    the same prompts (ctx and τ) carry the same digest, which is how their alignment is checked.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "table.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("prompts_sha256") != prompts_digest or meta.get("shard_rows") != shard_rows or meta.get("dtype") != dtype:
            raise TableError(
                f"{folder} holds a table of other prompts or settings; use another --out folder or remove it"
            )
    n_shards = (n_rows + shard_rows - 1) // shard_rows
    row_shape: list[int] | None = None
    for i in range(n_shards):
        path = _shard_path(folder, i)
        start, stop = i * shard_rows, min((i + 1) * shard_rows, n_rows)
        if path.exists():
            done = np.load(path, mmap_mode="r")
            if done.shape[0] == stop - start:
                row_shape = list(done.shape[1:])
                continue
        block = read_rows(start, stop)
        block = block.detach().float().cpu().numpy() if isinstance(block, Tensor) else np.asarray(block)
        block = block.astype(dtype)
        row_shape = list(block.shape[1:])
        buffer = io.BytesIO()
        np.save(buffer, block)
        atomic_write_bytes(path, buffer.getvalue())
        if on_shard is not None:
            on_shard(i + 1, n_shards)
    meta = {
        "format": TABLE_FORMAT, "rows": n_rows, "row_shape": row_shape, "dtype": dtype,
        "shard_rows": shard_rows, "shards": n_shards, "prompts_sha256": prompts_digest,
    }
    atomic_write_json(meta_path, meta)
    return folder


class Table:
    """A memory-mapped table: ``table[idx]`` gathers rows (a LongTensor or ints) as a float32 tensor."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        meta_path = self.folder / "table.json"
        if not meta_path.is_file():
            raise TableError(f"{self.folder} is not a conditioning table (no table.json); build it first")
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != TABLE_FORMAT:
            raise TableError(f"{meta_path}: format {self.meta.get('format')!r} is not {TABLE_FORMAT!r}")
        self.shard_rows = int(self.meta["shard_rows"])
        self.shards = []
        for i in range(int(self.meta["shards"])):
            path = _shard_path(self.folder, i)
            if not path.is_file():
                raise TableError(f"{path} is missing: the table build did not finish; run it again to resume")
            self.shards.append(np.load(path, mmap_mode="r"))
        if sum(s.shape[0] for s in self.shards) != self.meta["rows"]:
            raise TableError(f"{self.folder}: the shards hold {sum(s.shape[0] for s in self.shards)} rows, table.json says {self.meta['rows']}")

    def __len__(self) -> int:
        return int(self.meta["rows"])

    @property
    def row_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["row_shape"])

    def __getitem__(self, idx: Tensor | Sequence[int] | int) -> Tensor:
        flat = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= len(self)):
            raise TableError(f"row index out of range for a table of {len(self)} rows")
        rows = [np.asarray(self.shards[int(i) // self.shard_rows][int(i) % self.shard_rows]) for i in flat]
        out = torch.from_numpy(np.stack(rows).astype(np.float32)) if rows else torch.empty((0, *self.row_shape))
        return out.reshape(*torch.as_tensor(idx).shape, *self.row_shape)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as one array in the table's dtype (contiguous shard slices, no per-row loop)."""
        start, stop = max(0, start), min(len(self), stop)
        parts = []
        while start < stop:
            shard, offset = divmod(start, self.shard_rows)
            take = min(stop - start, self.shard_rows - offset)
            parts.append(np.asarray(self.shards[shard][offset:offset + take]))
            start += take
        return np.concatenate(parts) if parts else np.empty((0, *self.row_shape), dtype=self.meta["dtype"])
