"""The per-image face-location store: any subset reuses earlier detections."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")


def _counting(registry, monkeypatch):
    calls: list[int] = []
    real_build = registry.build

    def build(kind, name, options=None, **kw):
        obj = real_build(kind, name, options, **kw)
        if kind == "detector":
            detect = obj.detect

            def counted(img):
                calls.append(img.shape[0])
                return detect(img)

            obj.detect = counted
        return obj

    monkeypatch.setattr(registry, "build", build)
    return calls


def test_subsets_reuse_detections_and_only_missing_images_are_detected(tmp_path, lfw_home, fresh_registry,
                                                                     monkeypatch):
    from harness.tasks._faces import locate_faces

    images = fresh_registry.build("dataset", "lfw", {}, path=str(lfw_home)).verification().images
    calls = _counting(fresh_registry, monkeypatch)
    kw = dict(registry=fresh_registry, detector="haar", cache_dir=tmp_path, progress=False)
    first = locate_faces(images, np.array([0, 1, 2]), **kw)
    assert len(calls) == 3
    second = locate_faces(images, np.array([2, 1, 3, 4]), **kw)
    assert len(calls) == 5  # only images 3 and 4 were new
    np.testing.assert_array_equal(second.boxes[:2], first.boxes[[2, 1]])
    fresh = locate_faces(images, np.array([2, 1, 3, 4]), registry=fresh_registry, detector="haar",
                         cache_dir=None, progress=False)
    np.testing.assert_array_equal(fresh.boxes, second.boxes)
    np.testing.assert_array_equal(fresh.found, second.found)
    # the same files opened as another dataset share the store (absolute paths)
    folder = fresh_registry.build("dataset", "imagefolder", {}, path=str(lfw_home / "lfw_funneled")).train_set()
    pos = folder.keys.index(images.keys[3])
    again = locate_faces(folder, np.array([pos]), **kw)
    assert len(calls) == 9  # 4 for the uncached run above, none here
    np.testing.assert_array_equal(again.boxes[0], second.boxes[2])
    # other detector options: another store
    locate_faces(images, np.array([0]), detector_options={"min_size": 40},
                 **{k: v for k, v in kw.items()})
    assert len(calls) == 10


def test_a_damaged_store_is_recomputed(tmp_path, lfw_home, fresh_registry, monkeypatch):
    from harness.tasks._faces import locate_faces

    images = fresh_registry.build("dataset", "lfw", {}, path=str(lfw_home)).verification().images
    calls = _counting(fresh_registry, monkeypatch)
    kw = dict(registry=fresh_registry, detector="haar", cache_dir=tmp_path, progress=False)
    locate_faces(images, np.array([0, 1]), **kw)
    (store,) = tmp_path.glob("faces-haar-*.npz")
    store.write_bytes(b"not an npz")
    out = locate_faces(images, np.array([0, 1]), **kw)
    assert len(calls) == 4 and out.boxes.shape == (2, 4)
    assert np.load(store)["keys"].tolist() == sorted(images.keys[:2])


def test_keys_that_are_not_paths_are_scoped_to_their_dataset(tmp_path, fresh_registry, monkeypatch):
    from harness.tasks._faces import locate_faces
    from harness.types import ImageSet

    rng = np.random.default_rng(0)
    pics = [rng.integers(0, 255, (80, 80, 3), np.uint8) for _ in range(2)]

    def images(source):
        return ImageSet(keys=["0", "1"], labels=np.zeros(2, np.int64), loader=lambda k: pics[int(k)],
                        identities=("x",), info={"source": source, "format": "test"})

    calls = _counting(fresh_registry, monkeypatch)
    kw = dict(registry=fresh_registry, detector="haar", cache_dir=tmp_path, progress=False)
    locate_faces(images("a.rec"), np.array([0, 1]), **kw)
    locate_faces(images("a.rec"), np.array([1]), **kw)
    assert len(calls) == 2
    locate_faces(images("b.rec"), np.array([0, 1]), **kw)  # same keys, another file: detected again
    assert len(calls) == 4
