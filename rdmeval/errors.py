"""User-facing errors: the CLI prints their message (which says what to do) and exits with 2."""

from __future__ import annotations


class RdmevalError(Exception):
    """An error caused by input or environment that the user can fix; the message says how."""


class ChecksumError(RdmevalError):
    """A file's sha256 differs from the pinned one."""


class PromptFileError(RdmevalError):
    """A prompt file is malformed; the message names the file and the line."""


class RunStoreError(RdmevalError):
    """A run directory cannot be used as asked (manifest mismatch, incomplete run, ...)."""


class MissingDependencyError(RdmevalError, ModuleNotFoundError):
    """An optional dependency is not installed; the message names the pip extra."""


def require(module: str, extra: str, purpose: str):
    """Import ``module`` or raise a MissingDependencyError naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - message path tested via callers
        raise MissingDependencyError(
            f"{purpose} requires the Python package '{module}' ({exc}). "
            f"Install it with: pip install -e '.[{extra}]'"
        ) from exc
