"""An example facebench plugin.

This module is what the entry point names.  It only returns specs: building
a component imports its code later — torch from ``facebench_example.nets``
for ``example_tinynet`` / ``example_normface``, numpy from
``facebench_example.recognizer`` and ``facebench_example.dataset`` for
``example_pixels`` / ``example_blobs`` — and only when the user selects it.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.hookspecs import hookimpl
from harness.specs import BackboneSpec, CommandSpec, DatasetSpec, LossSpec, RecognizerSpec, check_range


@dataclass(frozen=True)
class TinyNetOptions:
    """Options of ``example_tinynet`` (``-o example_tinynet.width=32``)."""

    width: int = 16
    embedding_size: int = 64


@dataclass(frozen=True)
class NormFaceOptions:
    """Options of ``example_normface`` (``-o example_normface.scale=16``)."""

    scale: float = 16.0


@dataclass(frozen=True)
class PixelOptions:
    """Options of ``example_pixels`` (``-o example_pixels.center=false``)."""

    center: bool = True


@dataclass(frozen=True)
class BlobOptions:
    """Options of ``example_blobs`` (``-o example_blobs.identities=20``).

    Bounds are checked here with :func:`harness.specs.check_range`, so a bad
    value is one line naming the option and the range expected.
    """

    identities: int = 8
    images_per_identity: int = 4
    size: int = 64
    folds: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check_range("example_blobs.folds", self.folds, 1, 10, integer=True)
        check_range("example_blobs.identities", self.identities, 2 * self.folds, 1000, integer=True)
        check_range("example_blobs.images_per_identity", self.images_per_identity, 2, 50, integer=True)
        check_range("example_blobs.size", self.size, 16, 512, integer=True)


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
def register_recognizers():
    return [
        RecognizerSpec(
            name="example_pixels",
            summary="Example plugin: grey pixels of a 16x16 aligned crop as the embedding (a baseline).",
            factory="facebench_example.recognizer:build",
            framework="none",            # numpy only: always available
            options=PixelOptions,
            alignment="arcface_112",     # the template the task aligns crops to (harness.align.TEMPLATES)
            input_size=(16, 16),         # ... and the (height, width) it resizes them to
            embedding_size=256,          # 16 * 16
            distance="cosine",           # how embed()'s rows compare
            license="Apache-2.0",
        )
    ]


@hookimpl
def register_datasets():
    return [
        DatasetSpec(
            name="example_blobs",
            summary="Example plugin: a few generated blob-pattern identities (synthetic, not faces).",
            factory="facebench_example.dataset:build",
            framework="none",
            options=BlobOptions,
            tasks=("train", "verification"),   # the views the built dataset implements
            synthetic=True,
            license="Apache-2.0",
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
