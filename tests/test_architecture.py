"""The layers stay layers: no import cycle between rdmeval's top-level parts (``rdmeval.X``).

The imports are read with ``ast`` from every file under rdmeval/ (function-level imports count:
a lazy import is still a dependency). A part is a subpackage (``rdmeval/scorers/``) or a top-level
module (``rdmeval/reproduce.py``). A cycle fails the test with its path, e.g.
``results -> scorers -> results``, and the modules that make each edge.
"""

from __future__ import annotations

from collections import defaultdict

import networkx as nx
import pytest

from _imports import PACKAGE, imported_names, module_name, package_files


def _parts() -> set[str]:
    return {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} | {
        p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"
    }


def part_graph(sources: dict[str, tuple[str, bool]], parts: set[str]) -> tuple[nx.DiGraph, dict[tuple[str, str], set[str]]]:
    """Edges ``a -> b`` between top-level parts, with the importing modules (``module -> target``) behind each."""
    graph = nx.DiGraph()
    why: dict[tuple[str, str], set[str]] = defaultdict(set)
    for module, (source, is_package) in sources.items():
        names = module.split(".")
        if len(names) < 2:
            continue  # rdmeval/__init__.py belongs to no part
        src = names[1]
        graph.add_node(src)
        for target in imported_names(source, module, is_package):
            t = target.split(".")
            if t[0] != "rdmeval" or len(t) < 2 or t[1] not in parts or t[1] == src:
                continue
            graph.add_edge(src, t[1])
            why[(src, t[1])].add(f"{module} -> {target}")
    return graph, why


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    return sorted(sorted_cycle(c) for c in nx.simple_cycles(graph))


def sorted_cycle(cycle: list[str]) -> list[str]:
    """The cycle rotated to start at its smallest name, closed: ``[a, b, a]``."""
    i = cycle.index(min(cycle))
    c = cycle[i:] + cycle[:i]
    return c + [c[0]]


def _explain(found: list[list[str]], why: dict[tuple[str, str], set[str]]) -> str:
    lines = []
    for c in found:
        lines.append(" -> ".join(c))
        for a, b in zip(c, c[1:]):
            lines += [f"    {w}" for w in sorted(why[(a, b)])[:3]]
    return "\n".join(lines)


def _sources() -> dict[str, tuple[str, bool]]:
    return {module_name(p): (p.read_text(encoding="utf-8"), p.name == "__init__.py") for p in package_files()}


def test_checker_finds_a_cycle_and_names_its_edges():
    parts = {"a", "b", "c"}
    sources = {
        "rdmeval.a.x": ("from rdmeval.b import y", False),
        "rdmeval.b": ("def f():\n    from ..c import z\n", True),
        "rdmeval.c.z": ("import rdmeval.a.x\nimport numpy\nfrom rdmeval import errors\n", False),
    }
    graph, why = part_graph(sources, parts)
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert why[("b", "c")] == {"rdmeval.b -> rdmeval.c", "rdmeval.b -> rdmeval.c.z"}
    graph, _ = part_graph({**sources, "rdmeval.c.z": ("import numpy", False)}, parts)
    assert cycles(graph) == []


def test_no_cycle_between_top_level_parts():
    parts = _parts()
    assert {"api", "scorers", "results", "store", "generators"} <= parts  # the walk found the package
    graph, why = part_graph(_sources(), parts)
    found = cycles(graph)
    assert not found, "import cycles between rdmeval's parts:\n" + _explain(found, why)


@pytest.mark.parametrize(
    ("part", "forbidden"),
    [
        ("results", "scorers"),  # results read what scorers wrote, through the files and rdmeval.api
        ("scorers", "results"),  # scorers write result rows through rdmeval.api.rows, never results internals
        ("api", None),  # the contracts depend on no other part but errors and io
        ("store", "generators"),
    ],
)
def test_layer_rules(part, forbidden):
    graph, why = part_graph(_sources(), _parts())
    if forbidden is None:
        allowed = {"errors", "io", "_assets"}
        bad = sorted(set(graph.successors(part)) - allowed)
    else:
        bad = [forbidden] if graph.has_edge(part, forbidden) else []
    assert not bad, {b: sorted(why[(part, b)]) for b in bad}


def test_noise_does_not_import_the_run_store():
    source = (PACKAGE / "generators" / "noise.py").read_text(encoding="utf-8")
    hits = [t for t in imported_names(source, "rdmeval.generators.noise") if t.startswith("rdmeval.store")]
    assert hits == []
