"""Where rdmeval keeps downloaded files: $RDMEVAL_CACHE, else ~/.cache/rdmeval."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("RDMEVAL_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "rdmeval"
    return path
