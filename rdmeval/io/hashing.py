"""sha256 of (possibly multi-GB) files, cached by (path, size, mtime) so a weight file is hashed once,
and of folders (a pipeline folder's identity: :func:`sha256_folder`)."""

from __future__ import annotations

import hashlib
import json
import os
from fnmatch import fnmatch
from pathlib import Path
from typing import Sequence

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


#: The suffix of a file's sha256 record beside it (``FILE.sha256``, ``sha256sum`` format: hex digest, two spaces, name).
DIGEST_SUFFIX = ".sha256"


def digest_record(path: str | os.PathLike[str]) -> Path:
    """Where the sha256 record of ``path`` lies: ``FILE.sha256`` beside it (the trainer writes one per milestone)."""
    return Path(path).with_name(Path(path).name + DIGEST_SUFFIX)


def read_digest(record: Path) -> str | None:
    """The lower-case sha256 a record holds (its first word; ``sha256sum`` accepts either case), or None when it holds none."""
    words = record.read_text(encoding="utf-8", errors="replace").split()
    digest = words[0].lower() if words else ""
    return digest if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) else None


def recorded_sha256(path: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """The sha256 recorded beside ``path`` with the record's path; None when there is no record or it holds no sha256."""
    record = digest_record(path)
    digest = read_digest(record) if record.is_file() else None
    return (record, digest) if digest else None


def sha256_folder(root: str | os.PathLike[str], patterns: Sequence[str] | None = None) -> dict[str, object]:
    """The identity of a folder's content: ``{"sha256": hex, "files": n}``.

    The hash is the sha256 of one line ``<relative posix path>\t<size>\t<sha256 of the file>\n`` per
    file, in path order: every regular file under ``root`` (links followed), hidden names (``.git``,
    ``.cache``, ...) left out, and with ``patterns`` only the relative paths that match one of them
    (``fnmatch``, as ``huggingface_hub`` filters a download). File hashes go through
    :func:`sha256_file`'s cache, so a multi-GB pipeline folder is read once.
    """
    base = Path(root)
    lines = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(base).as_posix()
            if patterns is not None and not any(fnmatch(rel, pat) for pat in patterns):
                continue
            if path.is_file():
                lines.append(f"{rel}\t{path.stat().st_size}\t{sha256_file(path)}\n")
    lines.sort()
    return {"sha256": hashlib.sha256("".join(lines).encode("utf-8")).hexdigest(), "files": len(lines)}
