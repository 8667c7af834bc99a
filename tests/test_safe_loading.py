"""No loader in harness/ or plugins/ can run code from a file it reads.

Static: every ``np.load`` passes ``allow_pickle=False``, every ``torch.load``
``weights_only=True``, and nothing calls ``pickle.load(s)`` / ``Unpickler``
(the insightface ``.bin`` reader's restricted unpickler is the one exception,
and it is tested with a malicious payload in tests/harness/formats/test_fmt_bin.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for d in ("harness", "plugins") for p in (ROOT / d).rglob("*.py"))

#: module -> what must be passed to its ``load`` (keyword, required constant)
REQUIRED = {"np": ("allow_pickle", False), "numpy": ("allow_pickle", False), "torch": ("weights_only", True)}
#: calls that unpickle with no restriction at all
FORBIDDEN = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("joblib", "load"),
             ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
             ("marshal", "load"), ("marshal", "loads"), ("shelve", "open")}
#: (file, class) allowed to subclass pickle.Unpickler: it overrides find_class to admit no code
RESTRICTED_UNPICKLERS = {("harness/formats/insightface_bin.py", "SafeBinUnpickler")}


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def unsafe_calls(source: str, rel: str) -> list[str]:
    """Every unsafe load in ``source`` as 'file:line: what'."""
    tree = ast.parse(source)
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "numpy", "torch", "joblib", "dill"):
            names = {a.name for a in node.names}
            if names & {"load", "loads", "Unpickler"}:
                out.append(f"{rel}:{node.lineno}: 'from {node.module} import {sorted(names)}' hides which "
                           "load is called; call it through the module")
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                if _dotted(base)[-2:] == ("pickle", "Unpickler") and (rel, node.name) not in RESTRICTED_UNPICKLERS:
                    out.append(f"{rel}:{node.lineno}: class {node.name} subclasses pickle.Unpickler")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if len(name) < 2:
            continue
        if name[-2:] in FORBIDDEN:
            out.append(f"{rel}:{node.lineno}: {'.'.join(name)}() runs code from the file it reads")
        elif name[-1] == "load" and name[0] in REQUIRED and len(name) == 2:
            key, value = REQUIRED[name[0]]
            given = {k.arg: k.value for k in node.keywords}
            ok = isinstance(given.get(key), ast.Constant) and given[key].value is value
            if not ok:
                out.append(f"{rel}:{node.lineno}: {'.'.join(name)}() without {key}={value}")
    return out


def test_sources_found():
    rels = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    assert "harness/formats/insightface_bin.py" in rels and "plugins/liveness/lbp_svm.py" in rels


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_loader_is_safe(path):
    rel = path.relative_to(ROOT).as_posix()
    assert unsafe_calls(path.read_text(encoding="utf-8"), rel) == []


@pytest.mark.parametrize("code, found", [
    ("import numpy as np\nnp.load(p)", "np.load() without allow_pickle=False"),
    ("import numpy as np\nnp.load(p, allow_pickle=True)", "without allow_pickle=False"),
    ("import numpy\nnumpy.load(p, allow_pickle=flag)", "without allow_pickle=False"),
    ("import torch\ntorch.load(p, map_location='cpu')", "torch.load() without weights_only=True"),
    ("import torch\ntorch.load(p, weights_only=False)", "without weights_only=True"),
    ("import pickle\npickle.loads(b)", "pickle.loads() runs code"),
    ("import pickle\nwith open(p, 'rb') as f:\n    pickle.load(f)", "pickle.load() runs code"),
    ("from pickle import loads\nloads(b)", "call it through the module"),
    ("import pickle\nclass U(pickle.Unpickler):\n    pass", "class U subclasses pickle.Unpickler"),
    ("import joblib\njoblib.load(p)", "joblib.load() runs code"),
])
def test_the_check_catches_unsafe_calls(code, found):
    problems = unsafe_calls(code, "x.py")
    assert len(problems) == 1 and found in problems[0], problems


def test_the_check_passes_safe_calls():
    code = ("import numpy as np, torch\nnp.load(p, allow_pickle=False)\n"
            "torch.load(p, map_location='cpu', weights_only=True)\nnp.savez(p, a=1)\n")
    assert unsafe_calls(code, "x.py") == []
