"""The import rules that keep mlcycle a library with a thin command line (docs/architecture.md).

- Only ``mlcycle/cli/`` may import typer, rich, click or ``mlcycle.cli``: the library
  never prints and never speaks of flags.
- ``UsageError`` exists only in the CLI; the library raises ``OptionError`` naming the
  parameter.
- No library module calls ``print``.
- The values of the columns commands add and of ``eval`` are defined once, in table.py.
- No library module is over ~600 lines unless its docstring states why ("Size:").
- ``import mlcycle`` imports nothing heavy; the public API is what ``__all__`` says.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "mlcycle"
# __main__.py is the CLI entry point (python -m mlcycle), not library code
LIBRARY = sorted(p for p in ROOT.rglob("*.py")
                 if "cli" not in p.relative_to(ROOT).parts and p.name != "__main__.py")
CLI_ONLY = ("typer", "rich", "click", "mlcycle.cli")
MAX_LINES = 600


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT.parent))


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


@pytest.mark.parametrize("path", LIBRARY, ids=_rel)
def test_library_imports_no_cli_machinery(path):
    tree = ast.parse(path.read_text(), str(path))
    bad = [f"{_rel(path)}:{line}: imports {name}" for line, name in _imports(tree)
           if any(name == m or name.startswith(m + ".") for m in CLI_ONLY)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", LIBRARY, ids=_rel)
def test_library_neither_prints_nor_raises_usage_errors(path):
    tree = ast.parse(path.read_text(), str(path))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            bad.append(f"{_rel(path)}:{node.lineno}: print()")
        if isinstance(node, ast.Name) and node.id == "UsageError":
            bad.append(f"{_rel(path)}:{node.lineno}: UsageError (raise OptionError naming the parameter)")
    assert not bad, "\n".join(bad)


def test_contract_values_are_defined_once():
    """'tp'/'fp'/'fn' and the added column names appear as literals only in table.py."""
    from mlcycle import table as T

    values = set(T.EVAL_VALUES) | set(T.COMMAND_COLUMNS)
    bad = []
    for path in LIBRARY:
        if path.name == "table.py" and path.parent == ROOT:
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in values
                    and id(node) not in docstrings):
                bad.append(f"{_rel(path)}:{node.lineno}: literal {node.value!r} (use mlcycle.table's constant)")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", LIBRARY, ids=_rel)
def test_library_modules_stay_small_or_say_why(path):
    text = path.read_text()
    lines = text.count("\n")
    if lines <= MAX_LINES:
        return
    doc = ast.get_docstring(ast.parse(text)) or ""
    assert "Size:" in doc, f"{_rel(path)} has {lines} lines: split it by concept, or state why in its docstring ('Size: ...')"


def test_import_mlcycle_is_light_and_the_api_is_complete():
    code = (
        "import sys, mlcycle\n"
        "heavy = [m for m in ('pyarrow', 'numpy', 'pycocotools', 'yaml', 'rich', 'typer') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "missing = [n for n in mlcycle.__all__ if not hasattr(mlcycle, n)]\n"
        "assert not missing, missing\n"
        "assert callable(mlcycle.evaluate) and callable(mlcycle.describe)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# Strings that name a command line on purpose: the exit-status sentences of the man pages,
# and the header a drafted schema carries to say which command drafted it.
_FLAG_TEXT_ALLOWED = {("errors.py", "--fail-under"), ("draft.py", "--infer")}


def test_library_messages_name_parameters_not_flags():
    """A library message mentions a parameter with errors.mention(); the CLI shows the flag."""
    import re

    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    bad = []
    for path in LIBRARY:
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                for m in flag.findall(node.value):
                    if (path.name, m) not in _FLAG_TEXT_ALLOWED:
                        bad.append(f"{_rel(path)}:{node.lineno}: {m!r} in a message (use errors.mention)")
    assert not bad, "\n".join(bad)
