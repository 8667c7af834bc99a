"""Helpers of the liveness tests: a registry that has the ``spoof`` dataset
(added here until the built-in registration lands), quiet single-threaded torch."""

from __future__ import annotations

from typing import Any, Iterable

from harness.hookspecs import hookimpl
from harness.registry import Registry
from harness.specs import DatasetSpec


class SpoofDatasetPlugin:
    """Registers ``spoof`` exactly as the built-in datasets package should."""

    __name__ = "test_spoof_dataset"

    @staticmethod
    @hookimpl
    def register_datasets():
        from facebench_plugins.datasets.spoof import SpoofOptions

        return [DatasetSpec(name="spoof", summary="Presentation-attack folder (live/, attack/<species>/, splits).",
                            factory="facebench_plugins.datasets.spoof:build", framework="opencv",
                            options=SpoofOptions, tasks=("liveness",))]


def registry_with_spoof(extra: Iterable[Any] = ()) -> Registry:
    plugins = list(extra)
    if "spoof" not in Registry().names("dataset"):
        plugins.append(SpoofDatasetPlugin)
    return Registry(plugins=plugins)
