"""Five-point face alignment: similarity transform to a named template.

A detector gives five landmarks per face — left eye, right eye, nose, left
and right mouth corner (image left/right, see :class:`harness.types.Detections`).
:func:`align` maps them onto a template's five points with the least-squares
similarity transform (rotation, uniform scale, translation; no reflection,
Umeyama 1991) and warps the image into the template's crop.

This module is floor 1: numpy only at import; OpenCV is imported inside the
functions that warp pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Mapping

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from harness.types import Detections

__all__ = [
    "TEMPLATES",
    "Template",
    "BOX_CROP_SCALE",
    "align",
    "box_crop",
    "choose_face",
    "face_crop",
    "fallback_crop",
    "get_template",
    "resize_to",
    "similarity_transform",
    "transform_points",
]


@dataclass(frozen=True)
class Template:
    """A crop size and where the five landmarks sit in it.

    :param name: registry-style name (``arcface_112``).
    :param size: (height, width) of the crop in pixels.
    :param points: (5, 2) x, y of left eye, right eye, nose, left and right
        mouth corner, in crop pixels.
    :param source: where the numbers come from.
    """

    name: str
    size: tuple[int, int]
    points: tuple[tuple[float, float], ...]
    source: str

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.points, dtype=np.float64)


_ARCFACE_POINTS = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)

#: The named templates.  SphereFace's 112×96 template is ArcFace's shifted
#: 8 px to the left (the two were defined on the same face geometry).
TEMPLATES: Mapping[str, Template] = {
    "arcface_112": Template(
        name="arcface_112",
        size=(112, 112),
        points=_ARCFACE_POINTS,
        source="insightface (deepinsight/insightface, python-package "
        "insightface/utils/face_align.py: arcface_dst), Deng et al. 2019",
    ),
    "sphereface_112x96": Template(
        name="sphereface_112x96",
        size=(112, 96),
        points=tuple((x - 8.0, y) for x, y in _ARCFACE_POINTS),
        source="SphereFace (wy1iu/sphereface, preprocess/code/face_align_demo.m: "
        "coord5points), Liu et al. 2017; also CosFace / MobileFaceNet 112×96 crops",
    ),
}


def get_template(template: str | Template) -> Template:
    """The :class:`Template` called ``template`` (or ``template`` itself).

    :raises KeyError: an unknown name, listing the known ones.
    """
    if isinstance(template, Template):
        return template
    try:
        return TEMPLATES[template]
    except KeyError:
        raise KeyError(
            f"unknown alignment template {template!r}; known templates: {', '.join(sorted(TEMPLATES))}"
        ) from None


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping ``src`` onto ``dst`` (Umeyama 1991).

    The transform has rotation, uniform scale and translation, and never
    reflects (a determinant correction flips the weakest singular direction
    when the best orthogonal fit would be a reflection) — the same estimate as
    ``skimage.transform.SimilarityTransform.estimate``.

    :param src: (N, 2) points, N ≥ 2.
    :param dst: (N, 2) points.
    :returns: (3, 3) homogeneous matrix ``T`` with ``dst ≈ (T @ [x, y, 1])[:2]``.
        If ``src`` is degenerate (all points equal) the result is all-NaN.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"expected two (N, 2) point arrays with N >= 2, got {src.shape} and {dst.shape}")
    n = len(src)
    src_mean = src.mean(axis=0)
    dst_mean = dst.mean(axis=0)
    src_c = src - src_mean
    dst_c = dst - dst_mean
    cov = dst_c.T @ src_c / n
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[1] = -1.0
    u, s, vt = np.linalg.svd(cov)
    rank = np.linalg.matrix_rank(cov)
    T = np.eye(3)
    if rank == 0:
        return np.full((3, 3), np.nan)
    if rank == 1:
        if np.linalg.det(u) * np.linalg.det(vt) > 0:
            rot = u @ vt
        else:
            s_last = d[1]
            d[1] = -1.0
            rot = u @ np.diag(d) @ vt
            d[1] = s_last
    else:
        rot = u @ np.diag(d) @ vt
    var_src = src_c.var(axis=0).sum()
    if var_src == 0:
        return np.full((3, 3), np.nan)
    scale = (s @ d) / var_src
    T[:2, :2] = scale * rot
    T[:2, 2] = dst_mean - scale * (rot @ src_mean)
    return T


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (3, 3) or (2, 3) affine ``matrix`` to (N, 2) ``points``."""
    m = np.asarray(matrix, dtype=np.float64)[:2]
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return p @ m[:, :2].T + m[:, 2]


