"""sha256 of (possibly multi-GB) files, cached by (path, size, mtime) so a weight file is hashed once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rdmeval.cache import cache_dir

_CHUNK = 16 * 1024 * 1024


def _sha256_stream(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str], *, use_cache: bool = True) -> str:
    """Return the hex sha256 of ``path``.

    With ``use_cache`` the result is memoised in ``$RDMEVAL_CACHE/hashes.json`` keyed by the
    resolved path, size and mtime (ns), so re-hashing a 16 GB checkpoint on every run is avoided
    while any change to the file invalidates the entry.
    """
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    index = cache_dir() / "hashes.json"
    if use_cache and index.exists():
        try:
            cached = json.loads(index.read_text()).get(key)
        except (OSError, json.JSONDecodeError):
            cached = None
        if cached:
            return cached
    digest = _sha256_stream(p)
    if use_cache and st.st_size >= 64 * 1024 * 1024:
        from rdmeval.io.atomic import atomic_write_json

        try:
            table = json.loads(index.read_text()) if index.exists() else {}
        except (OSError, json.JSONDecodeError):
            table = {}
        table[key] = digest
        try:
            atomic_write_json(index, table)
        except OSError:
            pass
    return digest
