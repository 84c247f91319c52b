"""Every error a message: OS and library errors become one line naming the path and what to do.

The CLI's top-level handler (:func:`rdmeval.cli.main.main`) calls :func:`explain` on an exception a
command raised. It knows

- every ``OSError`` (disk full, permission denied, read-only file system, a file where a folder is
  expected or the reverse, a missing file, an existing file given as ``--out``, ...), with a hint per
  ``errno``; PIL's ``UnidentifiedImageError`` is an ``OSError`` too (a corrupt image);
- the errors libraries raise for a corrupt or truncated file inside a base pipeline, scorer model or
  checkpoint folder (JSON, safetensors, pickle / torch archives, zip). When the message does not name
  the file, the innermost traceback frame holding an existing file path among its locals does;
- errors re-raised by a PyTorch ``DataLoader`` from a worker process: their text carries the worker's
  whole traceback, of which only the last line (the original error) is kept.

Anything else is a bug and keeps its traceback. ``rdmeval -v`` or ``RDMEVAL_DEBUG=1`` shows the
traceback of every error.
"""

from __future__ import annotations

import argparse
import errno
import os
import pickle
import re
import sys
import zipfile
from types import TracebackType
from typing import Callable

#: errno -> what to do about it.
OS_HINTS: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free space (or choose another --out) and run again; finished work is kept",
    errno.EDQUOT: "the disk quota is exceeded: free space (or choose another --out) and run again; finished work is kept",
    errno.EACCES: "permission denied: choose a location you may write to (or fix the permissions)",
    errno.EPERM: "operation not permitted: choose a location you may write to (or fix the permissions)",
    errno.EROFS: "the file system is read-only: choose a writable location (e.g. another --out)",
    errno.EISDIR: "this is a folder where a file is expected: pass a file path",
    errno.ENOTDIR: "a part of this path is a file where a folder is expected: pass a folder (e.g. a new --out)",
    errno.EEXIST: "this already exists (a file where a folder is expected?): choose another path",
    errno.ENOENT: "no such file or folder: check the path",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter one",
    errno.EMFILE: "too many open files: lower --workers or raise the limit (ulimit -n)",
}
CORRUPT_HINT = "the file is corrupt or truncated: replace it (download or copy it again) and run again"
#: Library exceptions that mean "this file is unreadable", by class name (their modules import lazily).
CORRUPT_FILE_ERRORS: tuple[str, ...] = ("SafetensorError", "HeaderTooLarge", "DecompressionBombError")
_TORCH_ARCHIVE = re.compile(r"PytorchStreamReader|central directory|invalid load key|unexpected EOF")
_PATH_LOCALS = ("checkpoint_file", "resolved_archive_file", "config_file", "filename", "file", "path",
                "fast_tokenizer_file", "vocab_file", "checkpoint", "weights", "img_path", "fp", "f")


def worker_error(text: str) -> str:
    """The original error line of a DataLoader worker's re-raised exception (else ``text``)."""
    if "DataLoader worker" not in text or "Original Traceback" not in text:
        return text
    last = [ln for ln in text.strip().splitlines() if ln.strip()][-1].strip()
    return re.sub(r"^[\w.]+(Error|Exception|Interrupt)\w*: ", "", last)  # 'rdmeval.errors.RunStoreError: msg' -> 'msg'


def _file_from_traceback(tb: TracebackType | None) -> str | None:
    """The innermost frame's local (by a path-like name) naming an existing file."""
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for name in _PATH_LOCALS:
            value = frame.f_locals.get(name)
            if hasattr(value, "name") and not isinstance(value, (str, os.PathLike)):
                value = getattr(value, "name", None)  # an open file object
            if isinstance(value, (str, os.PathLike)):
                text = os.fspath(value)
                if isinstance(text, str) and 0 < len(text) < 4096 and "\n" not in text and os.path.isfile(text):
                    return text
    return None


def _is_corrupt_file_error(exc: BaseException) -> bool:
    import json

    if isinstance(exc, (json.JSONDecodeError, UnicodeDecodeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError)):
        return True
    if type(exc).__name__ in CORRUPT_FILE_ERRORS:
        return True
    return isinstance(exc, RuntimeError) and bool(_TORCH_ARCHIVE.search(str(exc)))


def explain(exc: BaseException) -> str | None:
    """One line for a user: the path, what went wrong and what to do; None for an unexpected error (a bug)."""
    if isinstance(exc, OSError):
        if type(exc).__name__ == "UnidentifiedImageError":
            return f"{worker_error(str(exc))}: {CORRUPT_HINT}"
        paths = [os.fspath(p) for p in (exc.filename, exc.filename2) if p is not None]
        if exc.errno is None or not paths:  # a library's OSError: its own message names the file
            text = worker_error(str(exc)).strip().rstrip(".")
            path = None if paths or re.search(r"['\"]?/[^\s'\"]+", text) else _file_from_traceback(exc.__traceback__)
            hint = OS_HINTS.get(exc.errno or -1, "")
            if not hint and re.search(r"corrupt|not a valid|Unable to load|invalid|truncat", text, re.I):
                hint = CORRUPT_HINT
            return "; ".join(x for x in (f"{path}: {text}" if path else text, hint) if x)
        where = " -> ".join(paths)
        return f"{where}: {exc.strerror or exc}; {OS_HINTS.get(exc.errno, 'check the path, its permissions and the disk')}"
    if _is_corrupt_file_error(exc):
        path = _file_from_traceback(exc.__traceback__)
        first = (str(exc).strip().splitlines() or [""])[0]
        what = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        return f"{path or 'a file'}: cannot be read ({what}); {CORRUPT_HINT}"
    return None


def module_main(run: Callable[[], int | None], *, on_interrupt: str) -> int:
    """The error handling of a ``python -m`` entry point, as ``rdmeval``'s: an RdmevalError, or an OS or
    library error that :func:`explain` knows, is one line and exit code 2; Ctrl-C says what is kept (130)."""
    from rdmeval.errors import RdmevalError

    try:
        return int(run() or 0)
    except RdmevalError as exc:
        print(f"error: {worker_error(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted; {on_interrupt}", file=sys.stderr)
        return 130
    except Exception as exc:
        message = explain(exc)
        if message is None:
            raise  # an unexpected error is a bug: keep its traceback
        print(f"error: {message}", file=sys.stderr)
        return 2


def add_verbose_flag(sub: argparse._SubParsersAction) -> None:
    """Let ``-v/--verbose`` follow any (sub)command too: ``rdmeval generate ... -v``."""
    for parser in sub.choices.values():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            add_verbose_flag(action)
        if not nested and "-v" not in parser._option_string_actions and "-" in parser.prefix_chars:
            parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                help="show third-party warnings and log lines, and the traceback of an error (also RDMEVAL_DEBUG=1)")
