"""No function of the project is over 80 lines (docstring included): one job each."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("scratch", "torch_impl", "harness")
LIMIT = 80


def function_lengths(root: Path = ROOT):
    """(file, qualified name, length in lines) of every function and method under PACKAGES."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            found.extend(_walk(tree, path.relative_to(root).as_posix(), ""))
    return found


def _walk(node, file: str, prefix: str):
    for child in ast.iter_child_nodes(node):
        name = prefix
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield file, name, child.end_lineno - child.lineno + 1
            name += "."
        yield from _walk(child, file, name)


def test_the_walk_sees_every_package():
    files = {f.split("/")[0] for f, _, _ in function_lengths()}
    assert files == set(PACKAGES)


def test_the_walk_measures_nested_functions(tmp_path):
    (tmp_path / "harness").mkdir()
    body = "\n".join(f"            x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "harness" / "m.py").write_text(
        f"class C:\n    def f(self):\n        def g():\n{body}\n        return g\n")
    for package in PACKAGES[:2]:
        (tmp_path / package).mkdir()
    lengths = {name: n for _, name, n in function_lengths(tmp_path)}
    assert lengths == {"C.f": LIMIT + 3, "C.f.g": LIMIT + 1}


def test_no_function_over_80_lines():
    long = [f"{file}: {name} is {n} lines" for file, name, n in function_lengths()
            if n > LIMIT]
    assert not long, (f"{len(long)} function(s) over {LIMIT} lines (docstring included); "
                      f"split each into functions of one job:\n  " + "\n  ".join(long))
