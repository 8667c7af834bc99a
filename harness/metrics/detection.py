"""Face detection metrics: IoU, WIDER FACE average precision, FDDB discrete ROC.

Boxes are ``(x1, y1, x2, y2)`` in pixels unless stated otherwise.

WIDER FACE (:func:`wider_ap`) follows the official evaluation (the MATLAB
toolbox and its Python port used by RetinaFace and others):

* prediction scores are min-max normalised over the whole set;
* in each image, predictions sorted by descending score are matched in that
  order: a prediction whose best-overlapping ground truth (IoU with the
  +1-pixel convention, ``>= iou_threshold``) is *not* in the setting's
  keep-list is discarded (neither TP nor FP); one whose best ground truth is
  kept recalls it the first time;
* precision / recall on 1,000 score thresholds ``1 - (t+1)/1000``; AP is the
  VOC area with monotone precision;
* every kept face of every image counts toward recall, also in images with no
  prediction.

One departure: where the reference divides 0 by 0 (no counted proposal above
a threshold) it yields NaN and a NaN AP; here that precision is 0.

FDDB (:func:`fddb_discrete_roc`): detections are matched one-to-one to the
ground-truth ellipses maximising total overlap (Hungarian); a match counts as
a true positive when its overlap (intersection over union of pixel regions)
is ``> 0.5`` ("discrete score").  The curve gives, at each detection-score
threshold, the true positives (and rate) against the number of false
positives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from harness.errors import DataError
from harness.metrics._checks import MetricInputError

__all__ = [
    "FddbRoc",
    "WiderGroundTruth",
    "fddb_discrete_roc",
    "iou",
    "load_fddb_folds",
    "load_wider_ground_truth",
    "voc_ap",
    "wider_ap",
    "wider_image_eval",
]

SETTINGS = ("easy", "medium", "hard")


def _boxes(b: object, name: str) -> np.ndarray:
    a = np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return a.reshape(0, 4)
    if a.ndim != 2 or a.shape[1] < 4:
        raise MetricInputError(f"{name}: has shape {a.shape}; expected (N, 4) boxes x1, y1, x2, y2")
    if not np.isfinite(a[:, :4]).all():
        raise MetricInputError(f"{name}: contains NaN or infinite coordinates")
    return a[:, :4]


def iou(boxes_a: object, boxes_b: object, *, pixel_inclusive: bool = False) -> np.ndarray:
    """Pairwise intersection over union, shape (len(a), len(b)).

    ``pixel_inclusive=True`` counts ``x2 - x1 + 1`` pixels per side, the
    convention of the WIDER FACE and PASCAL VOC evaluation code.
    """
    a = _boxes(boxes_a, "boxes_a")
    b = _boxes(boxes_b, "boxes_b")
    one = 1.0 if pixel_inclusive else 0.0
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + one
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + one
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(union > 0, inter / union, 0.0)
    if pixel_inclusive:
        # the reference leaves a non-overlapping pair at 0 (iw or ih <= 0)
        out = np.where((iw > 0) & (ih > 0), out, 0.0)
    return out


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC area under the precision-recall curve with monotone precision."""
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def wider_image_eval(pred_boxes: np.ndarray, gt_boxes: np.ndarray, keep: np.ndarray,
                     iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """One image of the WIDER evaluation, predictions already sorted by score.

    :returns: ``(pred_recall, proposal)``: kept faces recalled by the first
        h+1 predictions, and 1 for a counted proposal / -1 for a discarded one.
    """
    n = len(pred_boxes)
    proposal = np.ones(n)
    if n == 0 or len(gt_boxes) == 0:
        return np.zeros(n), proposal
    ov = iou(pred_boxes, gt_boxes, pixel_inclusive=True)
    best = ov.argmax(axis=1)
    hit = ov[np.arange(n), best] >= iou_threshold
    kept_hit = hit & keep[best]
    proposal[hit & ~keep[best]] = -1
    first = np.zeros(n, dtype=bool)
    idx = np.flatnonzero(kept_hit)
    if idx.size:
        _, first_pos = np.unique(best[idx], return_index=True)
        first[idx[first_pos]] = True
    return np.cumsum(first).astype(np.float64), proposal


@dataclass(frozen=True)
class WiderGroundTruth:
    """WIDER FACE ground truth: per image key ``event/name`` (no extension),
    boxes (x1, y1, x2, y2) and keep masks per setting."""

    boxes: dict
    keep: dict  # setting -> {key: bool mask}

    def keys(self) -> list[str]:
        return list(self.boxes)


def load_wider_ground_truth(folder: str | Path) -> WiderGroundTruth:
    """Read ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``."""
    from scipy.io import loadmat

    folder = Path(folder)
    try:
        main = loadmat(str(folder / "wider_face_val.mat"))
        sets = {s: loadmat(str(folder / f"wider_{s}_val.mat"))["gt_list"] for s in SETTINGS}
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"{folder}: cannot read the WIDER FACE val ground truth ({exc}); expected "
                        "wider_face_val.mat and wider_easy/medium/hard_val.mat") from None
    boxes, keep = {}, {s: {} for s in SETTINGS}
    for i in range(len(main["event_list"])):
        event = str(main["event_list"][i][0][0])
        files = main["file_list"][i][0]
        bbx = main["face_bbx_list"][i][0]
        for j in range(len(files)):
            key = f"{event}/{files[j][0][0]}"
            xywh = np.asarray(bbx[j][0], dtype=np.float64).reshape(-1, 4)
            boxes[key] = np.column_stack([xywh[:, :2], xywh[:, :2] + xywh[:, 2:4]])
            for s in SETTINGS:
                idx = np.asarray(sets[s][i][0][j][0], dtype=np.int64).reshape(-1)
                m = np.zeros(len(xywh), dtype=bool)
                m[idx - 1] = True
                keep[s][key] = m
    return WiderGroundTruth(boxes, keep)


