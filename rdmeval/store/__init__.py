"""The run store: one directory per (model, prompt set) in GenEval's official layout."""

from rdmeval.store.run_store import RunStore, diff_requests
from rdmeval.store.sharding import WorkItem, resolve_shard, shard_items, work_items

__all__ = ["RunStore", "WorkItem", "diff_requests", "resolve_shard", "shard_items", "work_items"]
