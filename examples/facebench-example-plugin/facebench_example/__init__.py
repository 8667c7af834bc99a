"""An example facebench plugin.

This module is what the entry point names.  It only returns specs: building
the network imports torch later, from ``facebench_example.nets``, and only
when the user selects ``example_tinynet`` or ``example_normface``.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.hookspecs import hookimpl
from harness.specs import BackboneSpec, CommandSpec, LossSpec


@dataclass(frozen=True)
class TinyNetOptions:
    """Options of ``example_tinynet`` (``-o example_tinynet.width=32``)."""

    width: int = 16
    embedding_size: int = 64


@dataclass(frozen=True)
class NormFaceOptions:
    """Options of ``example_normface`` (``-o example_normface.scale=16``)."""

    scale: float = 16.0


@hookimpl
def register_backbones():
    return [
        BackboneSpec(
            name="example_tinynet",
            summary="Example plugin: a 3-layer CNN, 64-d embedding (for tutorials and tests).",
            factory="facebench_example.nets:build_tinynet",
            framework="torch",
            options=TinyNetOptions,
            input_size=(32, 32),
            embedding_size=64,
            license="Apache-2.0",
            meta={"example": True},
        )
    ]


@hookimpl
def register_losses():
    return [
        LossSpec(
            name="example_normface",
            summary="Example plugin: NormFace — softmax over scaled cosine logits.",
            factory="facebench_example.nets:build_normface",
            framework="torch",
            options=NormFaceOptions,
            paper="Wang et al., NormFace: L2 Hypersphere Embedding for Face Verification, ACM MM 2017",
        )
    ]


@hookimpl
def register_commands():
    return [
        CommandSpec(
            name="example-hello",
            command="facebench_example.cli:hello",
            summary="Example plugin command.",
        )
    ]