def wider_ap(
    predictions: Mapping[str, object],
    gt_boxes: Mapping[str, np.ndarray],
    keep: Mapping[str, np.ndarray],
    *,
    iou_threshold: float = 0.5,
    thresh_num: int = 1000,
) -> tuple[float, np.ndarray, np.ndarray]:
    """WIDER FACE AP for one setting.

    :param predictions: image key -> (N, 5) array x1, y1, x2, y2, score (any
        order; sorted here by descending score, stably).  Missing keys mean
        no detection.
    :param gt_boxes: image key -> (M, 4) ground truth x1, y1, x2, y2.
    :param keep: image key -> (M,) bool, the setting's keep-list.
    :returns: ``(ap, precision, recall)`` over the ``thresh_num`` thresholds.
    """
    unknown = set(predictions) - set(gt_boxes)
    if unknown:
        raise MetricInputError(f"predictions: {len(unknown)} image key(s) not in the ground truth, "
                               f"e.g. {sorted(unknown)[0]!r}")
    preds = {}
    all_scores = []
    for k, p in predictions.items():
        a = np.asarray(p, dtype=np.float64).reshape(-1, 5) if np.size(p) else np.zeros((0, 5))
        if not np.isfinite(a).all():
            raise MetricInputError(f"predictions[{k!r}]: contains NaN or infinite values")
        preds[k] = a
        all_scores.append(a[:, 4])
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    lo, hi = (scores.min(), scores.max()) if scores.size else (0.0, 1.0)
    if scores.size and hi == lo:
        raise MetricInputError("predictions: every score is equal; the WIDER evaluation min-max "
                               "normalises scores and needs at least two distinct values")
    thresholds = 1 - (np.arange(thresh_num) + 1) / thresh_num
    pr = np.zeros((thresh_num, 2))
    count_face = 0
    for key, gt in gt_boxes.items():
        kp = np.asarray(keep[key], dtype=bool)
        count_face += int(kp.sum())
        p = preds.get(key)
        if p is None or len(p) == 0 or len(gt) == 0:
            continue
        order = np.argsort(-p[:, 4], kind="stable")
        p = p[order]
        score = (p[:, 4] - lo) / (hi - lo)
        pred_recall, proposal = wider_image_eval(p[:, :4], np.asarray(gt, dtype=np.float64), kp, iou_threshold)
        # r_index = last prediction with score >= threshold (sorted descending)
        n_above = np.searchsorted(-score, -thresholds, side="right")
        has = n_above > 0
        r = n_above[has] - 1
        cum_prop = np.cumsum(proposal == 1)
        pr[has, 0] += cum_prop[r]
        pr[has, 1] += pred_recall[r]
    if count_face == 0:
        raise MetricInputError("keep: no face is kept in this setting; AP is undefined")
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pr[:, 0] > 0, pr[:, 1] / pr[:, 0], 0.0)
    recall = pr[:, 1] / count_face
    return voc_ap(recall, precision), precision, recall


