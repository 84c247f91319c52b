"""What the scorers share about the runs they read: refusing incomplete runs, and scoring only what the
run promises (:func:`check_run`).

Before any model work both scorers check every image they will score and every prompt record:

- each image: present, mode RGB, the size the manifest records (``request.resolution``) and readable
  to its end (:func:`rdmeval.store.run_store.image_problem` without pixel decoding: PIL's ``verify()``
  reads every PNG chunk and compares its checksum, ~0.5 ms for a 512x512 image). The scorers then
  decode each image they embed or detect in their own loaders, which check mode and size again.
- each prompt folder's ``metadata.jsonl``: the sha256 of its record (canonical JSON line) against the
  hash recorded in ``manifest.json["prompt_records"]`` when the run was made. Runs made before those
  hashes were recorded fall back to reloading the prompt set from the recorded file when it is on this
  machine with the recorded sha256 (a packaged set or a user file); otherwise the records are not
  verified, and the scorer says so in its message and summary.

A problem is an error naming every bad file and what differs; with ``--allow-incomplete`` the images
are excluded and counted (``coverage["excluded_images"]``), never scored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdmeval.api.layout import WorkItem, image_name
from rdmeval.errors import RdmevalError, RunStoreError
from rdmeval.store import RunStore
from rdmeval.store.run_store import image_problem, prompt_record_hashes, record_sha256

#: How prompt records were checked (``RunCheck.prompts_checked``).
BY_MANIFEST = "against the per-prompt hashes in manifest.json"


def listing(title: str, names: Sequence[str], limit: int = 20) -> str:
    """``title (n): a, b, ... (k more)``, showing at most ``limit`` names."""
    shown = ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
    return f"{title} ({len(names)}): {shown}"


def _external_source(manifest: dict[str, Any] | None) -> str | None:
    """The folder or pairs file an adopted run (``rdmeval score ... --out``) stands for; None for rdmeval's own runs."""
    external = (manifest or {}).get("external")
    return str(external.get("source")) if isinstance(external, dict) else None


def incomplete_run_error(root: os.PathLike[str] | str, coverage: dict[str, Any], consequence: str,
                         manifest: dict[str, Any] | None = None) -> RunStoreError:
    """The error for a run with missing prompt folders or images (``RunStore.coverage()``).

    ``consequence`` says why scoring it anyway would mislead; the message lists what is missing and
    the two ways out (resume generation, or for images made by another tool (``manifest`` marked
    external) complete them where they are; or ``--allow-incomplete``).
    """
    lines = [f"{root} is incomplete: {coverage['present_images']} of {coverage['expected_images']} images present."]
    if coverage["missing_prompt_dirs"]:
        lines.append(listing("missing prompt folders", coverage["missing_prompt_dirs"]))
    if coverage["missing_images"]:
        lines.append(listing("missing images", coverage["missing_images"]))
    source = _external_source(manifest)
    if source is None:
        fix = "Finish the run by resuming `rdmeval generate` into the same --out"
    else:
        fix = (f"These images were made by another tool ({source}); every prompt needs as many images as the one with "
               "the most (numbered 0..k-1 here, in their order there). Add the missing images there "
               "and run the same command again")
    lines.append(
        f"{consequence} {fix}, or pass "
        "--allow-incomplete to score the images present (coverage is then reported next to every number)."
    )
    return RunStoreError("\n".join(lines))


@dataclass
class RunCheck:
    """The outcome of :func:`check_run`: what may be scored, what was excluded and why."""

    scorable: list[WorkItem]
    excluded: dict[str, str] = field(default_factory=dict)  # image (relative to the run) -> what is wrong
    prompts_checked: str = BY_MANIFEST

    @property
    def note(self) -> str:
        """'' for a clean check against the manifest's hashes, else one sentence for messages and summaries."""
        parts = []
        if self.excluded:
            parts.append(f"{len(self.excluded)} images excluded by the run check (not scored): "
                         + ", ".join(list(self.excluded)[:5]) + (", ..." if len(self.excluded) > 5 else ""))
        if self.prompts_checked != BY_MANIFEST:
            parts.append(f"prompt records checked {self.prompts_checked}")
        return "; ".join(parts)

    def apply(self, coverage: dict[str, Any]) -> dict[str, Any]:
        """``coverage`` (``RunStore.coverage()``) with excluded images counted as not present."""
        if not self.excluded:
            return coverage
        return {**coverage, "present_images": coverage["present_images"] - len(self.excluded),
                "excluded_images": [f"{name} ({why})" for name, why in self.excluded.items()], "complete": False}

    def provenance(self) -> dict[str, Any]:
        """What a summary records about the check: {} for a clean one (so valid runs' outputs do not change)."""
        out: dict[str, Any] = {}
        if self.excluded:
            out["excluded_images"] = dict(self.excluded)
        if self.prompts_checked != BY_MANIFEST:
            out["prompt_records"] = self.prompts_checked
        return out


