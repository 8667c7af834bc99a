"""facenet-pytorch's MTCNN as a reference, importable without torchvision.

facenet-pytorch 2.6.0 (``pip install --no-deps facenet-pytorch==2.6.0``)
imports ``torchvision.transforms.functional`` (only for ``to_tensor`` in face
extraction) and ``torchvision.ops.boxes.batched_nms``.  PyPI torchvision does
not import beside the CPU torch build used here, so — only inside the test or
benchmark process that calls :func:`load_facenet_mtcnn`, and only when
torchvision itself is missing — a minimal stand-in module is put in
``sys.modules`` providing exactly those two functions with torchvision's
semantics (greedy NMS, highest score first, drop IoU > threshold, boxes of
different ``idxs`` never suppress each other).  Nothing else is patched.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np

__all__ = ["facenet_available", "load_facenet_mtcnn", "reference_detect"]


def facenet_available() -> bool:
    return importlib.util.find_spec("facenet_pytorch") is not None


def _nms(boxes, scores, iou_threshold):
    import torch

    b = boxes.detach().cpu().numpy().astype(np.float64)
    s = scores.detach().cpu().numpy()
    order = np.argsort(-s, kind="stable")
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        ww = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        hh = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = ww * hh
        order = rest[inter / (area[i] + area[rest] - inter) <= iou_threshold]
    return torch.as_tensor(np.asarray(keep, np.int64))


def _batched_nms(boxes, scores, idxs, iou_threshold):
    import torch

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return _nms(boxes + offsets[:, None], scores, iou_threshold)


def _to_tensor(pic):
    import torch

    arr = np.asarray(pic)
    t = torch.as_tensor(arr).permute(2, 0, 1).contiguous()
    return t.float().div(255) if arr.dtype == np.uint8 else t.float()


def _install_torchvision_stand_in() -> None:
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        return
    tv = types.ModuleType("torchvision")
    tv.__facebench_stand_in__ = True
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.to_tensor = _to_tensor
    ops = types.ModuleType("torchvision.ops")
    boxes = types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms = _batched_nms
    boxes.nms = _nms
    ops.boxes = boxes
    transforms.functional = functional
    tv.transforms, tv.ops = transforms, ops
    for name, mod in {
        "torchvision": tv, "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional, "torchvision.ops": ops,
        "torchvision.ops.boxes": boxes,
    }.items():
        sys.modules[name] = mod


def load_facenet_mtcnn(**kwargs):
    """facenet-pytorch's ``MTCNN(keep_all=True, **kwargs)`` on CPU."""
    _install_torchvision_stand_in()
    from facenet_pytorch import MTCNN

    return MTCNN(keep_all=True, device="cpu", **kwargs)


def reference_detect(mtcnn, image: np.ndarray):
    """(boxes (N, 4), scores (N,), landmarks (N, 5, 2)) from facenet-pytorch for one RGB image."""
    boxes, probs, points = mtcnn.detect(image, landmarks=True)
    if boxes is None:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
    return (np.asarray(boxes, np.float32), np.asarray(probs, np.float32),
            np.asarray(points, np.float32))