# -- FDDB ---------------------------------------------------------------------
def load_fddb_folds(folder: str | Path) -> dict[str, np.ndarray]:
    """Read ``FDDB-fold-XX-ellipseList.txt``: image path -> (M, 5) ellipses
    ``major_radius, minor_radius, angle, center_x, center_y``."""
    folder = Path(folder)
    files = sorted(folder.glob("FDDB-fold-*-ellipseList.txt"))
    if not files:
        raise DataError(f"{folder}: no FDDB-fold-XX-ellipseList.txt files; expected the FDDB-folds folder")
    out: dict[str, np.ndarray] = {}
    for f in files:
        lines = [ln.strip() for ln in f.read_text().splitlines()]
        i = 0
        while i < len(lines):
            if not lines[i]:
                i += 1
                continue
            path = lines[i]
            try:
                n = int(lines[i + 1])
                rows = [list(map(float, lines[i + 2 + j].split()[:5])) for j in range(n)]
            except (IndexError, ValueError) as exc:
                raise DataError(f"{f}:{i + 2}: malformed FDDB entry for {path!r} ({exc})") from None
            out[path] = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
            i += 2 + n
    return out


def _ellipse_mask(e: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    ra, rb, theta, cx, cy = e
    ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w]
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    c, s = np.cos(theta), np.sin(theta)
    u = dx * c + dy * s
    v = -dx * s + dy * c
    return (u / ra) ** 2 + (v / rb) ** 2 <= 1.0


def _ellipse_box(e: np.ndarray) -> np.ndarray:
    ra, rb, theta, cx, cy = e
    hx = np.sqrt((ra * np.cos(theta)) ** 2 + (rb * np.sin(theta)) ** 2)
    hy = np.sqrt((ra * np.sin(theta)) ** 2 + (rb * np.cos(theta)) ** 2)
    return np.array([cx - hx, cy - hy, cx + hx, cy + hy])


