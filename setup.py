"""Packaging glue that pyproject.toml cannot express: the top-level data folders prompts/,
benchmarks/ and results/ ship inside the wheel as rdmeval._assets.<name> (see rdmeval/_assets)."""

from setuptools import find_packages, setup

ASSETS = {f"rdmeval._assets.{name.replace('/', '.')}": name for name in ("prompts", "benchmarks", "benchmarks/pools", "results")}

setup(packages=find_packages(include=["rdmeval", "rdmeval.*"]) + list(ASSETS), package_dir=ASSETS)
