"""Every hook is documented the same way (purpose, :returns:)."""

from __future__ import annotations

import inspect

from harness import hookspecs
from harness.specs import KINDS


def hooks():
    return [f for name, f in vars(hookspecs).items()
            if callable(f) and hasattr(f, "facebench_spec")]


def test_one_contribution_hook_per_kind_plus_commands():
    names = {f.__name__ for f in hooks()}
    assert names == set(hookspecs.HOOK_FOR_KIND.values()) | {"register_commands", "register_template_dirs"}
    assert set(hookspecs.HOOK_FOR_KIND) == set(KINDS)


def test_every_hook_has_a_docstring_with_returns():
    for f in hooks():
        doc = inspect.getdoc(f) or ""
        assert len(doc.splitlines()[0]) > 10, f"{f.__name__} needs a one-line purpose"
        assert ":returns:" in doc, f"{f.__name__} must document what it returns"
        assert inspect.signature(f).parameters == {}, f"{f.__name__}: contribution hooks take no arguments"


def test_plugin_docs_mention_every_hook():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    for f in hooks():
        assert f.__name__ in doc, f"docs/plugins.md does not document {f.__name__}"
