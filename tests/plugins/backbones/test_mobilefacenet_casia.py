"""The real CASIA-WebFace MobileFaceNet checkpoint (Xiaoccer/MobileFaceNet_Pytorch).

Faces are found with YuNet (its real weights in the shared data folder),
aligned to the SphereFace 112x96 template with harness.align, normalised as
the checkpoint was trained: RGB, (x - 127.5) / 128.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.errors import DataError
from harness.registry import Registry

from facebench_plugins.backbones.mobilefacenet import (
    build_mobilefacenet,
    flip_concat_embed,
    load_casia_state_dict,
)
from facebench_plugins.backbones.options import MobileFaceNetOptions

REQUIRE_DATA = os.environ.get("FACEBENCH_REQUIRE_DATA") == "1"
CKPT = "weights/mobilefacenet/068.ckpt"
YUNET = "weights/yunet/face_detection_yunet_2023mar.onnx"
IDENTITIES = "images/identities"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _need(root: Path, relative: str) -> Path:
    path = root / relative
    if not path.exists():
        msg = f"real data {relative!r} not found under {root}"
        if REQUIRE_DATA:
            pytest.fail(msg + " — FACEBENCH_REQUIRE_DATA=1 forbids skipping")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def casia_model():
    return Registry().build("backbone", "mobilefacenet", {"weights": "casia"})


def _aligned_faces(root: Path) -> dict[str, np.ndarray]:
    """name -> 112x96 RGB uint8 crop of the largest face."""
    cv2 = pytest.importorskip("cv2")
    from harness.align import align

    detector_path = _need(root, YUNET)
    faces = {}
    for folder in sorted(_need(root, IDENTITIES).iterdir()):
        bgr = cv2.imread(str(folder / "1.jpg"))
        scale = 640.0 / max(bgr.shape[:2])
        small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        h, w = small.shape[:2]
        det = cv2.FaceDetectorYN.create(str(detector_path), "", (w, h), 0.6)
        _, found = det.detect(small)
        assert found is not None and len(found), f"no face found in {folder.name}/1.jpg"
        best = max(found, key=lambda f: f[2] * f[3])
        pts = best[4:14].reshape(5, 2) / scale
        # order as the template wants: eyes left-to-right, nose, mouth corners left-to-right
        eyes = pts[:2][np.argsort(pts[:2, 0])]
        mouth = pts[3:5][np.argsort(pts[3:5, 0])]
        landmarks = np.vstack([eyes, pts[2:3], mouth])
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        faces[folder.name] = align(rgb, landmarks, "sphereface_112x96")
    return faces


def _to_batch(images: list[np.ndarray]) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return (x - 127.5) / 128.0


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    import cv2

    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REPLICATE)


def test_checkpoint_loads_strictly_with_every_listed_key(data_root, casia_model):
    ckpt = _need(data_root, CKPT)
    state = load_casia_state_dict(ckpt)
    model_state = casia_model.state_dict()
    assert set(state) == set(model_state)
    for key, value in state.items():
        assert model_state[key].shape == value.shape, key
        assert torch.equal(model_state[key], value), f"{key} not loaded"
    listing = sorted(ckpt.parent.glob("*.keys.tsv"))
    if listing:  # the key/shape list shipped beside the checkpoint
        rows = [ln.split("\t") for ln in listing[0].read_text().splitlines() if ln and not ln.startswith("#")]
        assert {r[0] for r in rows} == set(model_state)
        for key, shape, _dtype in rows:
            assert tuple(model_state[key].shape) == tuple(eval(shape)), key  # "(64, 3, 3, 3)"
    assert casia_model.flip_concat is True
    assert tuple(casia_model.input_size) == (112, 96)


def test_casia_variant_meta_matches_a_measured_count(casia_model):
    from facebench_plugins.backbones._profile import profile

    variant = Registry().get("backbone", "mobilefacenet").meta["variants"]["casia"]
    measured = profile(casia_model, variant["input_size"])
    assert measured.params == variant["params"]
    assert measured.macs == variant["macs"]
    assert measured.output_shape == (128,)


def test_real_faces_embed_sensibly(data_root, casia_model):
    _need(data_root, CKPT)
    faces = _aligned_faces(data_root)
    names = sorted(faces)
    assert len(names) >= 3
    originals = _to_batch([faces[n] for n in names])
    shifted = _to_batch([_shift(faces[n], 2, 1) for n in names])
    casia_model.eval()
    with torch.no_grad():
        f = casia_model(originals)
        f_shift = casia_model(shifted)
        both = flip_concat_embed(casia_model, originals)
    assert f.shape == (len(names), 128)
    assert both.shape == (len(names), 256)
    assert torch.allclose(both[:, :128], f, atol=1e-5)
    assert torch.isfinite(f).all()

    f = torch.nn.functional.normalize(f, dim=1)
    f_shift = torch.nn.functional.normalize(f_shift, dim=1)
    cross = f @ f.T
    same = (f * f_shift).sum(dim=1)
    for i, name in enumerate(names):
        others = torch.cat([cross[i, :i], cross[i, i + 1:]])
        # different people differ ...
        # (measured: cosines 0.01-0.43 between the four people)
        assert others.max() < 0.7, f"{name} looks like someone else: {others.tolist()}"
        # ... and a 2-pixel shift of the same crop is closer than anyone else (measured 0.95-0.96)
        assert same[i] > 0.85 and same[i] > others.max() + 0.2, (name, float(same[i]), others.tolist())


def test_missing_or_wrong_weights_raise_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_mobilefacenet(MobileFaceNetOptions(weights="casia", weights_path=str(tmp_path / "nope.ckpt")))
    wrong = tmp_path / "068.ckpt"
    wrong.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="sha256"):
        build_mobilefacenet(MobileFaceNetOptions(weights="casia", weights_path=str(wrong)))


class _NotATensor:  # an arbitrary pickled object: refused by weights_only loading
    pass


def test_checkpoint_loader_refuses_arbitrary_pickles(tmp_path):
    bad = tmp_path / "bad.ckpt"
    torch.save({"net_state_dict": _NotATensor()}, bad)
    with pytest.raises(DataError, match="weights_only=True"):
        load_casia_state_dict(bad)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(DataError, match="net_state_dict"):
        load_casia_state_dict(other)
