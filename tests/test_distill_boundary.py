"""The evaluation code never imports the trainer: no module under rdmeval/ outside
rdmeval/distill imports rdmeval.distill (absolute, relative or via importlib)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rdmeval"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def distill_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of rdmeval.distill in ``source`` (the file of ``module``), as written."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                targets = [node.args[0].value]
        found += [t for t in targets if t == "rdmeval.distill" or t.startswith("rdmeval.distill.")]
    return found


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
    files = [p for p in PACKAGE.rglob("*.py") if "distill" not in p.relative_to(PACKAGE).parts[:1]]
    assert len(files) > 20  # the walk found the package
    offenders = {
        str(p.relative_to(PACKAGE.parent)): hits
        for p in files
        if (hits := distill_imports(p.read_text(encoding="utf-8"), _module_name(p), p.name == "__init__.py"))
    }
    assert offenders == {}, f"evaluation code imports the trainer: {offenders}"
