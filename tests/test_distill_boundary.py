"""The evaluation code never imports the trainer: no module under rdmeval/ outside
rdmeval/distill imports rdmeval.distill (absolute, relative or via importlib).

One exception, by name: ``rdmeval/cli/train.py`` (the ``rdmeval train`` command) is the trainer's
front end; it may import rdmeval.distill only inside its functions, so that building rdmeval's
parser (every other command) never loads the trainer."""

from __future__ import annotations

import ast
import subprocess
import sys

from _imports import PACKAGE, imported_names
from _imports import module_name as _module_name

# The command modules allowed to reach the trainer, and only from inside a function.
TRAINER_FRONT_ENDS = {"rdmeval/cli/train.py"}


def distill_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of rdmeval.distill in ``source`` (the file of ``module``), as written."""
    return [t for t in imported_names(source, module, is_package) if t == "rdmeval.distill" or t.startswith("rdmeval.distill.")]


def test_checker_catches_every_import_form():
    assert distill_imports("import rdmeval.distill.trainer", "rdmeval.scorers.x")
    assert distill_imports("from rdmeval.distill import loss", "rdmeval.scorers.x")
    assert distill_imports("from rdmeval import distill", "rdmeval.scorers.x")
    assert distill_imports("from ..distill import loss", "rdmeval.scorers.x")
    assert distill_imports("from . import distill", "rdmeval", is_package=True)
    assert distill_imports("importlib.import_module('rdmeval.distill.toy')", "rdmeval.cli.x")
    assert not distill_imports("from rdmeval.distributed import torchrun_group", "rdmeval.generation")
    assert not distill_imports("from ..scorers import pickscore", "rdmeval.cli.x")


def test_no_evaluation_module_imports_the_trainer():
    files = [
        p for p in PACKAGE.rglob("*.py")
        if "distill" not in p.relative_to(PACKAGE).parts[:1] and str(p.relative_to(PACKAGE.parent)) not in TRAINER_FRONT_ENDS
    ]
    assert len(files) > 20  # the walk found the package
    offenders = {
        str(p.relative_to(PACKAGE.parent)): hits
        for p in files
        if (hits := distill_imports(p.read_text(encoding="utf-8"), _module_name(p), p.name == "__init__.py"))
    }
    assert offenders == {}, f"evaluation code imports the trainer: {offenders}"


def _module_level_code(source: str) -> str:
    """The module's source without the bodies of its functions (what runs at import time)."""
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return ast.unparse(tree)


def test_the_train_command_imports_the_trainer_only_inside_functions():
    assert _module_level_code("import os\ndef run():\n    from rdmeval.distill import run\n") == "import os"
    for rel in TRAINER_FRONT_ENDS:
        path = PACKAGE.parent / rel
        source = path.read_text(encoding="utf-8")
        assert distill_imports(source, _module_name(path))  # it is the front end
        assert distill_imports(_module_level_code(source), _module_name(path)) == [], rel


def test_building_the_cli_does_not_load_the_trainer():
    code = (
        "import sys; from rdmeval.cli.main import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('rdmeval.distill')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent)
    assert out.stdout.strip() == "[]"
