"""Packaging: every package folder is listed, built-ins are entry points."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in (("harness", "harness"), ("plugins", "facebench_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *rel)))
    assert found - listed == set(), f"add these to [tool.setuptools] packages: {sorted(found - listed)}"
    assert listed - found == set(), f"listed but missing: {sorted(listed - found)}"


def test_builtin_plugins_are_entry_points_of_the_facebench_dist():
    eps = [ep for ep in importlib.metadata.entry_points(group="facebench") if ep.dist.name == "facebench"]
    assert {ep.value for ep in eps} == {
        f"facebench_plugins.{k}" for k in
        ("backbones", "losses", "recognizers", "detectors", "landmarkers", "liveness", "inpainters", "datasets",
         "engines")
    }


def test_no_bare_plugins_module_is_installed():
    import importlib.util

    spec = importlib.util.find_spec("plugins")
    assert spec is None or "site-packages" not in (spec.origin or ""), spec
