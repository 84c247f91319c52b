"""The evaluation code never imports the trainer: no module under rdmeval/ outside
rdmeval/distill imports rdmeval.distill (absolute, relative or via importlib)."""

from __future__ import annotations

from _imports import PACKAGE, imported_names
from _imports import module_name as _module_name


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
    files = [p for p in PACKAGE.rglob("*.py") if "distill" not in p.relative_to(PACKAGE).parts[:1]]
    assert len(files) > 20  # the walk found the package
    offenders = {
        str(p.relative_to(PACKAGE.parent)): hits
        for p in files
        if (hits := distill_imports(p.read_text(encoding="utf-8"), _module_name(p), p.name == "__init__.py"))
    }
    assert offenders == {}, f"evaluation code imports the trainer: {offenders}"
