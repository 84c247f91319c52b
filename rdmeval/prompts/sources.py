"""Pinned remote files: download into the cache, verify sha256, or take a local copy instead."""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rdmeval.cache import cache_dir
from rdmeval.errors import ChecksumError, RdmevalError
from rdmeval.io import atomic_write_text, sha256_file


@dataclass(frozen=True)
class RemoteFile:
    """A public file pinned by URL (at a fixed revision) and sha256.

    ``member`` names a file inside a zip archive at ``url``; ``sha256`` is then the member's hash.
    An empty ``sha256`` means upstream publishes none: the hash is recorded on first download
    (trust on first use) in ``<cache>/prompts/<filename>.sha256`` and checked from then on.
    """

    name: str
    url: str
    filename: str
    sha256: str = ""
    member: str = ""


def prompts_search_path() -> list[Path]:
    """Local folders searched before downloading: $RDMEVAL_PROMPTS_PATH (os.pathsep-separated)."""
    raw = os.environ.get("RDMEVAL_PROMPTS_PATH", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def verify(path: Path, remote: RemoteFile) -> str:
    """Check ``path`` against the pinned hash; return its sha256."""
    digest = sha256_file(path, use_cache=False)
    expected = remote.sha256 or _recorded_hash(remote)
    if expected and digest != expected:
        raise ChecksumError(
            f"{path}: sha256 mismatch for prompt set '{remote.name}': expected {expected}, got {digest}. "
            f"The file is not the pinned {remote.filename} ({remote.url}); "
            "delete it (or point --prompts-file at the right copy) and try again."
        )
    return digest


def _recorded_hash(remote: RemoteFile) -> str:
    rec = cache_dir() / "prompts" / f"{remote.filename}.sha256"
    return rec.read_text().strip() if rec.exists() else ""


def _find_local(remote: RemoteFile, local: Path | None) -> Path | None:
    candidates: list[Path] = []
    if local is not None:
        local = Path(local).expanduser()
        if local.is_dir():
            candidates += [local / remote.filename, local / Path(remote.member).name if remote.member else local / remote.filename]
        elif local.exists():
            return local
        else:
            raise RdmevalError(f"--prompts-file {local}: no such file or folder")
    for folder in prompts_search_path():
        candidates.append(folder / remote.filename)
    for c in candidates:
        if c.is_file():
            return c
    if local is not None:
        raise RdmevalError(
            f"{local}: folder does not contain {remote.filename} (needed for prompt set '{remote.name}')"
        )
    return None


def on_this_machine(remote: RemoteFile) -> Path | None:
    """Where ``fetch`` would find ``remote`` without downloading it (RDMEVAL_PROMPTS_PATH or the cache), else None."""
    found = _find_local(remote, None)
    if found is not None:
        return found
    cached = cache_dir() / "prompts" / remote.filename
    return cached if cached.exists() else None


def fetch(remote: RemoteFile, local: Path | None = None) -> tuple[Path, str]:
    """Return (path, sha256) of a verified copy of ``remote``: local, cached, or freshly downloaded."""
    found = _find_local(remote, local)
    if found is not None:
        if found.suffix == ".zip" and remote.member:
            found = _extract_member(found, remote)
        return found, verify(found, remote)
    target = cache_dir() / "prompts" / remote.filename
    if target.exists():
        return target, verify(target, remote)
    if os.environ.get("RDMEVAL_OFFLINE") or os.environ.get("HF_HUB_OFFLINE"):
        raise RdmevalError(
            f"prompt set '{remote.name}' is not cached and downloads are off (RDMEVAL_OFFLINE/HF_HUB_OFFLINE). "
            f"Download {remote.url} yourself and pass it with --prompts-file (`rdmeval reproduce`: --prompts-file "
            "BENCHMARK=PATH), or add its folder to RDMEVAL_PROMPTS_PATH."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        dl = Path(tmp) / Path(remote.url).name
        try:
            with urllib.request.urlopen(remote.url, timeout=60) as resp, open(dl, "wb") as fh:
                shutil.copyfileobj(resp, fh)
        except OSError as exc:
            raise RdmevalError(
                f"could not download prompt set '{remote.name}' from {remote.url} ({exc}). "
                "On an offline machine pass a local copy with --prompts-file (`rdmeval reproduce`: --prompts-file BENCHMARK=PATH)."
            ) from None
        src = _extract_member(dl, remote, into=Path(tmp)) if remote.member else dl
        digest = verify(src, remote)
        os.replace(src, target)
    if not remote.sha256:
        atomic_write_text(cache_dir() / "prompts" / f"{remote.filename}.sha256", digest + "\n")
    return target, digest


def _extract_member(archive: Path, remote: RemoteFile, into: Path | None = None) -> Path:
    into = into or (cache_dir() / "prompts")
    into.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            with zf.open(remote.member) as src, tempfile.NamedTemporaryFile(dir=into, delete=False) as dst:
                shutil.copyfileobj(src, dst)
    except KeyError:
        raise RdmevalError(f"{archive}: archive has no member {remote.member}") from None
    except zipfile.BadZipFile:
        raise RdmevalError(f"{archive}: not a valid zip archive (download it again)") from None
    out = into / remote.filename
    os.replace(dst.name, out)
    return out
