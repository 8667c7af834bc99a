"""The detection failure gallery: missed and false faces at the best-F1 threshold under the WIDER
matching rules, drawn on the image, under a size cap; and its run-page section."""

from __future__ import annotations

import numpy as np
import pytest

from harness.tasks import _gallery as G

GT = {"a": np.array([[10, 10, 40, 40]], float), "b": np.array([[10, 10, 40, 40], [50, 50, 90, 90]], float),
      "c": np.zeros((0, 4))}
KEEP = {"a": np.array([True]), "b": np.array([True, True]), "c": np.zeros(0, bool)}
PREDS = {"a": np.array([[10, 10, 40, 40, 0.9], [60, 60, 90, 90, 0.8]]),  # found; a false face
         "b": np.array([[50, 50, 90, 90, 0.7]]),  # found; the other face missed
         "c": np.array([[5, 5, 20, 20, 0.3]])}  # a false face below the threshold


def _loader(key):
    return np.full((100, 100, 3), 128, np.uint8)


def test_threshold_of_best_f1_and_the_errors_at_it():
    # F1 by threshold (3 kept faces): 0.9 -> 0.5, 0.8 -> 0.4, 0.7 -> 0.667, 0.3 -> 0.571
    g = G.detection_gallery(PREDS, GT, KEEP, _loader)
    assert g["threshold"] == pytest.approx(0.7)
    assert [(i["file"], i["missed"], i["false"], i["found"]) for i in g["images"]] == [("a", 0, 1, 1),
                                                                                       ("b", 1, 0, 1)]
    assert g["counts"] == {"missed": 1, "false": 1, "faces": 3, "images": 3}
    assert all(i["uri"].startswith("data:image/jpeg;base64,") for i in g["images"]) and not g["truncated"]


def test_a_duplicate_detection_is_a_false_face_and_an_ignored_face_is_neither():
    preds = {"a": np.array([[10, 10, 40, 40, 0.9], [11, 11, 40, 40, 0.85]]), "b": np.array([[50, 50, 90, 90, 0.8]])}
    gt = {"a": GT["a"], "b": np.array([[50, 50, 90, 90]], float)}
    keep = {"a": np.array([True]), "b": np.array([False])}  # b's face is not on the keep-list
    g = G.detection_gallery(preds, gt, keep, _loader)
    by = {i["file"]: i for i in g["images"]}
    assert g["threshold"] == pytest.approx(0.9)  # the duplicate at 0.85 only lowers precision
    assert g["counts"]["false"] == 0 and g["counts"]["missed"] == 0 and not by
    errs = G._image_errors(preds["a"], gt["a"], keep["a"])
    assert errs["tp"].tolist() == [True, False] and errs["fp"].tolist() == [False, True]
    assert G._image_errors(preds["b"], gt["b"], keep["b"])["fp"].tolist() == [False]


def test_size_cap_and_no_detections():
    g = G.detection_gallery(PREDS, GT, KEEP, _loader, max_bytes=10)
    assert g["truncated"] and g["images"] == [] and g["bytes"] == 0
    none = G.detection_gallery({}, GT, KEEP, _loader)
    assert none["threshold"] == float("inf") and none["counts"]["missed"] == 3
    assert [i["missed"] for i in none["images"]] == [2, 1]


def test_boxes_are_drawn_clipped_to_the_image():
    img = np.zeros((20, 30, 3), np.uint8)
    G._draw_box(img, np.array([5, 4, 50, 12]), (255, 0, 0), 2)
    assert (img[4, 5:30] == (255, 0, 0)).all() and (img[12, 5:30] == (255, 0, 0)).all()
    assert (img[6, 5] == (255, 0, 0)).all() and (img[8, 15] == 0).all()  # outline only
    G._draw_box(img, np.array([40, 40, 50, 50]), (0, 255, 0), 1)  # off the image: nothing
    assert not (img == (0, 255, 0)).all(axis=2).any()


def test_run_page_section():
    from harness.report._detection_gallery import detection_gallery_section

    g = G.detection_gallery(PREDS, GT, KEEP, _loader)
    g["images"][0]["file"] = "<b>x</b>"
    sec = detection_gallery_section({"sections": {"detection_gallery": g}})
    html = str(sec.plots[0])
    assert sec.id == "detection-gallery" and html.count("<img") == 2 and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "1 missed" in html and "faces missed" in sec.notes[0]
    g["images"][0]["uri"] = "javascript:alert(1)"  # nothing but the run's JPEG data URIs becomes a src
    assert "javascript" not in str(detection_gallery_section({"sections": {"detection_gallery": g}}).plots[0])
    assert detection_gallery_section({"sections": {}}) is None
