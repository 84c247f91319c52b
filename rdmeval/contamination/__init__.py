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

# Names resolve on first use (PEP 562), so reading a pool spec (e.g. while building the CLI's parser)
# does not import the audit's pandas/numpy stack.
_EXPORTS = {
    "AuditResult": "audit", "run_audit": "audit", "LEVELS": "levels", "AuditConfig": "levels",
    "NORMALIZER_VERSION": "normalize", "exact_key": "normalize", "normalized_key": "normalize",
    "PoolSource": "pool_spec", "PoolSpec": "pool_spec", "PoolSpecError": "pool_spec", "load_pool_spec": "pool_spec",
}


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


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
