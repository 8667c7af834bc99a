"""Shape rules the project holds itself to (STYLE.md, issue 14).

No function or method in ``harness/`` or ``plugins/`` is longer than
``MAX_LINES`` lines: a longer one is a sequence of steps that wants names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 120


def _long_functions(root: Path, base: Path = REPO) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_LINES:
                    found.append(f"{path.relative_to(base)}:{node.lineno} {node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("folder", ["harness", "plugins"])
def test_no_function_longer_than_the_limit(folder):
    assert _long_functions(REPO / folder) == []


def test_the_check_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def long_one():\n{body}\n", encoding="utf-8")
    assert _long_functions(tmp_path, tmp_path) == [f"m.py:1 long_one ({MAX_LINES + 1} lines)"]


def test_built_in_options_live_in_their_kinds_options_module():
    """One home per kind: every built-in component's options class is defined
    in an ``options`` (or ``_<x>_options``) module of its plugin package."""
    from harness.registry import Registry

    reg = Registry()
    elsewhere = [
        f"{kind}:{spec.name} -> {spec.options.__module__}"
        for kind in reg.kinds() for spec in reg.specs(kind)
        if getattr(spec, "options", None) is not None
        and spec.options.__module__.startswith("facebench_plugins.")
        and not spec.options.__module__.rsplit(".", 1)[-1].endswith("options")
    ]
    assert elsewhere == []
