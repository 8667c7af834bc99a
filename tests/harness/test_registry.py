"""Registry: loading, isolation of broken plugins, env filters, errors."""

from __future__ import annotations

import importlib.metadata
import types

import pytest

from harness.hookspecs import hookimpl
from harness.registry import (
    ComponentUnavailableError,
    DuplicateComponentError,
    Registry,
    UnknownComponentError,
)
from harness.specs import BackboneSpec, LossSpec, NoOptions


def backbone(name, framework="none", factory="builtins:dict"):
    return BackboneSpec(name=name, summary=f"{name} net", factory=factory, framework=framework)


def plugin(name, **hooks):
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(mod, hook, hookimpl(fn))
    return mod


def test_sorted_by_name_whatever_the_load_order():
    a = plugin("pa", register_backbones=lambda: [backbone("zeta"), backbone("alpha")])
    b = plugin("pb", register_backbones=lambda: [backbone("mid")])
    for order in ([a, b], [b, a]):
        reg = Registry(load_entry_points=False, plugins=order)
        assert reg.names("backbone") == ["alpha", "mid", "zeta"]


def test_duplicate_names_error_names_both_plugins():
    a = plugin("first_plugin", register_backbones=lambda: [backbone("same")])
    b = plugin("second_plugin", register_backbones=lambda: [backbone("same")])
    reg = Registry(load_entry_points=False, plugins=[a, b])
    with pytest.raises(DuplicateComponentError) as exc:
        reg.specs("backbone")
    assert "first_plugin" in str(exc.value) and "second_plugin" in str(exc.value)
    assert "'same'" in str(exc.value)


def test_unknown_name_suggests_close_matches_and_lists_all():
    reg = Registry(load_entry_points=False, plugins=[
        plugin("p", register_backbones=lambda: [backbone("lresnet50"), backbone("lresnet100"), backbone("resnet20")])
    ])
    with pytest.raises(UnknownComponentError) as exc:
        reg.get("backbone", "lresnet5")
    msg = str(exc.value)
    assert "did you mean 'lresnet50'" in msg
    assert "Available backbones: lresnet100, lresnet50, resnet20." in msg
    with pytest.raises(UnknownComponentError, match=r"unknown backbone 'zzz' Available"):
        reg.get("backbone", "zzz")


def test_a_raising_hook_is_isolated_and_reported():
    def boom():
        raise RuntimeError("kaput")

    good = plugin("good", register_backbones=lambda: [backbone("ok")])
    bad = plugin("bad", register_backbones=boom)
    reg = Registry(load_entry_points=False, plugins=[good, bad])
    assert reg.names("backbone") == ["ok"]
    assert [b.name for b in reg.broken] == ["bad"]
    assert "kaput" in reg.broken[0].error
    assert "FACEBENCH_DISABLE_PLUGINS=bad" in reg.broken[0].hint


def test_wrong_return_types_are_reported_not_raised():
    reg = Registry(load_entry_points=False, plugins=[
        plugin("notalist", register_backbones=lambda: backbone("x")),
        plugin("wrongkind", register_backbones=lambda: [LossSpec(name="l", summary="s", factory="a:b")]),
    ])
    assert reg.names("backbone") == []
    errors = " | ".join(b.error for b in reg.broken)
    assert "expected a list of specs" in errors and "expected BackboneSpec" in errors


def test_invalid_hook_signature_is_reported():
    bad = plugin("badsig", register_backbones=lambda unexpected_arg: [])
    reg = Registry(load_entry_points=False, plugins=[bad])
    assert reg.broken and reg.broken[0].name == "badsig"
    assert "unexpected_arg" in reg.broken[0].error


def test_build_validates_options_and_framework(monkeypatch):
    calls = []

    def factory(opts, **kw):
        calls.append((opts, kw))
        return "built"

    reg = Registry(load_entry_points=False, plugins=[
        plugin("p", register_backbones=lambda: [backbone("fn", factory=factory),
                                                backbone("tfnet", framework="tensorflow")])
    ])
    assert reg.build("backbone", "fn", {}, extra=1) == "built"
    assert calls == [(NoOptions(), {"extra": 1})]
    import harness.specs as specs

    monkeypatch.setattr(specs, "framework_available", lambda fw: fw == "none")
    with pytest.raises(ComponentUnavailableError, match=r"pip install 'facebench\[tf\]'"):
        reg.build("backbone", "tfnet")