def ellipse_box_overlap(ellipses: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Pixel-region IoU between ellipses (M, 5) and boxes (N, 4): (M, N).

    Regions are rasterised on the pixel grid (a pixel belongs to a region
    when its centre does), as FDDB's evaluation compares pixel regions.
    """
    m, n = len(ellipses), len(boxes)
    out = np.zeros((m, n))
    for i, e in enumerate(ellipses):
        eb = _ellipse_box(e)
        for j, b in enumerate(boxes):
            x0 = int(np.floor(min(eb[0], b[0])))
            y0 = int(np.floor(min(eb[1], b[1])))
            x1 = int(np.ceil(max(eb[2], b[2])))
            y1 = int(np.ceil(max(eb[3], b[3])))
            if min(eb[2], b[2]) < max(eb[0], b[0]) or min(eb[3], b[3]) < max(eb[1], b[1]):
                continue
            w, h = x1 - x0 + 1, y1 - y0 + 1
            em = _ellipse_mask(e, x0, y0, w, h)
            ys, xs = np.mgrid[y0 : y0 + h, x0 : x0 + w]
            bm = (xs + 0.5 >= b[0]) & (xs + 0.5 <= b[2]) & (ys + 0.5 >= b[1]) & (ys + 0.5 <= b[3])
            union = np.count_nonzero(em | bm)
            out[i, j] = np.count_nonzero(em & bm) / union if union else 0.0
    return out


@dataclass(frozen=True)
class FddbRoc:
    """FDDB discrete ROC: at each threshold (descending detection scores),
    ``true_positives``, ``false_positives`` and ``tpr = TP / n_faces``."""

    thresholds: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    n_faces: int

    @property
    def tpr(self) -> np.ndarray:
        return self.true_positives / self.n_faces

    def tpr_at_fp(self, n_fp: int) -> float:
        """TP rate at the most lenient threshold with at most ``n_fp`` false positives."""
        ok = np.flatnonzero(self.false_positives <= n_fp)
        return float(self.tpr[ok[-1]]) if ok.size else 0.0


def fddb_discrete_roc(detections: Mapping[str, object], ellipses: Mapping[str, np.ndarray],
                      *, overlap: float = 0.5) -> FddbRoc:
    """FDDB discrete ROC.

    :param detections: image path -> (N, 5) x1, y1, x2, y2, score.
    :param ellipses: image path -> (M, 5) ground-truth ellipses (see
        :func:`load_fddb_folds`); every image listed counts its faces.

    For each image and each of its score thresholds, detections at or above
    the threshold are matched to ellipses by maximum-weight bipartite
    matching on the overlap; a matched pair with overlap ``> overlap`` is a
    true positive, every other detection a false positive.
    """
    from scipy.optimize import linear_sum_assignment

    unknown = set(detections) - set(ellipses)
    if unknown:
        raise MetricInputError(f"detections: {len(unknown)} image(s) not in the ground truth, "
                               f"e.g. {sorted(unknown)[0]!r}")
    n_faces = int(sum(len(e) for e in ellipses.values()))
    if n_faces == 0:
        raise MetricInputError("ellipses: no ground-truth face; the ROC is undefined")
    ev_scores, ev_dtp, ev_dfp = [], [], []
    for key, d in detections.items():
        d = np.asarray(d, dtype=np.float64).reshape(-1, 5) if np.size(d) else np.zeros((0, 5))
        if len(d) == 0:
            continue
        if not np.isfinite(d).all():
            raise MetricInputError(f"detections[{key!r}]: contains NaN or infinite values")
        d = d[np.argsort(-d[:, 4], kind="stable")]
        ov = ellipse_box_overlap(np.asarray(ellipses[key]).reshape(-1, 5), d[:, :4])
        levels = np.unique(d[:, 4])[::-1]
        prev_tp, prev_n = 0, 0
        for t in levels:
            n = int(np.count_nonzero(d[:, 4] >= t))
            sub = ov[:, :n]
            if sub.size:
                r, c = linear_sum_assignment(sub, maximize=True)
                tp = int(np.count_nonzero(sub[r, c] > overlap))
            else:
                tp = 0
            ev_scores.append(t)
            ev_dtp.append(tp - prev_tp)
            ev_dfp.append((n - tp) - (prev_n - prev_tp))
            prev_tp, prev_n = tp, n
    if not ev_scores:
        return FddbRoc(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), n_faces)
    s = np.asarray(ev_scores)
    order = np.argsort(-s, kind="stable")
    s = s[order]
    tp = np.cumsum(np.asarray(ev_dtp)[order])
    fp = np.cumsum(np.asarray(ev_dfp)[order])
    last = np.r_[s[1:] != s[:-1], True]
    return FddbRoc(s[last], tp[last].astype(np.int64), fp[last].astype(np.int64), n_faces)
