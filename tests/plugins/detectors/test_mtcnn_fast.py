"""The fast paths of the MTCNN port equal the plain PyTorch operations they replace.

Area resizing from integral images (pyramid levels and R-/O-Net crops) is
compared bit for bit with ``F.interpolate(mode="area")`` on random images,
the numpy P-Net candidate step with the torch formulation facenet-pytorch
uses, the fused P-Net heads with the two separate 1x1 convolutions, and
batched detection (mixed image sizes included) with one image at a time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facebench_plugins.detectors._area import IntegralTable
from facebench_plugins.detectors.mtcnn import MTCNN, PNet


def _torch_area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    return F.interpolate(x, size=size, mode="area")[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("shape,size", [
    ((250, 250), (151, 151)), ((250, 250), (14, 14)), ((630, 1200), (379, 721)),
    ((37, 23), (24, 24)), ((5, 300), (48, 48)), ((64, 64), (64, 64)), ((1, 1), (12, 12)),
])
def test_area_resize_is_bit_exact(shape, size):
    rng = np.random.default_rng(sum(shape) + sum(size))
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    ours = IntegralTable([image]).resize(0, *size)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, _torch_area(image, size))


def test_area_crops_are_bit_exact_across_images_of_different_sizes():
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, s, dtype=np.uint8) for s in ((120, 90, 3), (40, 200, 3), (250, 250, 3))]
    table = IntegralTable(images)
    index, y0, y1, x0, x1 = [], [], [], [], []
    for k, im in enumerate(images):
        h, w = im.shape[:2]
        for _ in range(15):
            a, b = sorted(rng.choice(h + 1, 2, replace=False))
            c, d = sorted(rng.choice(w + 1, 2, replace=False))
            index.append(k), y0.append(a), y1.append(b), x0.append(c), x1.append(d)
    arrays = [np.asarray(v, np.int64) for v in (index, y0, y1, x0, x1)]
    for size in (24, 48):
        crops = table.crops(*arrays, size)
        for n, (k, a, b, c, d) in enumerate(zip(*arrays)):
            want = _torch_area(np.ascontiguousarray(images[k][a:b, c:d]), (size, size))
            assert np.array_equal(crops[n], want), (size, n)


def test_integral_table_falls_back_to_float64_when_int32_could_overflow(monkeypatch):
    import facebench_plugins.detectors._area as area

    image = np.full((30, 40, 3), 255, np.uint8)
    monkeypatch.setattr(area, "_INT32_SAFE", 100)
    table = area.IntegralTable([image])
    assert table.dtype == np.float64
    assert np.array_equal(table.resize(0, 7, 9), _torch_area(image, (7, 9)))


def _torch_candidates(reg, prob, scale, threshold):
    """facenet-pytorch's generateBoundingBox, as (K, 9) boxes and image indices."""
    mask = prob >= threshold
    idx = mask.nonzero()
    xy = idx[:, [2, 1]].to(reg.dtype)
    q1 = ((2 * xy + 1) / scale).floor()
    q2 = ((2 * xy + 12) / scale).floor()
    boxes = torch.cat([q1, q2, prob[mask][:, None], reg.permute(0, 2, 3, 1)[mask]], dim=1)
    return boxes.numpy(), idx[:, 0].numpy()


@pytest.mark.parametrize("scale", [0.6 * 0.709 ** k for k in range(10)] + [0.0123, 1 / 3])
def test_candidates_equal_the_torch_formulation(scale):
    g = torch.Generator().manual_seed(int(scale * 1e6))
    reg, prob = torch.randn(3, 4, 61, 77, generator=g), torch.rand(3, 61, 77, generator=g)
    boxes, image = MTCNN._candidates(reg, prob, scale, 0.6)
    want_boxes, want_image = _torch_candidates(reg, prob, scale, 0.6)
    assert len(boxes) > 0
    assert np.array_equal(boxes, want_boxes) and np.array_equal(image, want_image)
    empty, none = MTCNN._candidates(reg, prob * 0, scale, 0.6)
    assert empty.shape == (0, 9) and none.shape == (0,)


def test_fused_pnet_heads_equal_separate_convolutions():
    torch.manual_seed(0)
    net = PNet().eval()
    x = torch.randn(2, 3, 37, 51)
    with torch.inference_mode():
        reg, prob = net(x)
        h = net.prelu3(net.conv3(net.prelu2(net.conv2(F.max_pool2d(net.prelu1(net.conv1(x)), 2, 2, ceil_mode=True)))))
        assert torch.equal(reg, net.conv4_2(h))
        assert torch.equal(prob, torch.softmax(net.conv4_1(h), dim=1))


def test_batches_equal_one_image_at_a_time():
    from tests.conftest import need_data

    import cv2

    lfw = need_data("lfw_home/lfw_funneled")
    paths = sorted(lfw.glob("*/*.jpg"))[:10]
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    images[3] = np.ascontiguousarray(images[3][20:230, 10:200])  # a different size in the batch
    images[7] = np.ascontiguousarray(images[7][:, ::-1])
    det = MTCNN()
    one = [det.detect(im) for im in images]
    batch = det.detect_batch(images)
    assert sum(len(d) for d in one) >= 8
    for a, b in zip(one, batch):
        assert len(a) == len(b)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)


def test_images_too_small_for_the_pyramid_give_no_faces_alone_and_in_a_batch():
    from tests.conftest import need_data

    import cv2

    face = cv2.cvtColor(cv2.imread(str(need_data("images/multiface.jpg"))), cv2.COLOR_BGR2RGB)
    det = MTCNN()
    tiny, thin = np.full((8, 8, 3), 128, np.uint8), np.zeros((11, 300, 3), np.uint8)
    assert len(det.detect(tiny)) == 0 and len(det.detect(thin)) == 0
    out = det.detect_batch([tiny, face, thin, face])
    assert [len(d) for d in out] == [0, len(det.detect(face)), 0, len(det.detect(face))]
    assert len(out[1]) >= 6
    assert det.detect_batch([]) == []
