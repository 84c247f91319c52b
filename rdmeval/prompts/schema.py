"""The prompt-set data model: a named, versioned, hashed list of prompts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Prompt:
    """One benchmark prompt.

    ``index`` is the 0-based position in the set (GenEval's ``prompt_idx``: the line of the
    metadata file); ``metadata`` holds the full record as read (for GenEval the official dict
    with ``tag``, ``include``, optional ``exclude`` and ``prompt``, in the file's key order).
    """

    index: int
    text: str
    tag: str | None = None
    id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class PromptSet:
    """A list of prompts plus everything needed to say exactly which list it is."""

    name: str
    version: str
    prompts: list[Prompt]
    sha256: str
    source: str
    format: str
    definition: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.prompts)

    def __iter__(self):
        return iter(self.prompts)

    def __getitem__(self, i: int) -> Prompt:
        return self.prompts[i]

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]

    def tag_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.prompts:
            key = p.tag or "-"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def describe(self) -> dict[str, Any]:
        """The identity of the set, as recorded in run manifests and results."""
        return {
            "name": self.name,
            "version": self.version,
            "sha256": self.sha256,
            "n_prompts": len(self.prompts),
            "format": self.format,
            "source": self.source,
            "definition": self.definition,
            "params": dict(self.params),
        }
