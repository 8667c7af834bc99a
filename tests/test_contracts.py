"""Every registered component honours its contract (``harness.types`` Protocols).

Parametrised over the registry — built-in and third-party components alike,
each id naming its owning plugin (``detector:haar@detectors``); set
``FACEBENCH_CONTRACT_PLUGINS=detectors,example`` to check only the components
of those plugins.  Each component is built on CPU with its default options
and given a tiny input.  One whose framework or weights are missing is
skipped with the reason (under ``FACEBENCH_REQUIRE_DATA=1`` missing weights
fail).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from harness.errors import ConfigError, DataError, HarnessError
from harness.registry import Registry
from harness.specs import BackboneSpec
from harness import types as T
from tests.conftest import REQUIRE_DATA

#: the Protocol each kind's built object must satisfy
PROTOCOLS = {
    "detector": T.Detector,
    "landmarker": T.Landmarker,
    "recognizer": T.Recognizer,
    "liveness": T.LivenessModel,
    "inpainter": T.Inpainter,
    "engine": T.Engine,
}
#: DatasetSpec.tasks -> the view Protocol a dataset declaring it offers
DATASET_VIEWS = {
    "train": (T.TrainData, "train_set"),
    "verification": (T.VerificationData, "verification"),
    "detection": (T.DetectionData, "detection"),
    "liveness": (T.LivenessData, "liveness"),
    "landmarks": (T.LandmarkData, "landmarks"),
}

_REGISTRY = Registry()


def _components() -> list:
    wanted = {p.strip() for p in os.environ.get("FACEBENCH_CONTRACT_PLUGINS", "").split(",") if p.strip()}
    out = []
    for kind in (*PROTOCOLS, "dataset"):
        if kind not in _REGISTRY.kinds():
            continue
        for spec in _REGISTRY.specs(kind):
            owner = _REGISTRY.owner(kind, spec.name)
            if wanted and owner not in wanted:
                continue
            out.append(pytest.param(kind, spec.name, id=f"{kind}:{spec.name}@{owner}"))
    return out


def _build(kind: str, name: str, **kwargs):
    spec = _REGISTRY.get(kind, name)
    if not spec.available:
        pytest.skip(f"{kind} {name!r} needs the {spec.framework} framework ({spec.install_hint})")
    try:
        return spec, _REGISTRY.build(kind, name, {}, **kwargs)
    except DataError as exc:  # weights (or default data) not found
        if REQUIRE_DATA and spec.weights:
            pytest.fail(f"{kind} {name!r}: {exc} — FACEBENCH_REQUIRE_DATA=1 forbids skipping")
        pytest.skip(f"{kind} {name!r} cannot be built here: {exc}")
    except ConfigError as exc:  # needs an option or a path that has no default (checked in its own tests)
        pytest.skip(f"{kind} {name!r} needs options to be built: {exc}")


def _face(h: int = 112, w: int = 112) -> np.ndarray:
    """A tiny deterministic RGB image: a light oval on a dark background."""
    yy, xx = np.mgrid[:h, :w]
    inside = ((yy - h / 2) / (h * 0.4)) ** 2 + ((xx - w / 2) / (w * 0.3)) ** 2 < 1
    img = np.where(inside[..., None], 200, 40).astype(np.uint8)
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img


def _check_detector(spec, obj) -> None:
    d = obj.detect(_face(96, 96))
    assert isinstance(d, T.Detections)
    assert d.boxes.shape[1:] == (4,) and d.scores.shape == (len(d),)
    if d.landmarks is not None:
        assert d.landmarks.shape == (len(d), 5, 2)


def _check_landmarker(spec, obj) -> None:
    pts = np.asarray(obj.predict(_face(160, 160), np.array([[30, 30, 130, 130], [40, 20, 120, 140]], np.float32)))
    assert pts.shape == (2, spec.num_points, 2)  # NaN rows allowed: no prediction for that box


def _check_recognizer(spec, obj) -> None:
    h, w = spec.input_size
    emb = np.asarray(obj.embed([_face(h, w), _face(h, w)]))
    assert emb.shape == (2, spec.embedding_size) and np.isfinite(emb).all()
    if isinstance(obj, T.SelfAligningRecognizer) and obj.own_alignment() is not None:
        crops = obj.align_faces(_face(160, 160), np.array([[30, 30, 130, 130]], np.float32))
        assert len(crops) == 1 and crops[0].dtype == np.uint8 and crops[0].ndim == 3
        assert np.asarray(obj.embed(crops)).shape == (1, spec.embedding_size)


def _check_liveness(spec, obj) -> None:
    h, w = spec.input_size
    try:
        scores = np.asarray(obj.score([_face(h, w), _face(h, w)]), np.float64).reshape(-1)
    except HarnessError as exc:  # trainable and not trained yet: a clear project error
        assert spec.trainable, f"pretrained {spec.name} could not score: {exc}"
        return
    assert scores.shape == (2,) and np.isfinite(scores).all()


def _check_inpainter(spec, obj) -> None:
    img = _face(64, 64)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:24, :] = 255
    out = obj.restore([img], [mask] if obj.needs_mask else None)
    assert len(out) == 1 and np.asarray(out[0]).shape == img.shape
    if isinstance(obj, T.MaskEstimatingInpainter):
        (m,) = obj.estimate_masks([img])
        assert np.asarray(m).shape[:2] == img.shape[:2]


def _check_engine(spec, obj) -> None:
    obj.seed_everything(0)
    backbones = [b for b in _REGISTRY.specs("backbone") if b.framework == spec.name and b.available]
    if not backbones:
        return
    bspec: BackboneSpec = min(backbones, key=lambda b: (b.input_size[0] * b.input_size[1], b.name))
    model = _REGISTRY.build("backbone", bspec.name, {})
    h, w = bspec.input_size
    emb = obj.embed(model, [_face(h, w)] * 2, backbone_spec=bspec, flip=None, batch_size=2, device="cpu",
                    progress=False)
    assert emb.shape == (2, bspec.embedding_size) and np.isfinite(emb).all()


CHECKS = {"detector": _check_detector, "landmarker": _check_landmarker, "recognizer": _check_recognizer, "liveness": _check_liveness,
          "inpainter": _check_inpainter, "engine": _check_engine}


@pytest.mark.parametrize("kind,name", _components())
def test_component_honours_its_contract(kind: str, name: str, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    if kind == "dataset":
        spec = _REGISTRY.get(kind, name)
        _spec, ds = _build(kind, name)
        for task in spec.tasks:
            view, method = DATASET_VIEWS[task]
            assert isinstance(ds, view), f"{name} declares {task!r} but lacks its view"
            # the base class's placeholder (which raises "has no ... data") does not count
            assert getattr(type(ds), method) is not getattr(T.Dataset, method, None), \
                f"{name} declares {task!r} but does not implement {method}()"
        return
    kwargs = {"registry": _REGISTRY} if kind == "liveness" and _REGISTRY.get(kind, name).meta.get(
        "input") == "full_image" else {}
    spec, obj = _build(kind, name, **kwargs)
    assert isinstance(obj, PROTOCOLS[kind]), f"{kind} {name!r} does not satisfy {PROTOCOLS[kind].__name__}"
    CHECKS[kind](spec, obj)


def test_every_kind_with_built_objects_has_a_protocol():
    """A new kind of built component gets a Protocol (and a check) here."""
    built = {k for k in _REGISTRY.kinds() if k not in ("backbone", "loss", "dataset", "command")}
    assert built <= set(PROTOCOLS), built - set(PROTOCOLS)
