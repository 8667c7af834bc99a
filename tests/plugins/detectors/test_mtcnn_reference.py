"""Our MTCNN against facenet-pytorch 2.6.0 running the same weights.

On the first 20 LFW images (sorted by path) and ``multiface.jpg``, one image
at a time: the same number of faces per image, every reference face matched
with IoU ≥ 0.9999 and landmarks within 0.01 px (the inputs of the three nets
are bit-equal to facenet-pytorch's; only convolution rounding differs).  (``benchmarks/bench_mtcnn.py``
does the same on 200 images and times both.)  facenet-pytorch needs
torchvision only for NMS and ``to_tensor``; see ``facenet_reference.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import need_data
from tests.plugins.detectors.facenet_reference import facenet_available, load_facenet_mtcnn, reference_detect

pytestmark = pytest.mark.skipif(
    not facenet_available(), reason="facenet-pytorch not installed (pip install --no-deps facenet-pytorch==2.6.0)"
)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def compare(ref, ours) -> tuple[float, float]:
    """(worst IoU of a matched reference face, worst landmark error in px)."""
    rb, _rs, rl = ref
    if len(rb) == 0:
        return 1.0, 0.0
    m = iou_matrix(rb, ours.boxes)
    j = m.argmax(1)
    return float(m.max(1).min()), float(np.abs(rl - ours.landmarks[j]).max())


def _rgb(path):
    import cv2

    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_agrees_with_facenet_pytorch():
    from harness.registry import Registry

    lfw = need_data("lfw_home/lfw_funneled")
    paths = sorted(lfw.glob("*/*.jpg"))[:20] + [need_data("images/multiface.jpg")]
    ours = Registry().build("detector", "mtcnn")
    ref = load_facenet_mtcnn()
    total_ref = total_ours = 0
    for path in paths:
        img = _rgb(path)
        r = reference_detect(ref, img)
        o = ours.detect(img)
        total_ref += len(r[0])
        total_ours += len(o)
        assert len(o) == len(r[0]), f"{path.name}: {len(o)} faces, facenet-pytorch {len(r[0])}"
        worst_iou, worst_lm = compare(r, o)
        assert worst_iou >= 0.9999, f"{path.name}: a face matched with IoU {worst_iou:.6f}"
        assert worst_lm <= 0.01, f"{path.name}: landmarks {worst_lm:.4f} px apart"
        np.testing.assert_allclose(np.sort(o.scores), np.sort(r[1]), atol=1e-5)
    assert total_ours == total_ref


@pytest.mark.parametrize("k", [2, 3])
def test_fast_ceil_max_pool_equals_torch(k):
    """MTCNN's pooling (strided maxima) is exactly F.max_pool2d(..., ceil_mode=True), odd sizes included."""
    import torch
    import torch.nn.functional as F

    from facebench_plugins.detectors.mtcnn import max_pool_ceil

    g = torch.Generator().manual_seed(k)
    for h in range(1, 30):
        for w in (1, k, k + 1, 10, 23, 48):
            x = torch.randn(2, 4, h, w, generator=g)
            if h < k or w < k:
                continue  # max_pool2d itself refuses inputs smaller than the kernel
            assert torch.equal(max_pool_ceil(x, k), F.max_pool2d(x, k, 2, ceil_mode=True)), (h, w)
    cl = torch.randn(1, 10, 37, 41, generator=g).contiguous(memory_format=torch.channels_last)
    assert torch.equal(max_pool_ceil(cl, k), F.max_pool2d(cl, k, 2, ceil_mode=True))
