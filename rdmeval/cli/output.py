"""What a command prints besides its results: rdmeval's status lines, and third-party noise held back.

**Status lines.** Library code says what it is doing through the standard ``logging`` module (logger
``rdmeval.*``: INFO before a slow step such as a model load, WARNING for what the user should know,
e.g. that FLUX.2 [klein] is about to run on the CPU). While a command runs, :func:`command_output`
prints them to stderr as ``rdmeval: ...`` (INFO on rank 0 only under torchrun). Imported as a library,
rdmeval adds no handler: Python's last-resort handler shows its warnings, nothing else.

**Quiet by default.** diffusers, transformers, mmdet/mmengine, open_clip and torch print warnings
about their own internals (mmdet's "checkpoint is None, use COCO classes by default.", torch's
``meshgrid`` indexing notice, ...), log lines and "Loading weights" progress bars; none of it is about
the user's run. While a command runs (and only then: nothing changes when rdmeval is imported as a
library) the CLI holds back

- Python warnings attributed to a file outside the rdmeval package (rdmeval's own are shown, and so is
  a library's warning attributed to the rdmeval line that called it: it is about that call);
- records below ERROR of the third-party loggers (:data:`LIBRARY_LOGGERS` and mmengine's
  ``MMLogger``); errors are shown;
- the model-loading progress bars of transformers and diffusers (huggingface_hub's download bars
  stay: a first run downloads gigabytes, and that bar is the only sign of progress),

and prints one line at the end: ``rdmeval: 2 third-party warnings hidden; -v shows them``.
``-v`` (or ``RDMEVAL_DEBUG=1``) changes nothing, so every library prints as it would on its own.
Everything is restored when the command returns, so ``main()`` can be called repeatedly in one process.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

import rdmeval

#: Loggers of the libraries rdmeval drives (their child loggers propagate to them).
LIBRARY_LOGGERS: tuple[str, ...] = (
    "transformers", "diffusers", "huggingface_hub", "accelerate", "sentence_transformers", "open_clip", "timm",
    "mmengine", "mmdet", "mmcv", "torch", "PIL", "urllib3", "filelock", "fsspec", "datasets",
)
#: The logging modules of libraries that set up their root logger (a handler, a level) and a progress-bar
#: switch on first use: right after one is imported, it is set up and then held back (see ``_AfterImport``).
SELF_CONFIGURING: tuple[str, ...] = ("transformers.utils.logging", "diffusers.utils.logging")
_PACKAGE_DIR = str(Path(rdmeval.__file__).resolve().parent) + os.sep


@dataclass
class Hidden:
    """Distinct third-party messages held back, with how often each came."""

    messages: Counter[str] = field(default_factory=Counter)

    def add(self, text: str) -> None:
        self.messages[text.strip().splitlines()[0] if text.strip() else text] += 1

    def line(self) -> str | None:
        n = len(self.messages)
        if not n:
            return None
        return f"{n} third-party warning{'s' if n != 1 else ''} hidden; -v shows them"


def is_own_file(filename: str) -> bool:
    """Whether a warning attributed to ``filename`` comes from rdmeval itself."""
    try:
        return str(Path(filename).resolve()).startswith(_PACKAGE_DIR)
    except (OSError, ValueError):
        return False


class _StatusFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        kind = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"rdmeval: {kind}{record.getMessage()}"


class _HoldBack(logging.Handler):
    """Stands in for a library logger's handlers: errors go on to them, the rest is counted."""

    def __init__(self, hidden: Hidden, handlers: list[logging.Handler]):
        super().__init__(logging.NOTSET)
        self.hidden = hidden
        self.handlers = handlers

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            targets = self.handlers if self.handlers else [logging.lastResort]
            for h in targets:
                if h is not None and record.levelno >= h.level:
                    h.handle(record)
        elif record.levelno >= logging.WARNING:
            self.hidden.add(f"[{record.name}] {record.getMessage()}")


