"""cascade_cnn: mining from real WIDER annotations, a short training run, detection shapes.

Thirty steps per net on 40 of the 200 stretched WIDER val images cannot make a
good detector; the test checks that training learns (loss falls, the 48-net
beats chance on held-out crops) and that the trained checkpoint builds a
detector returning well-formed Detections.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError
from harness.registry import Registry
from tests.conftest import need_data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch

    from facebench_plugins.detectors.cascade_cnn import train_cascade

    torch.set_num_threads(2)
    images = need_data("wider/images_416")
    labels = need_data("wider/labelv2_val.txt")
    out = tmp_path_factory.mktemp("cascade") / "cascade.pt"
    meta = train_cascade(images, labels, out, steps=30, limit=40, min_face=20, batch_size=32)
    return out, meta


def test_mining_scales_boxes_to_stretched_images():
    from facebench_plugins.detectors.cascade_cnn import mine_samples

    data = mine_samples(need_data("wider/images_416"), need_data("wider/labelv2_val.txt"), limit=5)
    assert data["pos"].shape[1:] == (48, 48, 3) and data["pos"].dtype == np.uint8
    assert len(data["pos"]) > 0 and len(data["neg"]) > 0
    assert len(data["cal"]) == len(data["cal_label"]) and data["cal_label"].max() < 45


def test_training_learns(trained):
    _, meta = trained
    for key in ("net12", "net24", "net48"):
        assert meta[key]["loss_last"] < meta[key]["loss_first"], (key, meta[key])
    assert meta["net48"]["heldout_accuracy"] > 0.6, meta["net48"]


def test_trained_detector_runs(trained):
    import cv2

    path, _ = trained
    det = Registry().build("detector", "cascade_cnn", {"weights": str(path), "min_face": 40})
    img = cv2.cvtColor(cv2.imread(str(need_data("images/multiface.jpg"))), cv2.COLOR_BGR2RGB)
    found = det.detect(img[::2, ::2].copy())
    assert found.landmarks is None
    assert found.boxes.shape == (len(found), 4) and found.scores.shape == (len(found),)
    assert np.all((found.scores >= 0) & (found.scores <= 1))
    assert len(det.detect_batch([img[:200, :200].copy()])) == 1


def test_without_weights_says_how_to_train():
    with pytest.raises(DataError, match="train-detector cascade_cnn"):
        Registry().build("detector", "cascade_cnn")
