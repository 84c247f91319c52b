"""``python -m rdmeval`` (and ``torchrun -m rdmeval``)."""

from rdmeval.cli.main import console_main

console_main()