@contextlib.contextmanager
def status_lines(stream: TextIO | None = None) -> Iterator[None]:
    """rdmeval's INFO/WARNING log lines to stderr as ``rdmeval: ...`` for the duration."""
    logger = logging.getLogger("rdmeval")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_StatusFormatter())
    rank = os.environ.get("RANK")
    handler.setLevel(logging.INFO if rank in (None, "", "0") else logging.WARNING)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``callbacks[name](module)`` right after the module ``name`` is first imported.

    It finds the module's spec with the other finders and wraps its loader's ``exec_module``; it is
    on ``sys.meta_path`` only while a command runs."""

    def __init__(self, callbacks: dict[str, Callable[[ModuleType], None]]):
        self.callbacks = callbacks

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        callback = self.callbacks.get(fullname)
        if callback is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if finder is not self and find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_then_call(module: ModuleType) -> None:
            exec_module(module)
            callback(module)

        loader.exec_module = exec_then_call  # this module's own loader object
        return spec


class _Quiet:
    """The state :func:`third_party_quiet` changes, and how to put it back."""

    def __init__(self, hidden: Hidden):
        self.hidden = hidden
        self.saved: dict[int, tuple[logging.Logger, list[logging.Handler], bool]] = {}
        self.holders: dict[int, _HoldBack] = {}
        self.bars: list[tuple[ModuleType, bool]] = []

    def hold(self, logger: logging.Logger) -> None:
        """Route ``logger``'s records through a hold-back handler (again after a library added handlers)."""
        key = id(logger)
        if key not in self.saved:
            self.saved[key] = (logger, logger.handlers[:], logger.propagate)
            self.holders[key] = _HoldBack(self.hidden, logger.handlers[:])
        holder = self.holders[key]
        holder.handlers += [h for h in logger.handlers if h is not holder and h not in holder.handlers]
        logger.handlers = [holder]
        logger.propagate = False

    def library_set_up(self, module: ModuleType) -> None:
        """transformers/diffusers logging imported: let it configure itself now, then hold back its logger and bars."""
        module.get_verbosity()  # sets up the library's root logger (its handler and level) if not done yet
        self.hold(logging.getLogger(module.__name__.split(".")[0]))
        self.bars.append((module, bool(module.is_progress_bar_enabled())))
        module.disable_progress_bar()

    def mmengine_set_up(self, module: ModuleType) -> None:
        """mmengine's current MMLogger (mmdet and mmcv log through it; it lives outside logging's tree)."""
        self.hold(module.MMLogger.get_current_instance())

    def restore(self) -> None:
        for key, (logger, handlers, propagate) in self.saved.items():
            added = [h for h in self.holders[key].handlers if h not in handlers]  # set up during the command
            logger.handlers = handlers + added
            logger.propagate = propagate and not added
        for module, enabled in self.bars:
            if enabled:
                module.enable_progress_bar()


@contextlib.contextmanager
def third_party_quiet() -> Iterator[Hidden]:
    """Hold back third-party warnings, log records below ERROR and loading bars; yields what was hidden."""
    hidden = Hidden()
    state = _Quiet(hidden)
    for name in LIBRARY_LOGGERS:
        state.hold(logging.getLogger(name))
    callbacks: dict[str, Callable[[ModuleType], None]] = {m: state.library_set_up for m in SELF_CONFIGURING}
    callbacks["mmengine.logging"] = state.mmengine_set_up
    for name, callback in list(callbacks.items()):
        if name in sys.modules:  # imported before the command (tests, a second main() call): set up now
            callback(sys.modules[name])
            del callbacks[name]
    hook = _AfterImport(callbacks)
    sys.meta_path.insert(0, hook)
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 (warnings' signature)
            if is_own_file(filename):
                shown(message, category, filename, lineno, file, line)
            else:
                hidden.add(f"{category.__name__}: {message}")

        warnings.showwarning = show
        try:
            yield hidden
        finally:
            if hook in sys.meta_path:
                sys.meta_path.remove(hook)
            state.restore()


@contextlib.contextmanager
def hub_bars_off(off: bool) -> Iterator[None]:
    """``--no-progress``: huggingface_hub's download bars off too, for the duration."""
    if not off:
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def wants_progress(args: Any) -> bool:
    """Whether a parsed command line asks for progress bars (``--no-progress``, or the demo's/audit's ``--progress``)."""
    return not getattr(args, "no_progress", False) and getattr(args, "progress", True) is not False


@contextlib.contextmanager
def command_output(*, verbose: bool, progress: bool = True) -> Iterator[None]:
    """Status lines on; (unless ``verbose``) third-party noise held back and summed up at the end;
    without ``progress``, huggingface_hub's download bars off as well."""
    with status_lines(), hub_bars_off(not progress):
        if verbose:
            yield
            return
        with third_party_quiet() as hidden:
            try:
                yield
            finally:
                line = hidden.line()
                if line and os.environ.get("RANK") in (None, "", "0"):
                    print(f"rdmeval: {line}", file=sys.stderr, flush=True)
