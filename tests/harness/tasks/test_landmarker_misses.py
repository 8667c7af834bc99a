"""Leftovers of ``--landmarker`` beside a model (issue 20): faces where the landmarker places no points are
counted per evaluated set (protocol ``landmarker_misses``, the run page, the summary line), the manifest
names the landmarker, and liveness runs take one (a full-image liveness model refuses it, saying why).

Fakes make the counts exact: a detector that finds a centred face in every image that is not black, and a
landmarker that places no points in images whose pixel sum is a multiple of 3 — so the expected number of
misses is counted here from the images themselves, independently of the code under test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from harness.align import TEMPLATES
from harness.errors import ConfigError
from harness.hookspecs import hookimpl
from harness.registry import Registry, reset_registry
from harness.specs import DetectorSpec, LandmarkerSpec, LivenessSpec, RecognizerSpec
from harness.types import Detections, ImageSet
from tests.conftest import need_data

SHIFT = 3.0  # the landmarker's points: the detector's, this many pixels to the right


@dataclass(frozen=True)
class _NoOptions:
    pass


def misses(img: np.ndarray) -> bool:
    """Where the picky landmarker places no points (decided from the image alone)."""
    return int(np.asarray(img, np.int64).sum()) % 3 == 0


def _five_in(box: np.ndarray) -> np.ndarray:
    """The arcface template's five points scaled into ``box``."""
    x1, y1, x2, y2 = box
    return TEMPLATES["arcface_112"].array / 112.0 * [x2 - x1, y2 - y1] + [x1, y1]


class CentreDetector:
    """One face, the centre half of the image, with the template's points; none in a black image."""

    def detect(self, img):
        if not img.any():
            return Detections.empty()
        h, w = img.shape[:2]
        box = np.array([w * 0.25, h * 0.25, w * 0.75, h * 0.75])
        return Detections(box[None], np.array([0.9]), _five_in(box)[None])


class PickyLandmarker:
    """Five points (scheme ``five``): the detector's moved right by SHIFT px, or NaN where :func:`misses`."""

    def predict(self, img, boxes):
        out = np.stack([_five_in(np.asarray(b, np.float64)) + [SHIFT, 0.0] for b in boxes])
        if misses(img):
            out[:] = np.nan
        return out.astype(np.float32)


class StripeRecognizer:
    """A 16-d embedding: the mean of 16 horizontal stripes of the crop."""

    def embed(self, crops):
        return np.stack([np.asarray(c, np.float32).reshape(16, 7, 112, 3).mean(axis=(1, 2, 3)) for c in crops])


class PixelScore:
    def score(self, crops):
        return np.array([float(np.asarray(c, np.float64).mean()) / 255.0 for c in crops])


class Fakes:
    __name__ = "landmarker_miss_fakes"

    @staticmethod
    @hookimpl
    def register_detectors():
        return [DetectorSpec(name="centre_fake", summary="centre box + template points (test)",
                             factory=lambda opts: CentreDetector(), options=_NoOptions)]

    @staticmethod
    @hookimpl
    def register_landmarkers():
        return [LandmarkerSpec(name="picky_fake", summary="misses where pixel sum % 3 == 0 (test)",
                               factory=lambda opts: PickyLandmarker(), options=_NoOptions, num_points=5,
                               scheme="five")]

    @staticmethod
    @hookimpl
    def register_recognizers():
        return [RecognizerSpec(name="stripes_fake", summary="stripe means (test)", factory=lambda opts: StripeRecognizer(),
                               options=_NoOptions, input_size=(112, 112), embedding_size=16,
                               alignment="arcface_112", distance="cosine")]

    @staticmethod
    @hookimpl
    def register_liveness():
        return [LivenessSpec(name="pixel_fake", summary="mean pixel (test)", factory=lambda opts, **kw: PixelScore(),
                             options=_NoOptions, input_size=(112, 112), meta={"input": "face_crop"})]


