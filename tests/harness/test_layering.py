"""The core stays framework-free (DESIGN.md layering rule).

A fresh interpreter imports every ``harness`` module and runs ``--help`` on
every command; afterwards none of torch, tensorflow, cv2, dlib, onnxruntime
may be in ``sys.modules``.  The import floors are checked statically too.
"""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import harness

FRAMEWORKS = ["torch", "tensorflow", "cv2", "dlib", "onnxruntime", "keras"]
HARNESS_DIR = Path(harness.__file__).parent

SCRIPT = r"""
import importlib, json, pkgutil, sys
import harness
mods = sorted(m.name for m in pkgutil.walk_packages(harness.__path__, "harness.")
              if m.name != "harness.__main__")  # importing __main__ would run the CLI
for m in mods:
    importlib.import_module(m)
from click.testing import CliRunner
from harness.cli import cli, BUILTIN_COMMANDS
runner = CliRunner()
results = {"--help": runner.invoke(cli, ["--help"]).exit_code}
for name in BUILTIN_COMMANDS:
    r = runner.invoke(cli, [name, "--help"])
    results[name] = r.exit_code
    if r.exit_code:
        results[name + ":output"] = r.output + repr(r.exception)
    group = cli.get_command(None, name)
    for sub in getattr(group, "commands", {}) or {}:
        r = runner.invoke(cli, [name, sub, "--help"])
        results[f"{name} {sub}"] = r.exit_code
loaded = [f for f in FRAMEWORKS if f in sys.modules]
print(json.dumps({"modules": mods, "help": results, "loaded": loaded}))
"""


def test_core_imports_and_help_pull_in_no_framework():
    code = f"FRAMEWORKS = {FRAMEWORKS!r}\n" + SCRIPT
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert "harness.cli.run" in data["modules"] and "harness.registry" in data["modules"]
    failed = {k: v for k, v in data["help"].items() if v != 0 and not k.endswith(":output")}
    assert not failed, {k: data["help"].get(k + ":output", v) for k, v in failed.items()}
    assert data["loaded"] == [], f"framework imported by the core: {data['loaded']}"


# floor of each top-level harness module/package (DESIGN.md "Imports only go down")
FLOORS = {
    "specs": 1, "hookspecs": 1, "metrics": 1, "results": 1, "errors": 1, "paths": 1, "types": 1,
    "weights": 1, "align": 1, "formats": 1, "synth": 1, "atomic": 1, "_values": 1, "run_loggers": 1,
    "registry": 2, "report": 2,
    "tasks": 3, "config": 3,
    "runner": 4,
    "cli": 5, "__init__": 5, "__main__": 5,
}


def _top(modname: str) -> str | None:
    parts = modname.split(".")
    return parts[1] if parts[0] == "harness" and len(parts) > 1 else None


def test_imports_only_go_down_the_floors():
    problems = []
    for path in HARNESS_DIR.rglob("*.py"):
        rel = path.relative_to(HARNESS_DIR)
        me = rel.parts[0].removesuffix(".py")
        assert me in FLOORS, f"harness/{rel}: add its floor to FLOORS"
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                if n.split(".")[0] == "facebench_plugins":
                    problems.append(f"harness/{rel} imports plugin module {n} by name")
                top = _top(n)
                if top and top in FLOORS and top != me and FLOORS[top] > FLOORS[me]:
                    problems.append(f"harness/{rel} (floor {FLOORS[me]}) imports harness.{top} (floor {FLOORS[top]})")
    assert not problems, "\n".join(problems)


def test_plugin_registration_modules_import_no_framework():
    """`harness list` must work without torch: plugin packages' __init__ stay light."""
    code = (
        "import sys, json\nfrom harness.registry import Registry\nreg = Registry()\n"
        "for k in reg.kinds(): reg.describe(k)\n"
        f"print(json.dumps([f for f in {FRAMEWORKS!r} if f in sys.modules]))"
    )
    env = {**__import__("os").environ, "FACEBENCH_PLUGINS": ""}  # built-ins only
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
