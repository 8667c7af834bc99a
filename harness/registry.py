"""Plugin loading and the component registry.

Plugins are found through the entry-point group ``facebench`` — built-ins
(shipped in the ``facebench`` distribution) and third-party packages alike.
They are loaded lazily, once, the first time :func:`get_registry` is called.

Environment:

``FACEBENCH_PLUGINS``
    Unset: load every installed plugin.  Set: an allow-list of third-party
    entry-point names (comma separated); empty = built-ins only.
``FACEBENCH_DISABLE_PLUGINS``
    Comma-separated entry-point names never loaded (built-ins included).

A plugin that fails to import or whose hook raises is recorded in
:attr:`Registry.broken` with the reason and how to disable it; every other
plugin keeps working.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pluggy

from harness import hookspecs
from harness._values import did_you_mean, short_repr
from harness.errors import HarnessError
from harness.specs import KINDS, CommandSpec, ComponentSpec, OptionError, resolve_factory

__all__ = [
    "BrokenPlugin",
    "ComponentUnavailableError",
    "DuplicateComponentError",
    "OptionError",
    "PluginInfo",
    "Registry",
    "RegistryError",
    "UnknownComponentError",
    "get_registry",
    "reset_registry",
]

ENTRY_POINT_GROUP = "facebench"
BUILTIN_DIST = "facebench"


class RegistryError(HarnessError):
    """Base of registry errors; the message is meant for the user as is."""


class UnknownComponentError(RegistryError, KeyError):
    def __init__(self, kind: str, name: str, available: list[str]):
        self.kind, self.name, self.available = kind, name, available
        msg = f"unknown {kind} {short_repr(name)}" + did_you_mean(name, available, n=3, cutoff=0.5)
        msg += f" Available {kind}s: {', '.join(available) or '(none)'}."
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class DuplicateComponentError(RegistryError):
    pass


class ComponentUnavailableError(RegistryError):
    pass


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin that could not be loaded or whose hook raised."""

    name: str
    dist: str
    error: str
    traceback: str

    @property
    def hint(self) -> str:
        return (
            f"disable it with FACEBENCH_DISABLE_PLUGINS={self.name}"
            + (f" or `pip uninstall {self.dist}`" if self.dist and self.dist != BUILTIN_DIST else "")
        )


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin, as ``harness plugins`` reports it."""

    name: str
    dist: str
    version: str
    module: str
    builtin: bool
    hooks: tuple[str, ...]


def _trace(exc: BaseException) -> str:
    """The full traceback of ``exc``, wherever it is formatted."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _env_list(var: str) -> list[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return [p.strip() for p in raw.split(",") if p.strip()]