def _images(n: int = 14, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    imgs = {f"img{i}": rng.integers(0, 256, (96, 80, 3), dtype=np.uint8) for i in range(n)}
    imgs["img0"][:] = 0  # no face found: neither a face of the count nor a miss
    imgs["img5"][:] = 0
    return ImageSet(keys=list(imgs), labels=np.zeros(n, np.int64), loader=imgs.__getitem__,
                    info={"format": "memory", "source": f"fixture-{seed}"})


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    reg = Registry(plugins=[Fakes])
    reset_registry(reg)
    yield reg
    reset_registry(None)


# --------------------------------------------------------------- 1. misses counted, detector's points kept
def test_misses_are_counted_exactly_and_keep_the_detectors_points(tmp_path, fakes):
    from harness.tasks._faces import face_crops, locate_faces

    images = _images()
    idx = np.arange(len(images.keys))
    loaded = [images.load(int(i)) for i in idx]
    found = [bool(im.any()) for im in loaded]
    expected = sum(f and misses(im) for f, im in zip(found, loaded))
    assert 0 < expected < sum(found)  # the fixture has both hits and misses
    kw = dict(registry=fakes, detector="centre_fake", template="arcface_112", size=(112, 112), progress=False,
              workers=0)
    plain = face_crops(images, idx, cache_dir=tmp_path / "plain", **kw)
    lm = face_crops(images, idx, cache_dir=tmp_path / "lm", landmarker="picky_fake", **kw)
    assert plain.landmarker is None
    use = lm.landmarker
    assert (use.name, use.detector, use.faces, use.misses) == ("picky_fake", "centre_fake", sum(found), expected)
    for j, im in enumerate(loaded):
        same = np.array_equal(plain.crops[j], lm.crops[j])
        assert same == (not found[j] or misses(im)), j  # a miss keeps the detector's points: the same crop
    entry = use.protocol()["landmarker_misses"]
    assert entry["n"] == expected and entry["of_faces"] == sum(found)
    assert entry["fraction"] == pytest.approx(expected / sum(found))
    assert "kept the detector's points" in entry["rule"] and "picky_fake" in entry["rule"]
    # read back from the store (nothing detected again): the same count, from the stored flags
    again = face_crops(images, idx, cache_dir=tmp_path / "lm", landmarker="picky_fake", **kw)
    assert again.stages["detected"] == 0 and again.landmarker == use
    # the serial face locator (liveness) counts the same, and shares the pipeline's store
    loc = locate_faces(images, idx, registry=fakes, detector="centre_fake", cache_dir=tmp_path / "lm",
                       progress=False, landmarker="picky_fake")
    assert loc.landmarker == use
    fresh = locate_faces(images, idx, registry=fakes, detector="centre_fake", cache_dir=tmp_path / "loc",
                         progress=False, landmarker="picky_fake")
    assert fresh.landmarker == use
    np.testing.assert_array_equal(fresh.landmarks, loc.landmarks)


def test_named_edge_cases_of_the_count():
    from harness.errors import HarnessError
    from harness.tasks._faces import refine_one
    from harness.tasks._landmark_points import landmarker_protocol, landmarker_use

    box = np.array([10, 10, 50, 50], np.float32)
    det_pts = _five_in(box).astype(np.float32)
    black, grey = np.zeros((60, 60, 3), np.uint8), np.full((60, 60, 3), 7, np.uint8)  # sums 0 (miss), 75600 (miss)
    one = np.zeros((60, 60, 3), np.uint8)
    one[0, 0, 0] = 1  # sum 1: a hit
    row = (box, det_pts, True, 1, 0.9)
    hit, miss = refine_one(PickyLandmarker(), one, row, "five"), refine_one(PickyLandmarker(), grey, row, "five")
    assert hit[5] is False and np.allclose(hit[1], det_pts + [SHIFT, 0])
    assert miss[5] is True and np.array_equal(miss[1], det_pts)
    no_face = refine_one(PickyLandmarker(), black, (box, det_pts, False, 0, np.nan), "five")
    assert no_face[5] is False
    short = refine_one(PickyLandmarker(), one, (box, det_pts, True, 1), "five")  # a row without a score
    assert len(short) == 6 and np.isnan(short[4])
    assert landmarker_protocol(None) == {}
    nothing = landmarker_use("x", "five", "d", [no_face])
    assert nothing.faces == 0 and nothing.protocol()["landmarker_misses"]["fraction"] is None
    every = landmarker_use("x", "five", "d", [miss, miss, hit, no_face])
    assert (every.faces, every.misses, every.miss_fraction) == (3, 2, pytest.approx(2 / 3))
    with pytest.raises(HarnessError, match="without the landmarker's miss flag"):
        landmarker_use("x", "five", "d", [row])


def test_the_store_keeps_the_miss_flag(tmp_path):
    from harness.tasks._faces import _read_store, _write_store

    box, pts = np.zeros(4, np.float32), np.zeros((5, 2), np.float32)
    _write_store(tmp_path / "lm.npz", {"a": (box, pts, True, 1, 0.5, True), "b": (box, pts, True, 1, 0.5, False)})
    back = _read_store(tmp_path / "lm.npz")
    assert back["a"][5] is True and back["b"][5] is False
    _write_store(tmp_path / "det.npz", {"a": (box, pts, True, 1, 0.5)})  # a detector's store: no flag column
    with np.load(tmp_path / "det.npz") as z:
        assert "landmarker_miss" not in z.files
    assert len(_read_store(tmp_path / "det.npz")["a"]) == 5


def test_page_and_summary_line_state_the_misses():
    from harness.report._build import protocol_box
    from harness.runner._lifecycle import _landmarker_misses_text
    from harness.tasks._landmark_points import LandmarkerUse

    entry = LandmarkerUse("picky_fake", "five", "centre_fake", "the rule", faces=40, misses=3).protocol()
    items = {kv.key: kv.value for kv in protocol_box({"protocol": {"dataset": "lfw", **entry}})}
    assert "Landmarker misses" in items
    assert "3" in items["Landmarker misses"] and "kept the detector's points" in items["Landmarker misses"]
    assert _landmarker_misses_text(entry) == "; landmarker missed 3/40 faces (kept the detector's points)"
    assert _landmarker_misses_text({"dataset": "lfw"}) == "" and _landmarker_misses_text(None) == ""


# --------------------------------------------------------------- 2. the manifest names the landmarker
def test_the_manifest_names_the_landmarker_and_its_fingerprint_covers_it():
    import hashlib

    from harness.tasks._landmark_points import LandmarkerUse
    from harness.tasks._manifest import FIELDS, fingerprint, with_landmarker

    m = {"alignment": "arcface_112", "input_size": [112, 112], "runtimes": {"opencv": "4.1"},
         "compared_runtimes": ["opencv"]}
    m["fingerprint"] = fingerprint(m)
    # the reference: sha256 of the fields and compared runtimes, as before landmarkers (no key added)
    key = {**{f: m.get(f) for f in FIELDS}, "runtimes": {"opencv": "4.1"}}
    ref = hashlib.sha256(json.dumps(key, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()
    assert m["fingerprint"] == ref[:12]
    assert with_landmarker(dict(m), None) == m  # no landmarker: nothing changes
    use = LandmarkerUse("dlib_5", "dlib_5", "yunet", "completed from dlib's mean face", faces=4, misses=0)
    got = with_landmarker(dict(m), use)
    assert got["landmarker"] == {"name": "dlib_5", "scheme": "dlib_5",
                                 "points": "points from landmarker dlib_5 in detector yunet's box",
                                 "five": "completed from dlib's mean face"}
    assert got["fingerprint"] != m["fingerprint"] and got["fingerprint"] == fingerprint(got)


def _small_pairs(tmp_path: Path, lfw: Path) -> Path:
    """3 genuine + 3 impostor pairs from each of LFW's first two folds (real pairs, real photos)."""
    lines = (lfw / "pairs.txt").read_text().splitlines()[1:]
    keep = lines[0:3] + lines[300:303] + lines[600:603] + lines[900:903]
    out = tmp_path / "pairs_small.txt"
    out.write_text("2\t3\n" + "\n".join(keep) + "\n")
    return out


def test_a_recognition_run_reports_misses_on_protocol_page_line_and_manifest(tmp_path, fakes, capsys):
    from harness.cli import main
    from harness.formats.images import read_image

    lfw = need_data("lfw_home")
    pairs = _small_pairs(tmp_path, lfw)
    base = ["run", "--recognizer", "stripes_fake", "--detector", "centre_fake", "--eval", f"lfw={lfw}",
            "-o", f"lfw.pairs={pairs}", "--reports", str(tmp_path / "reports")]
    assert main(base + ["--landmarker", "picky_fake"]) == 0
    assert main(base) == 0
    runs = {}
    for path in (tmp_path / "reports").glob("runs/*/results.json"):
        res = json.loads(path.read_text())
        runs["lm" if "landmarker" in res["provenance"]["config"]["components"] else "plain"] = (path, res)
    res = runs["lm"][1]
    ps = fakes.build("dataset", "lfw", {"pairs": str(pairs)}, path=str(lfw)).verification()
    used = np.unique(ps.pairs.ravel())
    expected = sum(misses(read_image(ps.images.keys[i])) for i in used)
    entry = res["protocol"]["landmarker_misses"]
    assert (entry["n"], entry["of_faces"]) == (expected, len(used))
    assert "landmarker_misses" not in runs["plain"][1]["protocol"]
    # the manifest: who placed the points, covered by the fingerprint
    m, plain_m = res["sections"]["manifest"], runs["plain"][1]["sections"]["manifest"]
    assert m["landmarker"]["points"] == "points from landmarker picky_fake in detector centre_fake's box"
    assert m["landmarker"]["scheme"] == "five" and "landmarker" not in plain_m
    assert m["fingerprint"] != plain_m["fingerprint"]
    # the summary line and the run page
    assert f"landmarker missed {expected}/{len(used)} faces" in capsys.readouterr().err
    html = (runs["lm"][0].parent / "index.html").read_text()
    assert "Landmarker misses" in html and "kept the detector&#39;s points" in html
    # the manifest section of the page names who placed the points
    assert "points from landmarker picky_fake in detector centre_fake&#39;s box" in html


# --------------------------------------------------------------- 3. liveness with a landmarker
def test_liveness_takes_a_landmarker_and_a_full_image_model_refuses_it(fakes):
    from harness.config import RunConfig

    runs = RunConfig(landmarkers=("picky_fake",), liveness=("pixel_fake",), detectors=("centre_fake",),
                     eval=("spoof=x",)).expand(fakes)
    assert [(r.task, r.components) for r in runs] == [
        ("liveness", {"liveness": "pixel_fake", "detector": "centre_fake", "landmarker": "picky_fake"})]
    with pytest.raises(ConfigError) as err:
        RunConfig(landmarkers=("dlib_68",), liveness=("minifasnet",), eval=("spoof=x",)).expand(fakes)
    msg = str(err.value)
    assert "\n" not in msg and "minifasnet takes the whole image" in msg and "change nothing" in msg
    with pytest.raises(ConfigError, match="not of detection runs"):
        RunConfig(landmarkers=("picky_fake",), detectors=("centre_fake",), eval=("wider=x",)).expand(fakes)


def test_a_liveness_run_counts_the_misses_of_test_and_dev(tmp_path, fakes, capsys):
    cv2 = pytest.importorskip("cv2")
    from harness.cli import main

    rng = np.random.default_rng(4)
    data = tmp_path / "spoof"
    written = {}
    for split in ("test", "dev"):
        for i, folder in enumerate(["live"] * 4 + ["attack/print"] * 4):
            p = data / split / folder / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            img = rng.integers(0, 256, (90, 90, 3), dtype=np.uint8)
            cv2.imwrite(str(p), img[..., ::-1])
            written.setdefault(split, []).append(img)
    code = main(["run", "--liveness", "pixel_fake", "--detector", "centre_fake", "--landmarker", "picky_fake",
                 "--eval", f"spoof={data}", "--reports", str(tmp_path / "reports")])
    assert code == 0
    (path,) = (tmp_path / "reports").glob("runs/*/results.json")
    res = json.loads(path.read_text())
    p = res["protocol"]
    assert p["landmarker_misses"]["n"] == sum(misses(im) for im in written["test"])
    assert p["landmarker_misses"]["of_faces"] == 8
    dev = res["sections"]["liveness"]["dev"]["landmarker_misses"]
    assert dev["n"] == sum(misses(im) for im in written["dev"])
    assert "five points by landmarker picky_fake in the detector's box" in p["alignment"]
    assert "landmarker missed" in capsys.readouterr().err


@pytest.fixture(scope="module")
def antispoof(tmp_path_factory):
    """The real spoof samples as a ``spoof`` folder of links: T1 / F1 train, T2 / F2 test."""
    root = need_data("antispoof").resolve()
    data = tmp_path_factory.mktemp("antispoof")
    for split, live, attack in (("train", "T1", "F1"), ("test", "T2", "F2")):
        for folder, name in (("live", live), ("attack/photo", attack)):
            (data / split / folder).mkdir(parents=True)
            (data / split / folder / f"image_{name}.jpg").symlink_to(root / f"image_{name}.jpg")
    return data


def test_lbp_svm_on_real_spoof_photos_with_a_real_landmarker(tmp_path, antispoof, monkeypatch):
    """lbp_svm aligns its crops on five points: with --landmarker dlib_68 its crops move (yunet's
    box, dlib's points), the run states the landmarker and counts its misses on real photos."""
    pytest.importorskip("cv2")
    pytest.importorskip("dlib")
    pytest.importorskip("sklearn")
    need_data("weights/yunet/face_detection_yunet_2023mar.onnx")
    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    from harness.cli import main
    from harness.registry import Registry as Reg
    from harness.tasks._faces import locate_faces, make_crops

    reg = Reg()
    reset_registry(reg)
    try:
        base = ["run", "--liveness", "lbp_svm", "--detector", "yunet", "--eval", f"spoof={antispoof}",
                "--reports", str(tmp_path / "reports")]
        assert main(base + ["--landmarker", "dlib_68"]) == 0
        assert main(base) == 0
        record = reg.build("dataset", "spoof", {}, path=str(antispoof)).liveness()
        idx = np.arange(len(record.images.keys))
        kw = dict(registry=reg, detector="yunet", cache_dir=tmp_path / "reports" / "cache", progress=False)
        plain, lm = locate_faces(record.images, idx, **kw), locate_faces(record.images, idx, landmarker="dlib_68", **kw)
    finally:
        reset_registry(None)
    res = {("lm" if "landmarker" in r["provenance"]["config"]["components"] else "plain"): r
           for r in (json.loads(p.read_text()) for p in (tmp_path / "reports").glob("runs/*/results.json"))}
    assert {r["status"] for r in res.values()} == {"finished"}
    p = res["lm"]["protocol"]
    found = int(plain.found.sum())
    assert found >= 3  # yunet finds the faces of the real photos
    test = np.asarray(record.split) == "test"
    assert p["landmarker_misses"]["of_faces"] == int(plain.found[test].sum())
    # a miss keeps the detector's points exactly; dlib never lands on yunet's five to the bit
    kept = [j for j in np.flatnonzero(test & plain.found) if np.array_equal(plain.landmarks[j], lm.landmarks[j])]
    assert p["landmarker_misses"]["n"] == len(kept)
    assert "landmarker dlib_68" in p["alignment"] and res["plain"]["protocol"]["alignment"] == "arcface_112"
    assert res["lm"]["sections"]["training"]["landmarker_misses"]["of_faces"] >= 1
    # where it did not miss, the landmarker moved the points, and so the crops lbp_svm saw
    kept_all = np.array([np.array_equal(x, y) for x, y in zip(plain.landmarks, lm.landmarks)])
    hit = plain.found & ~kept_all
    assert hit.sum() >= 3
    moved = np.linalg.norm(plain.landmarks[hit] - lm.landmarks[hit], axis=-1).mean(axis=1)
    assert np.all(moved > 0.5), moved
    size = (112, 112)
    a = make_crops(record.images, idx, template="arcface_112", size=size, faces=plain, progress=False)[0]
    b = make_crops(record.images, idx, template="arcface_112", size=size, faces=lm, progress=False)[0]
    assert all(not np.array_equal(a[j], b[j]) for j in np.flatnonzero(hit))


# --------------------------------------------------------------- 4. harness data counts them too
def test_harness_data_cropper_counts_the_landmarkers_misses(fakes):
    from harness.cli.data._common import FaceCropper
    from harness.tasks._faces import face_crops

    images = _images()
    loaded = [images.load(i) for i in range(len(images.keys))]
    expected = sum(bool(im.any()) and misses(im) for im in loaded)
    assert 0 < expected < len(loaded)  # the fixture has misses and hits
    cropper = FaceCropper("centre_fake", 112, landmarker="picky_fake")
    crops = [cropper(im) for im in loaded]
    assert cropper.counts["landmarker_missed_kept_detector_points"] == expected
    assert f"landmarker_missed_kept_detector_points: {expected}" in cropper.summary()
    # the same crops as evaluation's (a miss keeps the detector's points there too)
    fc = face_crops(images, np.arange(len(loaded)), registry=fakes, detector="centre_fake", template="arcface_112",
                    size=(112, 112), progress=False, landmarker="picky_fake")
    for j, (a, b) in enumerate(zip(crops, fc.crops)):
        if loaded[j].any():
            np.testing.assert_array_equal(a, b, err_msg=str(j))
