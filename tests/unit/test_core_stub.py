"""python/turbogroup/_core.pyi describes exactly what _core exports."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import turbogroup
from turbogroup import _core

STUB = Path(turbogroup.__file__).with_name("_core.pyi")


def stub_names() -> set[str]:
    tree = ast.parse(STUB.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    # private names are the stub's own type aliases
    return {n for n in names if not n.startswith("_") or n == "__version__"}


def test_stub_lists_every_export_and_nothing_else():
    exported = {n for n in dir(_core) if not n.startswith("_") or n == "__version__"}
    assert stub_names() == exported


def test_stubbed_barrier_methods_exist():
    tree = ast.parse(STUB.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Barrier"]
    for node in cls.body:
        if isinstance(node, ast.Expr):  # the docstring
            continue
        name = node.name if isinstance(node, ast.FunctionDef) else node.target.id
        assert hasattr(_core.Barrier, name), name
    assert callable(_core.Barrier) and inspect.isclass(_core.Barrier)


def test_py_typed_is_shipped():
    assert STUB.with_name("py.typed").exists()
