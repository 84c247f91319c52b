"""Row-aligned conditioning tables (the ctx pool and the τ text table), written in shards.

A table is a folder: ``table.json`` (rows, row shape, dtype, shard size, the prompts' sha256, what
encoded them) and ``shard-00000.npy``, ``shard-00001.npy``, ... . ``table.json`` is written first
(``"complete": false``) and completed last; each shard is filled batch by batch in a temporary file
and renamed into place when whole, so a build that stops (even killed) resumes at the first missing
shard, and a resumed build with other prompts, settings or encoder is refused. Readers memory-map
the shards (the real ctx pool is ~69 GiB) and gather rows by index.

With ``dedupe=True`` only the distinct prompts are encoded and stored (first-occurrence order), and
``index.npy`` maps each row to its stored row: a pool that tiles the 553 GenEval prompts 32 times
stores them once, and every copy is the same row, bit for bit. ``len(table)`` and ``table[i]`` are
always in pool rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from rdmeval.errors import RdmevalError
from rdmeval.io import atomic_write_bytes, atomic_write_json
from rdmeval.io.atomic import TEMP_PREFIX, TEMP_SUFFIX, is_temp_name

TABLE_FORMAT = "rdmeval.distill.table/1"
INDEX_FILE = "index.npy"


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


def _open_npy(path: Path) -> np.ndarray:
    """A shard or index memory-mapped; a damaged file (truncated, not .npy) is a TableError naming it."""
    try:
        return np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise TableError(
            f"{path} is damaged ({exc}); delete it and run the table's build again, which rewrites missing shards"
        ) from exc


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise TableError(f"{path} is not readable JSON ({exc}); delete the table's folder and build it again") from exc


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _write_shard(path: Path, rows: Sequence[str], encode: Callable[[Sequence[str]], Tensor], batch_size: int, dtype: str) -> None:
    """Encode ``rows`` batch by batch into a temporary .npy beside ``path``; rename it when whole."""
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        out: np.ndarray | None = None
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            block = encode(chunk).detach().float().cpu().numpy()
            if block.shape[0] != len(chunk):
                raise TableError(f"the encoder returned {block.shape[0]} rows for {len(chunk)} prompts")
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(len(rows), *block.shape[1:]))
            elif block.shape[1:] != out.shape[1:]:
                raise TableError(f"the encoder returned rows of shape {block.shape[1:]}, earlier ones were {out.shape[1:]}")
            out[start:start + len(chunk)] = block
        assert out is not None
        out.flush()
        del out
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_table(
    folder: str | os.PathLike[str],
    prompts: Sequence[str],
    encode: Callable[[Sequence[str]], Tensor],
    *,
    shard_rows: int = 4096,
    batch_size: int = 64,
    dtype: str = "float16",
    on_shard: Callable[[int, int], None] | None = None,
    info: Mapping[str, Any] | None = None,
    dedupe: bool = False,
) -> Path:
    """Encode ``prompts`` in order into ``folder``; shards already there are kept (resume).

    ``info`` (JSON-able: what encoded the rows) is stored and must match on resume; ``dedupe``
    encodes each distinct prompt once (see the module doc). ``on_shard(i, n)`` is called after
    shard ``i`` of ``n`` is written (not for shards kept from an earlier run).
    """
    if shard_rows < 1 or batch_size < 1:
        raise TableError(f"shard_rows and batch_size must be >= 1, got {shard_rows} and {batch_size}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stored = list(dict.fromkeys(prompts)) if dedupe else list(prompts)
    n_shards = (len(stored) + shard_rows - 1) // shard_rows
    meta: dict[str, Any] = {
        "format": TABLE_FORMAT, "rows": len(prompts), "stored_rows": len(stored), "row_shape": None, "dtype": dtype,
        "shard_rows": shard_rows, "shards": n_shards, "prompts_sha256": prompts_sha256(prompts),
        "index": INDEX_FILE if dedupe else None, "info": json.loads(json.dumps(dict(info or {}))), "complete": False,
    }
    meta_path = folder / "table.json"
    if meta_path.exists():
        old = _read_meta(meta_path)
        changed = [k for k in ("prompts_sha256", "shard_rows", "dtype", "index", "info") if old.get(k) != meta[k]]
        if changed:
            raise TableError(
                f"{folder} holds a table of other {'/'.join(changed)}; use another output folder or remove it"
            )
    else:
        atomic_write_json(meta_path, meta)
    for stale in folder.iterdir():  # temporary shards of a killed build
        if is_temp_name(stale.name):
            stale.unlink(missing_ok=True)
    if dedupe:
        position = {p: i for i, p in enumerate(stored)}
        atomic_write_bytes(folder / INDEX_FILE, _npy_bytes(np.array([position[p] for p in prompts], dtype=np.int64)))
    row_shape: list[int] | None = None
    for i in range(n_shards):
        path = _shard_path(folder, i)
        rows = stored[i * shard_rows:(i + 1) * shard_rows]
        try:
            whole = path.exists() and _open_npy(path).shape[0] == len(rows)
        except TableError:  # damaged (e.g. truncated by a full disk outside this build): written again
            whole = False
        if not whole:
            _write_shard(path, rows, encode, batch_size, dtype)
            if on_shard is not None:
                on_shard(i + 1, n_shards)
        row_shape = list(_open_npy(path).shape[1:])
    atomic_write_json(meta_path, {**meta, "row_shape": row_shape, "complete": True})
    return folder


class Table:
    """A memory-mapped table: ``table[idx]`` gathers rows (a LongTensor or ints) as a float32 tensor."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        meta_path = self.folder / "table.json"
        if not meta_path.is_file():
            raise TableError(f"{self.folder} is not a conditioning table (no table.json); build it first")
        self.meta = _read_meta(meta_path)
        if self.meta.get("format") != TABLE_FORMAT:
            raise TableError(f"{meta_path}: format {self.meta.get('format')!r} is not {TABLE_FORMAT!r}")
        if self.meta.get("complete") is False:
            raise TableError(f"{self.folder}: the table build did not finish; run it again to resume")
        self.shard_rows = int(self.meta["shard_rows"])
        self.shards = []
        for i in range(int(self.meta["shards"])):
            path = _shard_path(self.folder, i)
            if not path.is_file():
                raise TableError(f"{path} is missing: the table build did not finish; run it again to resume")
            self.shards.append(_open_npy(path))
        stored = int(self.meta.get("stored_rows", self.meta["rows"]))
        if sum(s.shape[0] for s in self.shards) != stored:
            raise TableError(f"{self.folder}: the shards hold {sum(s.shape[0] for s in self.shards)} rows, table.json says {stored}")
        self.index: np.ndarray | None = None
        if self.meta.get("index"):
            self.index = _open_npy(self.folder / self.meta["index"])
            if self.index.shape != (len(self),):
                raise TableError(f"{self.folder}: {self.meta['index']} maps {self.index.shape[0]} rows, table.json says {len(self)}")

    def __len__(self) -> int:
        return int(self.meta["rows"])

    @property
    def row_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["row_shape"] or ())

    @property
    def prompts_sha256(self) -> str:
        return str(self.meta["prompts_sha256"])

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.meta.get("info") or {})

    @property
    def shape(self) -> tuple[int, ...]:
        """(rows, *row_shape), as a tensor's shape (the trainer reads τ's width as ``shape[1]``)."""
        return (len(self), *self.row_shape)

    def __getitem__(self, idx: Tensor | Sequence[int] | int) -> Tensor:
        shape = torch.as_tensor(idx).shape
        flat = torch.as_tensor(idx, dtype=torch.long).reshape(-1).cpu().numpy()
        if flat.size and (int(flat.min()) < 0 or int(flat.max()) >= len(self)):
            raise TableError(f"row index out of range for a table of {len(self)} rows")
        stored = np.asarray(self.index[flat]) if self.index is not None else flat
        out = np.empty((flat.size, *self.row_shape), dtype=np.float32)
        shard_of = stored // self.shard_rows
        for s in np.unique(shard_of):
            mask = shard_of == s
            out[mask] = self.shards[int(s)][stored[mask] % self.shard_rows]
        return torch.from_numpy(out).reshape(*shape, *self.row_shape)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Pool rows ``[start, stop)`` as one array in the stored dtype (contiguous shard slices when not deduplicated)."""
        start, stop = max(0, start), min(len(self), stop)
        if self.index is not None:
            return np.asarray(self[torch.arange(start, stop)].numpy(), dtype=self.meta["dtype"])
        parts = []
        while start < stop:
            shard, offset = divmod(start, self.shard_rows)
            take = min(stop - start, self.shard_rows - offset)
            parts.append(np.asarray(self.shards[shard][offset:offset + take]))
            start += take
        return np.concatenate(parts) if parts else np.empty((0, *self.row_shape), dtype=self.meta["dtype"])


def check_row_aligned(*tables: Table) -> None:
    """Refuse tables that do not hold the same prompts in the same row order."""
    first = tables[0]
    for other in tables[1:]:
        if len(other) != len(first) or other.prompts_sha256 != first.prompts_sha256:
            raise TableError(
                f"{first.folder} ({len(first)} rows) and {other.folder} ({len(other)} rows) were built from different "
                "prompts or row orders; build both from the same pool spec"
            )
