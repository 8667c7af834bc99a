"""Tasks ask a component's contract, never its name: a third-party recognizer that aligns
itself, and defaults declared as data (``meta["default_for"]``) by the plugins."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.hookspecs import hookimpl
from harness.registry import Registry, reset_registry
from harness.specs import DetectorSpec, RecognizerSpec
from harness.types import Detections, SelfAligningRecognizer, own_alignment
from tests.conftest import need_data

pytest.importorskip("cv2")


@dataclass(frozen=True)
class _NoOptions:
    pass


class CentreBoxDetector:
    """One box: the centre half of the image, no landmarks."""

    def detect(self, image):
        h, w = image.shape[:2]
        return Detections([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], [1.0], None)


class OwnAligner:
    """A recognizer with an alignment of its own: crops each box to 32x32 and embeds its mean colour
    rows; counts the faces it aligned itself."""

    alignment = "arcface_112"  # never used while it aligns itself

    def __init__(self):
        self.aligned = 0

    def own_alignment(self):
        return "ownaligner_box32 (test)"

    def align_faces(self, image, boxes):
        import cv2

        out = []
        for x1, y1, x2, y2 in np.asarray(boxes, int):
            out.append(cv2.resize(np.ascontiguousarray(image[y1:y2, x1:x2]), (32, 32)))
        self.aligned += len(out)
        return out

    def embed(self, images):
        return np.stack([np.asarray(im, np.float32).mean(axis=1).reshape(-1)[:64] for im in images])


class FixtureComponents:
    __name__ = "fixture_components"

    @staticmethod
    @hookimpl
    def register_recognizers():
        return [RecognizerSpec(name="ownaligner", summary="self-aligning test recognizer",
                               factory=lambda opts: OwnAligner(), options=_NoOptions, input_size=(32, 32),
                               embedding_size=64, distance="euclidean",
                               meta={"detector": "centrebox"})]

    @staticmethod
    @hookimpl
    def register_detectors():
        return [DetectorSpec(name="centrebox", summary="centre box (test)", factory=lambda opts: CentreBoxDetector(),
                             options=_NoOptions, landmarks=False)]


def test_self_aligning_is_a_capability_of_the_built_object():
    assert isinstance(OwnAligner(), SelfAligningRecognizer)
    assert own_alignment(OwnAligner()) == "ownaligner_box32 (test)"
    assert own_alignment(CentreBoxDetector()) is None


def test_a_new_self_aligning_recognizer_needs_no_task_change(tmp_path, monkeypatch):
    """Its spec names its detector; the task hands it raw images and boxes, states its alignment."""
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    lfw = need_data("lfw_home")
    reg = Registry(plugins=[FixtureComponents])
    reset_registry(reg)
    try:
        code = main(["run", "--recognizer", "ownaligner", "--eval", f"lfw={lfw}", "--eval-folds", "0",
                     "--reports", str(tmp_path)])
    finally:
        reset_registry(None)
    assert code == 0
    (path,) = tmp_path.glob("runs/*/results.json")
    res = json.loads(path.read_text())
    assert res["protocol"]["alignment"] == "ownaligner_box32 (test)"
    assert res["protocol"]["detector"] == "centrebox"  # declared by the recognizer's spec, not --detector
    assert res["protocol"]["pairs"] == 600


def _claims(*names):
    class Claims:
        __name__ = "claims"

        @staticmethod
        @hookimpl
        def register_detectors():
            return [DetectorSpec(name=n, summary="claims a default", factory=lambda opts: CentreBoxDetector(),
                                 options=_NoOptions, meta={"default_for": ("recognition",)}) for n in names]
    return Claims


def test_defaults_are_declared_by_plugins_and_ambiguity_asks_the_user():
    from harness.tasks import choose_detector, default_component

    reg = Registry()
    assert default_component(reg, "detector", "recognition") == "mtcnn"
    assert default_component(reg, "detector", "inpainting") == "dlib_hog"
    assert default_component(reg, "detector", "liveness") == "retinaface"
    assert default_component(reg, "recognizer", "inpainting") == "dlib_resnet"
    assert choose_detector(reg, {}, "recognition", reg.get("recognizer", "dlib_resnet")) == "dlib_hog"
    assert choose_detector(reg, {"detector": "haar"}, "recognition", reg.get("recognizer", "dlib_resnet")) == "haar"
    two = Registry(plugins=[_claims("thirdparty_det")])
    with pytest.raises(ConfigError, match="mtcnn, thirdparty_det each declare themselves the default"):
        default_component(two, "detector", "recognition")
    none = Registry(load_entry_points=False, plugins=[_claims()])
    with pytest.raises(ConfigError, match="needs --detector NAME"):
        default_component(none, "detector", "recognition")


def test_no_task_names_a_plugin():
    """The core's tasks hold no built-in component name (the contract or the specs decide)."""
    import harness.tasks as tasks_pkg

    reg = Registry()
    names = {s.name for k in ("detector", "recognizer", "liveness", "inpainter") for s in reg.specs(k)}
    folder = Path(tasks_pkg.__file__).parent
    for py in folder.glob("*.py"):
        text = py.read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("#", "*", "``")))
        for n in names:
            assert f'"{n}"' not in code and f"'{n}'" not in code, f"{py.name} names {n!r}"
