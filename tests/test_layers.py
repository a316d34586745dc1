"""No layer imports from a layer above it: world -> solvers -> sae -> metrics -> experiments -> cli.

Read from the source (ast), function-level imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import synthsae

ORDER = ["world", "solvers", "sae", "metrics", "experiments", "bench", "cli"]
ROOT = Path(synthsae.__file__).resolve().parent


def layer_of_module(name: str) -> str | None:
    """The pipeline layer a `synthsae...` module name belongs to (None for the others)."""
    parts = name.split(".")
    if parts[0] != "synthsae" or len(parts) < 2:
        return None
    if parts[1] in ORDER:
        return parts[1]
    if parts[1] in synthsae._EXPORTS:  # a lazily exported top-level name: its defining module
        return layer_of_module(synthsae._EXPORTS[parts[1]])
    return None


def upward_imports(source: str, label: str, layer: str) -> list[str]:
    """Imports in `source` (a module of `layer`) of a module of a later layer, as "label:line name"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            target = layer_of_module(name)
            if target is not None and ORDER.index(target) > ORDER.index(layer):
                found.append(f"{label}:{node.lineno} imports {name}")
    return found


def test_no_layer_imports_from_a_layer_above_it():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        layer = path.relative_to(ROOT).parts[0].removesuffix(".py")
        if layer in ORDER:
            bad += upward_imports(path.read_text(), str(path.relative_to(ROOT.parent)), layer)
    assert not bad, "\n".join(bad)


def test_the_check_sees_an_upward_import():
    source = "def f():\n    from synthsae.sae.sparse import decode\n    from synthsae import evaluate\n"
    assert upward_imports(source, "probe", "solvers") == [
        "probe:2 imports synthsae.sae.sparse", "probe:2 imports synthsae.sae.sparse.decode",
        "probe:3 imports synthsae.evaluate"]
    assert upward_imports(source, "probe", "experiments") == []