# ----------------------------------------------------------- entry points
class FakeDist:
    def __init__(self, name):
        self.name, self.version = name, "1.0"


class FakeEP:
    def __init__(self, name, dist, target):
        self.name, self.dist, self._target = name, FakeDist(dist), target

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@pytest.fixture
def fake_eps(monkeypatch):
    eps = [
        FakeEP("core", "facebench", plugin("core", register_backbones=lambda: [backbone("builtin_net")])),
        FakeEP("third", "facebench-third", plugin("third", register_backbones=lambda: [backbone("third_net")])),
        FakeEP("broken", "facebench-broken", ImportError("No module named 'missing_dep'")),
    ]

    def entry_points(group=None):
        assert group == "facebench"
        return eps

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.delenv("FACEBENCH_PLUGINS", raising=False)
    monkeypatch.delenv("FACEBENCH_DISABLE_PLUGINS", raising=False)
    return eps


def test_entry_points_load_and_broken_one_is_isolated(fake_eps):
    reg = Registry()
    assert reg.names("backbone") == ["builtin_net", "third_net"]
    assert [(b.name, b.dist) for b in reg.broken] == [("broken", "facebench-broken")]
    assert "missing_dep" in reg.broken[0].error
    assert "pip uninstall facebench-broken" in reg.broken[0].hint
    info = {p.name: p for p in reg.plugins}
    assert info["core"].builtin and not info["third"].builtin


def test_allow_list_empty_means_builtins_only(fake_eps, monkeypatch):
    monkeypatch.setenv("FACEBENCH_PLUGINS", "")
    reg = Registry()
    assert reg.names("backbone") == ["builtin_net"]
    assert reg.broken == []


def test_allow_list_names_third_party_plugins(fake_eps, monkeypatch):
    monkeypatch.setenv("FACEBENCH_PLUGINS", "third")
    assert Registry().names("backbone") == ["builtin_net", "third_net"]


def test_disable_list_skips_any_plugin(fake_eps, monkeypatch):
    monkeypatch.setenv("FACEBENCH_DISABLE_PLUGINS", "core, broken")
    reg = Registry()
    assert reg.names("backbone") == ["third_net"]
    assert reg.broken == []


def test_template_dirs_from_plugins(tmp_path):
    good = plugin("tpl", register_template_dirs=lambda: [str(tmp_path)])
    bad = plugin("badtpl", register_template_dirs=lambda: [str(tmp_path / "missing")])
    reg = Registry(load_entry_points=False, plugins=[good, bad])
    assert reg.template_dirs() == [tmp_path]
    assert [b.name for b in reg.broken] == ["badtpl"] and "not a folder" in reg.broken[0].error


def test_broken_plugin_traceback_comes_from_the_exception():
    def boom():
        raise RuntimeError("kaput")

    reg = Registry(load_entry_points=False, plugins=[plugin("bad", register_backbones=boom)])
    reg.names("backbone")
    tb = reg.broken[0].traceback
    assert "NoneType: None" not in tb
    assert tb.startswith("Traceback (most recent call last)")
    assert "in boom" in tb and tb.rstrip().endswith("RuntimeError: kaput")


def test_broken_plugin_without_exception_says_so_not_nonetype():
    reg = Registry(load_entry_points=False, plugins=[plugin("notalist", register_backbones=lambda: backbone("x"))])
    reg.names("backbone")
    tb = reg.broken[0].traceback
    assert "NoneType: None" not in tb
    assert "No exception was raised" in tb and "expected a list of specs" in tb and "'notalist'" in tb


def test_plugins_traceback_command_prints_the_real_traceback(capsys):
    from harness.cli import main
    from harness.registry import reset_registry

    def broken_hook():
        raise ValueError("plugin exploded")

    reg = Registry(load_entry_points=False, plugins=[
        plugin("exploding", register_backbones=broken_hook),
        plugin("wrongtype", register_backbones=lambda: "not a list"),
    ])
    reg.names("backbone")
    reset_registry(reg)
    try:
        code = main(["plugins", "--traceback"])
    finally:
        reset_registry(None)
    out = capsys.readouterr().out
    assert code == 0
    assert "exploding" in out and "BROKEN" in out
    assert "NoneType: None" not in out
    assert "in broken_hook" in out and "ValueError: plugin exploded" in out
    assert "wrongtype" in out and "No exception was raised" in out