def align(
    image: np.ndarray,
    landmarks: np.ndarray,
    template: str | Template = "arcface_112",
    *,
    border: Literal["constant", "replicate"] = "constant",
) -> np.ndarray:
    """Warp ``image`` so that ``landmarks`` land on ``template``'s five points.

    :param image: (H, W, 3) uint8 RGB (any channel count works).
    :param landmarks: (5, 2) x, y — left eye, right eye, nose, left and right
        mouth corner.
    :param template: a name in :data:`TEMPLATES` or a :class:`Template`.
    :param border: pixels outside the image are black (``constant``) or the
        edge repeated (``replicate``).
    :returns: the crop, (h, w, C) of the template's size, same dtype as ``image``.
    """
    import cv2

    tpl = get_template(template)
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if pts.shape != (5, 2):
        raise ValueError(f"align needs 5 landmarks (5, 2), got shape {np.shape(landmarks)}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("align got non-finite landmarks")
    matrix = similarity_transform(pts, tpl.array)
    if not np.all(np.isfinite(matrix)):
        raise ValueError("landmarks are degenerate (all at one point): cannot align")
    h, w = tpl.size
    mode = cv2.BORDER_CONSTANT if border == "constant" else cv2.BORDER_REPLICATE
    return cv2.warpAffine(
        np.ascontiguousarray(image), matrix[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0
    )


def choose_face(
    detections: "Detections",
    image_shape: tuple[int, ...],
    policy: Literal["center", "largest"] = "center",
) -> int | None:
    """Index of the face to use in an image that holds one subject.

    ``center`` picks the box whose centre is nearest the image centre (LFW
    centres its subject, so this avoids background faces; ties go to the
    larger box); ``largest`` picks the box of largest area (ties go to the
    higher score).

    :param detections: anything with ``boxes`` (N, 4) and ``scores`` (N,).
    :param image_shape: ``image.shape`` (H, W, ...).
    :returns: an index into the detections, or ``None`` when there are none.
    """
    boxes = np.asarray(detections.boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    scores = np.asarray(detections.scores, dtype=np.float64).reshape(-1)
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    if policy == "largest":
        order = np.lexsort((-scores, -area))
        return int(order[0])
    if policy == "center":
        h, w = image_shape[0], image_shape[1]
        cx = (boxes[:, 0] + boxes[:, 2]) / 2.0
        cy = (boxes[:, 1] + boxes[:, 3]) / 2.0
        dist = np.hypot(cx - w / 2.0, cy - h / 2.0)
        order = np.lexsort((-area, dist))
        return int(order[0])
    raise ValueError(f"unknown face policy {policy!r}; expected 'center' or 'largest'")


def fallback_crop(
    image: np.ndarray, template: str | Template = "arcface_112", *, fraction: float = 0.5
) -> np.ndarray:
    """A centre crop resized to ``template``'s size, for images with no detected face.

    The crop has the template's aspect ratio; its height is ``fraction`` of
    the shorter side's worth, centred (0.5 of a 250×250 LFW image is the
    central 125×125, which holds the subject's face in the funneled set).
    The caller must flag and count such images.

    :returns: (h, w, C) array of the template's size, same dtype as ``image``.
    """
    import cv2

    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    tpl = get_template(template)
    th, tw = tpl.size
    H, W = image.shape[:2]
    ch = fraction * min(H, W * th / tw)
    cw = ch * tw / th
    x1 = (W - cw) / 2.0
    y1 = (H - ch) / 2.0
    matrix = np.array([[tw / cw, 0.0, -x1 * tw / cw], [0.0, th / ch, -y1 * th / ch]])
    return cv2.warpAffine(
        np.ascontiguousarray(image), matrix, (tw, th), flags=cv2.INTER_AREA if cw > tw else cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )


# ------------------------------------------------------- the one face crop
BOX_CROP_SCALE = 1.3
"""Side of a box-only crop as a multiple of the box's longer side."""


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (H, W): area averaging when shrinking,
    bilinear when enlarging; returned as is when it already has that size."""
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image
    import cv2

    interp = cv2.INTER_AREA if image.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (w, h), interpolation=interp)


def box_crop(
    image: np.ndarray, box: np.ndarray, size: tuple[int, int], *, scale: float = BOX_CROP_SCALE
) -> np.ndarray:
    """The crop around a detector's box, for detectors without landmarks.

    A square of ``scale`` × the box's longer side, centred on the box, warped
    to ``size`` (H, W); pixels outside the image are black.

    :param box: x1, y1, x2, y2 in image pixels.
    """
    import cv2

    x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    side = max(x2 - x1, y2 - y1, 1e-6) * scale
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    h, w = int(size[0]), int(size[1])
    sx, sy = w / side, h / side
    matrix = np.array([[sx, 0.0, w / 2.0 - cx * sx], [0.0, sy, h / 2.0 - cy * sy]], np.float64)
    return cv2.warpAffine(np.ascontiguousarray(image), matrix, (w, h), flags=cv2.INTER_LINEAR)


def face_crop(
    image: np.ndarray,
    size: tuple[int, int],
    template: str | Template = "arcface_112",
    *,
    landmarks: np.ndarray | None = None,
    box: np.ndarray | None = None,
) -> np.ndarray | None:
    """The crop of one detected face, the same for every tool (evaluation,
    ``harness data``): five finite landmarks → :func:`align` to ``template``;
    a box only → :func:`box_crop`; then resized to ``size`` (H, W).

    :returns: the crop, or ``None`` when neither landmarks nor a box are
        given (the caller falls back to :func:`fallback_crop` and flags it).
    """
    if landmarks is not None and np.all(np.isfinite(np.asarray(landmarks, dtype=np.float64))):
        return resize_to(align(image, landmarks, template), size)
    if box is not None:
        return box_crop(image, box, size)
    return None
