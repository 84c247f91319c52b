"""Atomic file writes and hashing."""

from rdmeval.io.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from rdmeval.io.hashing import DIGEST_SUFFIX, digest_record, read_digest, recorded_sha256, sha256_file, sha256_folder

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "DIGEST_SUFFIX", "digest_record", "read_digest", "recorded_sha256", "sha256_file", "sha256_folder"]
