"""One writer per run folder and shard: OS file locks (``fcntl.flock``) that die with their process.

Lock files live beside the run, in ``<parent>/.rdmeval-locks/<run name>/``, so they never appear
inside the run folder and stay put when ``--fresh`` moves a run aside:

- ``<role>-shard-<i>-of-<n>``: held exclusively by the one process that generates (role
  ``generate``) or scores (role ``score-geneval``, ``score-pickscore``) shard ``i/n`` of the run.
  It holds that process's pid, host, start time and command line, which a refused second writer
  prints.
- ``run``: held *shared* by every writer of the run (torchrun: by rank 0 for the whole job), and
  *exclusively* by ``generate --fresh`` until it has moved the old run aside. So shards run in
  parallel, but ``--fresh`` is refused while any other process writes the run.

The kernel drops a ``flock`` when its process ends, however it ends (kill -9 included): there is
no stale lock to clean up. The files themselves are left in place (deleting a lock file races with
a process that has just opened it). A writer that finds no other writer (it can take ``run``
exclusively for a moment) removes the temporary files a killed writer left in the run
(:func:`rdmeval.io.atomic.is_temp_name`). Within one process a lock is re-entrant (a second
acquire shares the first one's file descriptor), so library callers may open a run again.
"""

from __future__ import annotations

import fcntl
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rdmeval.errors import RunStoreError
from rdmeval.io.atomic import is_temp_name

LOCK_DIR = ".rdmeval-locks"
RUN_LOCK = "run"


def lock_folder(run_dir: str | os.PathLike[str]) -> Path:
    root = Path(run_dir).resolve()
    return root.parent / LOCK_DIR / root.name


def shard_lock_name(role: str, rank: int, world: int) -> str:
    return f"{role}-shard-{rank}-of-{world}"


@dataclass
class _Held:
    fd: int
    users: int
    exclusive: bool


_HELD: dict[Path, _Held] = {}
_GUARD = threading.Lock()


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another process (its details are not written yet)"


def _take(path: Path, exclusive: bool) -> bool:
    """Acquire ``path`` (re-entrant within this process); False if another process holds it."""
    with _GUARD:
        held = _HELD.get(path)
        if held is not None:
            if exclusive and not held.exclusive:
                try:
                    fcntl.flock(held.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # Linux drops the shared lock before it fails: take it back
                    fcntl.flock(held.fd, fcntl.LOCK_SH)
                    return False
                held.exclusive = True
            held.users += 1
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        _HELD[path] = _Held(fd, 1, exclusive)
        return True


def _drop(path: Path) -> None:
    with _GUARD:
        held = _HELD.get(path)
        if held is None:
            return
        held.users -= 1
        if held.users <= 0:
            del _HELD[path]
            os.close(held.fd)  # closing the last descriptor releases the flock


def _downgrade(path: Path) -> None:
    with _GUARD:
        held = _HELD.get(path)
        if held is not None and held.exclusive:
            fcntl.flock(held.fd, fcntl.LOCK_SH)
            held.exclusive = False


def _write_owner(path: Path, description: str) -> None:
    fd = _HELD[path].fd
    text = (f"pid {os.getpid()} on {platform.node()} ({description}), since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
            + " ".join(sys.argv) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)


def _other_holders(folder: Path, mine: set[Path]) -> list[str]:
    """Who holds the shard locks of ``folder`` (other than this process): their recorded details."""
    out = []
    for path in sorted(folder.glob("*-shard-*")):
        if path in mine or path in _HELD:
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            out.append(f"{_holder(path)} [lock {path}]")
        finally:
            os.close(fd)
    return out


class RunLock:
    """The locks one writer holds on a run: its shard's, and (unless ``run_lock`` is False) the run's.

    Released by :meth:`release`, when the object is garbage-collected, or when the process ends.
    """

    def __init__(self, run_dir: str | os.PathLike[str], role: str, rank: int, world: int, *,
                 run_lock: bool = True, exclusive: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.folder = lock_folder(run_dir)
        self.shard_path = self.folder / shard_lock_name(role, rank, world)
        self.run_path = self.folder / RUN_LOCK if run_lock else None
        self._paths: list[Path] = []
        what = f"{role} shard {rank}/{world}"
        if not _take(self.shard_path, exclusive=True):
            raise RunStoreError(
                f"{self.run_dir}: {what} is already being written by {_holder(self.shard_path)} "
                f"[lock {self.shard_path}]. One process per run and shard: wait for it to finish or stop it "
                "(the lock is released when that process ends), or use another --out"
            )
        self._paths.append(self.shard_path)
        _write_owner(self.shard_path, what)
        self.alone = False  # True while this writer holds the run lock exclusively (no other writer)
        if self.run_path is not None:
            self.alone = _take(self.run_path, exclusive=True)
            if not self.alone and (exclusive or not _take(self.run_path, exclusive=False)):
                others = _other_holders(self.folder, set(self._paths))
                self.release()
                who = "; ".join(others) or f"another process [lock {self.folder / RUN_LOCK}]"
                if exclusive:
                    raise RunStoreError(
                        f"{self.run_dir}: --fresh would move the run aside while it is being written by {who}. "
                        "Wait for that process to finish or stop it, then run again"
                    )
                raise RunStoreError(  # pragma: no cover - only while another process runs --fresh
                    f"{self.run_dir}: another process is moving this run aside (--fresh): {who}. Run again when it is done"
                )
            self._paths.append(self.run_path)

    def opened(self) -> "RunLock":
        """Call once the run folder exists: if no other process writes the run, remove the temporary files a
        killed writer left; then let other shards in (the exclusive run lock becomes shared)."""
        if self.alone and self.run_path is not None:
            removed = remove_temp_files(self.run_dir)
            if removed:
                print(f"rdmeval: removed {removed} temporary files left in {self.run_dir} by an interrupted writer",
                      file=sys.stderr)
            _downgrade(self.run_path)
            self.alone = False
        return self

    def release(self) -> None:
        while self._paths:
            _drop(self._paths.pop())

    def __del__(self) -> None:
        if getattr(self, "_paths", None):
            self.release()


def remove_temp_files(run_dir: str | os.PathLike[str]) -> int:
    """Delete the atomic writers' temporary files under ``run_dir``; returns how many."""
    n = 0
    for path in Path(run_dir).rglob(".*.tmp"):
        if is_temp_name(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            n += 1
    return n
