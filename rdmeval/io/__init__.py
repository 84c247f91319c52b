"""Atomic file writes and hashing."""

from rdmeval.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from rdmeval.io.hashing import recorded_sha256, sha256_file, sha256_folder

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "recorded_sha256", "sha256_file", "sha256_folder"]
