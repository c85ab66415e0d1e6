"""No function in shardmerge/ is longer than MAX_LINES lines of code (issue 27): one that grows past it is split.

The measure is a function's lines from its `def` (decorators excluded, its signature in) to its last line, less
its docstring: the rule is about code that does too much, and a numpydoc docstring (the 40 keywords of
`api.ingest`, each described) is documentation that should be as long as it needs. Every function's
docstring-free length is bounded, none is exempt.

The functions listed in KNOWN_LONG predate the rule; each may not grow, and the list may only shrink."""

from __future__ import annotations

import ast
from pathlib import Path

MAX_LINES = 60
PACKAGE = Path(__file__).resolve().parents[2] / "shardmerge"

KNOWN_LONG: dict[str, int] = {}  # "module path:function": its (docstring-free) length; all split since


def function_lengths(root: Path = PACKAGE) -> dict[str, int]:
    """{"relative/path.py:name": lines} of every function and method (decorators and docstring excluded)."""
    out: dict[str, int] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = f"{path.relative_to(root).as_posix()}:{node.name}"
                out[key] = max(out.get(key, 0), node.end_lineno - node.lineno + 1 - _docstring_lines(node))
    return out


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """The lines of the function's docstring (its first statement, when that is a string literal), else 0."""
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno - first.lineno + 1
    return 0


def test_no_function_is_longer_than_the_limit():
    lengths = function_lengths()
    too_long = {k: n for k, n in lengths.items() if n > MAX_LINES and k not in KNOWN_LONG}
    assert not too_long, f"split these (over {MAX_LINES} lines): {too_long}"
    grown = {k: (lengths[k], n) for k, n in KNOWN_LONG.items() if lengths.get(k, 0) > n}
    assert not grown, f"known long functions may not grow: {grown}"


def test_the_known_long_list_only_holds_functions_still_over_the_limit():
    lengths = function_lengths()
    fixed = [k for k in KNOWN_LONG if lengths.get(k, 0) <= MAX_LINES]
    assert not fixed, f"now within {MAX_LINES} lines: remove them from KNOWN_LONG: {fixed}"


def test_the_check_sees_a_long_function(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n" + "    x = 1\n" * MAX_LINES + "\n\ndef g():\n    pass\n")
    assert function_lengths(tmp_path) == {"m.py:f": MAX_LINES + 1, "m.py:g": 2}


def test_the_check_leaves_out_the_docstring_and_nothing_else(tmp_path):
    docstring = '    """Summary.\n\n' + "    A line of prose.\n" * 100 + '    """\n'
    code = "    x = 1\n" * MAX_LINES
    (tmp_path / "m.py").write_text(f"def documented():\n{docstring}    pass\n\n\n"
                                   f"def long_code():\n{docstring}{code}\n\n"
                                   f"def string_later():\n    x = 1\n    'not a docstring'\n")
    assert function_lengths(tmp_path) == {"m.py:documented": 2, "m.py:long_code": MAX_LINES + 1,
                                          "m.py:string_later": 3}
