"""The plugin contract: every hook facebench calls, each documented here.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose
names match the hooks below.  facebench finds plugins through the entry-point
group ``facebench``; the built-in plugins are found the same way.

Contribution hooks take no arguments and return a list of frozen specs
(:mod:`harness.specs`).  They must be cheap: return specs, do not import a
framework or load weights.  facebench calls them once, lazily, the first time
a command needs the registry.

Example::

    from harness.hookspecs import hookimpl
    from harness.specs import BackboneSpec

    @hookimpl
    def register_backbones():
        return [BackboneSpec(name="tinynet", summary="A tiny CNN.",
                             factory="facebench_tiny.net:build", framework="torch",
                             embedding_size=64)]
"""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT", "hookimpl", "hookspec", "HOOK_FOR_KIND"]

PROJECT = "facebench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Which contribution hook returns specs of each kind.
HOOK_FOR_KIND = {
    "backbone": "register_backbones",
    "loss": "register_losses",
    "recognizer": "register_recognizers",
    "detector": "register_detectors",
    "landmarker": "register_landmarkers",
    "liveness": "register_liveness",
    "inpainter": "register_inpainters",
    "dataset": "register_datasets",
    "engine": "register_engines",
}


@hookspec
def register_backbones():
    """Contribute trainable recognition backbones.

    A backbone's factory is called with its options and returns a network
    mapping an aligned face batch ``(N, 3, H, W)`` to embeddings ``(N, D)``.

    :returns: a list of :class:`harness.specs.BackboneSpec`.
    """


@hookspec
def register_losses():
    """Contribute training losses (softmax, margin losses, metric losses).

    A loss's factory is called with its options and ``embedding_size`` and
    ``num_classes`` keywords, and returns a module mapping
    ``(embeddings, labels)`` to a scalar loss.

    :returns: a list of :class:`harness.specs.LossSpec`.
    """


@hookspec
def register_recognizers():
    """Contribute pretrained recognizers that need no training.

    A recognizer's factory is called with its options and returns an object
    with ``embed(images) -> ndarray (N, D)`` for aligned RGB uint8 faces.

    :returns: a list of :class:`harness.specs.RecognizerSpec`.
    """


@hookspec
def register_detectors():
    """Contribute face detectors.

    A detector's factory is called with its options and returns an object
    with ``detect(image) -> Detections`` for one RGB uint8 image, giving
    boxes ``(N, 4)`` as x1, y1, x2, y2, scores ``(N,)`` and, where the model
    predicts them, five landmarks ``(N, 5, 2)`` (eyes, nose, mouth corners).

    :returns: a list of :class:`harness.specs.DetectorSpec`.
    """


@hookspec
def register_landmarkers():
    """Contribute facial landmarkers (68-point, 5-point, ...).

    A landmarker's factory is called with its options and returns an object
    with ``predict(image, boxes) -> ndarray (N, P, 2)`` for one RGB uint8
    image and face boxes ``(N, 4)`` as x1, y1, x2, y2: P points per box, in
    the point scheme its spec names (``scheme``, ``num_points``).

    :returns: a list of :class:`harness.specs.LandmarkerSpec`.
    """


@hookspec
def register_liveness():
    """Contribute presentation-attack (liveness) detectors.

    The built object scores face images (higher = bona fide) with
    ``score(images) -> ndarray (N,)`` and, when trainable, has ``fit``.

    :returns: a list of :class:`harness.specs.LivenessSpec`.
    """


@hookspec
def register_inpainters():
    """Contribute face inpainters (mesh / watermark removal).

    The built object maps meshed RGB faces to restored ones with
    ``restore(images, masks=None)`` and, when trainable, has ``fit``.  One that
    estimates the mesh mask may also offer ``estimate_masks(images)`` and
    ``restore_with_masks(images, masks=None) -> (restored, estimated masks or
    None)``, which the protocol prefers so the mask is estimated once.

    :returns: a list of :class:`harness.specs.InpainterSpec`.
    """


@hookspec
def register_datasets():
    """Contribute dataset readers, one per on-disk layout.

    A dataset's factory is called with its options and a ``path`` keyword
    (``None`` for generated data) and returns the opened dataset.

    :returns: a list of :class:`harness.specs.DatasetSpec`.
    """


@hookspec
def register_engines():
    """Contribute framework engines (training loop, DDP, AMP, checkpoints).

    An engine keeps a framework out of the core: the tasks ask the engine of
    a component's framework to train and run it.

    :returns: a list of :class:`harness.specs.EngineSpec`.
    """


@hookspec
def register_commands():
    """Contribute extra ``harness`` CLI commands.

    Commands are added beside the built-in ones; a name already taken is
    reported and the plugin's command is skipped.

    :returns: a list of :class:`harness.specs.CommandSpec`.
    """


@hookspec
def register_template_dirs():
    """Contribute folders of report templates (Jinja2) that override the built-ins.

    Searched after the user's folders (``$FACEBENCH_TEMPLATES``,
    ``reports/_templates``) and before the built-in templates; a template may
    ``{% extends "builtin/run.html" %}``.  The variables each template
    receives are the fields of the dataclasses in :mod:`harness.report.context`.

    :returns: a list of folder paths (``str`` or ``pathlib.Path``).
    """
