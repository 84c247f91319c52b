"""The bootstrap flags, spelled the same in every subcommand: ``--n-resamples N`` and ``--seed S``."""

from __future__ import annotations

import argparse

from rdmeval.bootstrap import N_RESAMPLES, SEED


def _n_resamples(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def add_bootstrap_args(group: argparse._ActionsContainer, *, what: str = "bootstrap", default: int = N_RESAMPLES) -> None:
    """Add ``--n-resamples`` (default ``default``) and ``--seed`` (default 0) to a parser or argument group.

    ``what`` names the intervals in the help text (e.g. "paired bootstrap").
    """
    group.add_argument("--n-resamples", type=_n_resamples, default=default, metavar="N",
                       help=f"{what}: resamples (default {default})")
    group.add_argument("--seed", type=int, default=SEED, help=f"{what}: seed (default {SEED})")
