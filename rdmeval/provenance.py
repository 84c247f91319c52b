"""What produced a run, and how that is printed without machine paths.

- The command line: ``rdmeval.cli.main.main`` records the arguments it parses (:func:`set_command`);
  ``generate_run`` writes :func:`current_command` into the run manifest's ``execution.command``.
- Printing: tables and reports cite files by name, never by a path of the machine that made them
  (:func:`shown_path`, :func:`shown_command`): a shared table must not reveal (or depend on) where
  someone's home folder or cache is.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Sequence

_COMMAND: str | None = None

#: A drive-letter path (C:\... or C:/...) or a UNC path.
_WINDOWS_ABS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def set_command(argv: Sequence[str]) -> None:
    """Record the command line of this process (``argv`` without the program name)."""
    global _COMMAND
    _COMMAND = shlex.join(["rdmeval", *map(str, argv)])


def current_command() -> str | None:
    """``rdmeval <args>`` as the CLI parsed them, or None when rdmeval runs as a library."""
    return _COMMAND


def is_machine_path(text: str) -> bool:
    """Whether ``text`` is an absolute path (POSIX, home-relative or Windows)."""
    return text.startswith(("/", "~")) or bool(_WINDOWS_ABS.match(text))


def shown_path(text: Any) -> str:
    """A file name for an absolute path (``/home/me/ckpt/model.safetensors`` -> ``model.safetensors``);
    any other text as it is."""
    s = "" if text is None else str(text)
    if not is_machine_path(s):
        return s
    path = PureWindowsPath(s) if _WINDOWS_ABS.match(s) else PurePosixPath(s)
    return path.name or s.rstrip("/\\").rsplit("/", 1)[-1] or "(root folder)"


def shown_model(preset: Any) -> str:
    """A model preset as printed: ``diffusers:/home/me/pipe`` -> ``diffusers:pipe`` (a folder by its name, as
    :func:`shown_path`); a hub id (``diffusers:org/repo``) or any other preset as it is."""
    s = "" if preset is None else str(preset)
    head, sep, tail = s.partition(":")
    return f"{head}:{shown_path(tail)}" if sep and head == "diffusers" and is_machine_path(tail) else s


def shown_command(command: str) -> str:
    """``command`` with every absolute path (also in ``--flag=PATH``, ``NAME=PATH`` and ``diffusers:PATH``) cut to its name."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    out = []
    for w in words:
        head, sep, tail = w.partition("=")
        if sep and not is_machine_path(w) and (is_machine_path(tail) or shown_model(tail) != tail):
            out.append(f"{head}={shown_path(shown_model(tail))}")
        else:
            out.append(shown_path(shown_model(w)))
    return shlex.join(out)
