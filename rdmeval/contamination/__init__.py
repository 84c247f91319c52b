"""Contamination audit: how much of a benchmark's prompts were in a training pool.

Pure text processing and statistics beside the evaluation pipeline (never imported by it):

- ``normalize``: the versioned exact / normalized keys;
- ``pool_spec`` / ``pools``: TOML pool composition specs and streaming readers;
- ``structure``: GenEval prompt structure (objects, counts, colours, relation);
- ``ngrams``, ``near_dup``, ``semantic``: the overlap levels;
- ``scan`` / ``tally``: the streaming matcher and its accumulator;
- ``mass``, ``null``, ``split``: sampling mass, null calibration, clean/dirty split of scores;
- ``audit`` / ``report``: ``run_audit`` and the report files.

See docs/contamination.md.
"""

from rdmeval.contamination.audit import AuditResult, run_audit
from rdmeval.contamination.levels import LEVELS, AuditConfig
from rdmeval.contamination.normalize import NORMALIZER_VERSION, exact_key, normalized_key
from rdmeval.contamination.pool_spec import PoolSource, PoolSpec, PoolSpecError, load_pool_spec

__all__ = [
    "LEVELS",
    "NORMALIZER_VERSION",
    "AuditConfig",
    "AuditResult",
    "PoolSource",
    "PoolSpec",
    "PoolSpecError",
    "exact_key",
    "load_pool_spec",
    "normalized_key",
    "run_audit",
]
