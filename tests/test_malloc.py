"""Library calls leave the process's malloc settings alone: only the user's explicit
`synthsae.reuse_freed_memory()` changes them (its own tests live in benchmarks/test_malloc.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import torch

import synthsae
from synthsae.sae import make
from synthsae.solvers import sparse_code

# `fake_libc` (records the calls instead of making them): a fixture of the repository's conftest.py


def test_sparse_code_and_sae_steps_leave_malloc_alone(fake_libc):
    g = torch.Generator().manual_seed(0)
    D = torch.nn.functional.normalize(torch.randn(16, 8, generator=g), dim=1)
    X = torch.randn(21, 8, generator=g)
    assert sparse_code(X, D, 0.1).all_converged
    assert sparse_code(X, D, 0.1, 0.1, nonneg=True).all_converged
    for on in (False, True):
        sae = make("relu_l1", 8, 32, sparse_kernels=on)
        sae.loss(X.float())["total"].backward()
    assert fake_libc.calls == []


def test_the_user_opt_in_is_what_changes_them(fake_libc):
    """The same recorder sees the opt-in (so the test above can fail)."""
    with synthsae.reuse_freed_memory():
        pass
    assert fake_libc.calls and fake_libc.calls[-1] == ("malloc_trim", 0)



def uses_malloc_settings(source: str) -> bool:
    """True when the code (not its docstrings or comments) imports synthsae._malloc or names
    reuse_freed_memory, mallopt or malloc_trim."""
    words = {"reuse_freed_memory", "mallopt", "malloc_trim"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and (
                "_malloc" in node.module or any(a.name in words for a in node.names)):
            return True
        if isinstance(node, ast.Import) and any("_malloc" in a.name for a in node.names):
            return True
        if isinstance(node, ast.Name) and node.id in words or isinstance(node, ast.Attribute) and node.attr in words:
            return True
    return False


def test_no_library_module_uses_the_malloc_switch():
    """Only synthsae/_malloc.py (the opt-in) and the top-level export use it; no module calls
    mallopt or opens the scope on the user's behalf."""
    root = Path(synthsae.__file__).resolve().parent
    users = {str(p.relative_to(root.parent)) for p in root.rglob("*.py")
             if p.name != "_malloc.py" and p != root / "__init__.py" and uses_malloc_settings(p.read_text())}
    assert not users, f"library modules that change malloc settings: {sorted(users)}"


def test_the_source_check_sees_a_use_and_ignores_prose():
    assert uses_malloc_settings("from synthsae._malloc import reuse_freed_memory\n")
    assert uses_malloc_settings("import synthsae\nwith synthsae.reuse_freed_memory():\n    pass\n")
    assert not uses_malloc_settings('"""Use `synthsae.reuse_freed_memory()` for speed."""\nx = 1  # mallopt\n')