def _reloaded_hashes(request: dict[str, Any]) -> dict[str, str] | None:
    """Per-prompt hashes from the prompt set file the run recorded, if it is here with the recorded sha256."""
    from rdmeval.prompts import load_prompt_set

    ps = request.get("prompt_set") or {}
    source = str(ps.get("source", ""))
    if source.startswith("rdmeval:prompts/"):
        target: str | Path = str(ps.get("name", ""))  # a packaged set: no download
    elif ps.get("version") == "file" and Path(source).is_file():
        target = Path(source)
    else:
        return None
    try:
        prompt_set = load_prompt_set(target)
    except (RdmevalError, OSError):
        return None
    if prompt_set.sha256 != ps.get("sha256"):
        return None
    return prompt_record_hashes(prompt_set.prompts)


def _expected_records(manifest: dict[str, Any]) -> tuple[dict[str, str] | None, str]:
    recorded = manifest.get("prompt_records")
    if isinstance(recorded, dict):
        return recorded, BY_MANIFEST
    name = (manifest.get("request", {}).get("prompt_set") or {}).get("name", "?")
    reloaded = _reloaded_hashes(manifest.get("request", {}))
    if reloaded is not None:
        return reloaded, (f"against the prompt set {name!r} reloaded from its recorded file (same sha256): "
                          "the manifest predates per-prompt hashes")
    return None, (f"not at all: the manifest predates per-prompt hashes and the prompt set {name!r} is not on "
                  "this machine with its recorded sha256 (resume the run with `rdmeval generate` to record them)")


def _prompt_problem(store: RunStore, index: int, expected: str | None) -> str | None:
    path = store.layout.prompt_metadata(index)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"unreadable ({exc})"
    if expected is None or record_sha256(record) == expected:
        return None
    shown = {k: record[k] for k in ("prompt", "tag") if isinstance(record, dict) and k in record}
    return (f"its record differs from the one the run's images were made for (sha256 {record_sha256(record)[:12]} "
            f"found, {expected[:12]} recorded in manifest.json); it now holds {json.dumps(shown)}")


def check_run(store: RunStore, items: Sequence[WorkItem], *, allow_incomplete: bool) -> RunCheck:
    """Check ``items`` (present images) and their prompt records against the run's manifest.

    Raises a :class:`RunStoreError` naming every bad file and what differs, unless ``allow_incomplete``:
    then the bad images (and every image of a prompt whose record differs) are excluded and counted.
    """
    manifest = store.read_manifest()
    size = store.image_size()
    records, how = _expected_records(manifest)
    problems: dict[Path, str] = {}
    bad_prompts: set[int] = set()
    for index in sorted({it.prompt_index for it in items}):
        expected = None if records is None else records.get(str(index))
        if records is not None and expected is None:
            problem: str | None = "no hash recorded for this prompt in manifest.json"
        else:
            problem = _prompt_problem(store, index, expected)
        if problem is not None:
            problems[store.layout.prompt_metadata(index)] = problem
            bad_prompts.add(index)
    excluded: dict[str, str] = {}
    for it in items:
        problem = image_problem(store.image_path(it), size, decode=False)
        if problem is not None:
            problems[store.image_path(it)] = problem
        elif it.prompt_index in bad_prompts:
            problem = f"its prompt's {store.layout.prompt_metadata(it.prompt_index).name} differs from the manifest"
        if problem is not None:
            excluded[image_name(*it)] = problem
    if problems and not allow_incomplete:
        lines = [f"{store.root}: {len(problems)} files differ from what the run's manifest promises:"]
        source = _external_source(manifest)
        shown = {(f"{path} (links to {os.readlink(path)})" if source is not None and path.is_symlink() else str(path)): why
                 for path, why in problems.items()}
        lines += [f"  {path}: {why}" for path, why in list(shown.items())[:20]]
        if len(problems) > 20:
            lines.append(f"  ... ({len(problems) - 20} more)")
        if source is None:
            fix = ("Resume the run with `rdmeval generate` into the same --out (it rewrites prompt records and makes "
                   "such images again; delete an image to force it)")
        else:
            fix = (f"These files were made by another tool ({source}): replace or remove them there and run the same "
                   "command again (the links are refreshed)")
        lines.append(f"{fix}, or pass --allow-incomplete to score the "
                     "other images (the excluded ones are counted in the coverage).")
        raise RunStoreError("\n".join(lines))
    return RunCheck([it for it in items if image_name(*it) not in excluded], excluded, how)