class Registry:
    """Every component contributed by the loaded plugins, by kind and name.

    :param pm: a plugin manager; a fresh one is made when omitted.
    :param load_entry_points: load plugins from the ``facebench`` entry points.
    :param plugins: extra plugin objects (modules or instances) to register,
        e.g. in tests.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager | None = None,
        *,
        load_entry_points: bool = True,
        plugins: Iterable[Any] = (),
    ) -> None:
        self.pm = pm or pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.broken: list[BrokenPlugin] = []
        self.plugins: list[PluginInfo] = []
        self._tables: dict[str, dict[str, ComponentSpec]] = {}
        self._owners: dict[tuple[str, str], str] = {}
        self._commands: list[tuple[CommandSpec, str]] | None = None
        self._lock = threading.RLock()
        if load_entry_points:
            self._load_entry_points()
        for i, plugin in enumerate(plugins):
            name = getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{i}"
            self._register(plugin, name=name, dist="", version="", builtin=False)

    # ----------------------------------------------------------------- loading
    def _load_entry_points(self) -> None:
        allow = _env_list("FACEBENCH_PLUGINS")
        disable = set(_env_list("FACEBENCH_DISABLE_PLUGINS") or [])
        eps = sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda ep: (ep.dist.name if ep.dist else "", ep.name),
        )
        for ep in eps:
            dist = ep.dist.name if ep.dist else ""
            version = ep.dist.version if ep.dist else ""
            builtin = dist == BUILTIN_DIST
            if ep.name in disable:
                continue
            if not builtin and allow is not None and ep.name not in allow:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not break the rest
                self.broken.append(BrokenPlugin(ep.name, dist, f"{type(exc).__name__}: {exc}", _trace(exc)))
                continue
            self._register(module, name=ep.name, dist=dist, version=version, builtin=builtin)

    def _register(self, plugin: Any, *, name: str, dist: str, version: str, builtin: bool) -> None:
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy validation errors name hook and signature
            self.broken.append(BrokenPlugin(name, dist, f"{type(exc).__name__}: {exc}", _trace(exc)))
            return
        hooks = tuple(
            sorted(h.name for h in self.pm.get_hookcallers(plugin) or [] if h.name.startswith("register_"))
        )
        module = getattr(plugin, "__name__", type(plugin).__module__)
        self.plugins.append(PluginInfo(name, dist, version, module, builtin, hooks))

    def _call(self, hook_name: str) -> list[tuple[str, Any]]:
        """Call each implementation of one hook separately, so a raising
        plugin is isolated and every result is attributed to its plugin."""
        caller = getattr(self.pm.hook, hook_name)
        out: list[tuple[str, Any]] = []
        for impl in sorted(caller.get_hookimpls(), key=lambda i: i.plugin_name):
            try:
                result = impl.function()
            except Exception as exc:
                self._mark_broken(impl.plugin_name, f"{hook_name}() raised {type(exc).__name__}: {exc}", exc)
                continue
            if result is None:
                continue
            if not isinstance(result, (list, tuple)):
                self._mark_broken(
                    impl.plugin_name,
                    f"{hook_name}() returned {type(result).__name__}, expected a list of specs",
                )
                continue
            out.extend((impl.plugin_name, item) for item in result)
        return out

    def _mark_broken(self, plugin_name: str, error: str, exc: BaseException | None = None) -> None:
        """Record a broken plugin.  The traceback comes from ``exc`` itself
        (``format_exc()`` is empty outside an ``except`` block); a hook that
        returned a wrong value raised nothing, so its "traceback" says where
        the plugin lives instead."""
        dist = next((p.dist for p in self.plugins if p.name == plugin_name), "")
        if exc is not None:
            trace = _trace(exc)
        else:
            plugin = self.pm.get_plugin(plugin_name)
            where = getattr(plugin, "__file__", None) or getattr(plugin, "__name__", None) or type(plugin).__module__
            trace = f"No exception was raised: {error}\nPlugin {plugin_name!r} is defined in {where}\n"
        self.broken.append(BrokenPlugin(plugin_name, dist, error, trace))

    def _table(self, kind: str) -> dict[str, ComponentSpec]:
        if kind not in KINDS:
            raise UnknownComponentError("kind", kind, list(KINDS))
        with self._lock:
            if kind in self._tables:
                return self._tables[kind]
            spec_cls = KINDS[kind]
            table: dict[str, ComponentSpec] = {}
            for plugin_name, spec in self._call(hookspecs.HOOK_FOR_KIND[kind]):
                if not isinstance(spec, spec_cls):
                    self._mark_broken(
                        plugin_name,
                        f"{hookspecs.HOOK_FOR_KIND[kind]}() returned {type(spec).__name__}, "
                        f"expected {spec_cls.__name__}",
                    )
                    continue
                if spec.name in table:
                    first = self._owners[(kind, spec.name)]
                    raise DuplicateComponentError(
                        f"{kind} {spec.name!r} is registered twice: by plugin {first!r} and by "
                        f"plugin {plugin_name!r}. Rename one, or disable a plugin with "
                        f"FACEBENCH_DISABLE_PLUGINS={plugin_name}."
                    )
                table[spec.name] = spec
                self._owners[(kind, spec.name)] = plugin_name
            self._tables[kind] = dict(sorted(table.items()))
            return self._tables[kind]

    # --------------------------------------------------------------- queries
    def kinds(self) -> list[str]:
        return list(KINDS)

    def specs(self, kind: str) -> list[ComponentSpec]:
        """All specs of ``kind``, sorted by name (available or not)."""
        return list(self._table(kind).values())

    def names(self, kind: str) -> list[str]:
        return list(self._table(kind))

    def owner(self, kind: str, name: str) -> str:
        """The plugin that contributed ``kind`` ``name``."""
        self.get(kind, name)
        return self._owners[(kind, name)]

    def get(self, kind: str, name: str) -> ComponentSpec:
        """The spec of ``kind`` ``name``.

        :raises UnknownComponentError: with close matches and every available name.
        """
        table = self._table(kind)
        try:
            return table[name]
        except KeyError:
            raise UnknownComponentError(kind, name, list(table)) from None

    def build(self, kind: str, name: str, options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Build the component: check its framework, validate its options,
        import its factory and call it as ``factory(options, **kwargs)``."""
        spec = self.get(kind, name)
        opts = spec.make_options(options)
        self.require_available(spec)
        factory = resolve_factory(spec)
        return factory(opts, **kwargs)

    @staticmethod
    def require_available(spec: ComponentSpec) -> None:
        if not spec.available:
            raise ComponentUnavailableError(
                f"{spec.kind} {spec.name!r} needs {spec.framework}, which is not installed. "
                f"Install it with: {spec.install_hint}"
            )

    def commands(self) -> list[tuple[CommandSpec, str]]:
        """Plugin CLI commands as (spec, plugin name)."""
        with self._lock:
            if self._commands is None:
                cmds = []
                for plugin_name, spec in self._call("register_commands"):
                    if isinstance(spec, CommandSpec):
                        cmds.append((spec, plugin_name))
                    else:
                        self._mark_broken(
                            plugin_name,
                            f"register_commands() returned {type(spec).__name__}, expected CommandSpec",
                        )
                self._commands = sorted(cmds, key=lambda c: c[0].name)
            return self._commands

    def template_dirs(self) -> list[Path]:
        """Report template folders contributed by plugins (existing folders only)."""
        out: list[Path] = []
        for plugin_name, item in self._call("register_template_dirs"):
            p = Path(item)
            if p.is_dir():
                out.append(p)
            else:
                self._mark_broken(plugin_name, f"register_template_dirs() gave {item!r}, not a folder")
        return out

    def describe(self, kind: str) -> list[dict[str, Any]]:
        out = []
        for spec in self.specs(kind):
            d = spec.describe()
            d["plugin"] = self._owners[(kind, spec.name)]
            out.append(d)
        return out

    def validate_options(self, kind: str, name: str, options: dict[str, Any]) -> Any:
        """Check ``-o`` options against the spec without building anything."""
        return self.get(kind, name).make_options(options)


_REGISTRY: Registry | None = None
_REG_LOCK = threading.Lock()


def get_registry() -> Registry:
    """The process-wide registry, loading plugins on first use only."""
    global _REGISTRY
    with _REG_LOCK:
        if _REGISTRY is None:
            _REGISTRY = Registry()
        return _REGISTRY


def reset_registry(registry: Registry | None = None) -> None:
    """Drop (or replace) the process-wide registry; tests use a fresh one each."""
    global _REGISTRY
    with _REG_LOCK:
        _REGISTRY = registry

