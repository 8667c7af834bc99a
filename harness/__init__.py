"""facebench: one benchmarking harness for the whole face pipeline.

The public Python API::

    from harness import RunConfig, get_registry
    runs = RunConfig(backbones=("resnet20",), losses=("arcface",)).expand(get_registry())

Importing :mod:`harness` never imports torch, TensorFlow, OpenCV, dlib or
onnxruntime; plugins import their framework only when a component is built.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from harness.config import DataRef, RunConfig, RunSpec, TrainSettings
from harness.errors import ConfigError, DataError, HarnessError
from harness.registry import Registry, get_registry

try:
    __version__ = version("facebench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ConfigError",
    "DataError",
    "DataRef",
    "HarnessError",
    "Registry",
    "RunConfig",
    "RunSpec",
    "TrainSettings",
    "__version__",
    "get_registry",
]
