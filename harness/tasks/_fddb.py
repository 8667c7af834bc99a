"""The FDDB discrete ROC of a detection run, with intervals from a bootstrap over images.

Rule (Jain & Learned-Miller, "FDDB: A Benchmark for Face Detection in Unconstrained
Settings", UMass TR UM-CS-2010-009, 2010), as :func:`harness.metrics.detection.fddb_discrete_roc`
implements it: in each image, the detections at or above a score threshold are matched one to
one to the ground-truth ellipses by maximum total overlap (Hungarian); the overlap of a pair is
the intersection over union of the detection box's and the ellipse's pixel regions; a matched
pair whose overlap is above 0.5 is a true positive, every other detection a false positive.
Over the set, each threshold gives a point (false positives, true positives / faces); the
headline reads the true-positive rate at the most lenient threshold with at most N false
positives (N = 100, 500, 1000).

The curve is assembled here from per-image events -- the change in true and false positives
of each image at each of its score levels, from the same matching -- so a bootstrap replicate
(images drawn with replacement) is a weighted sum of events, not a new matching.  With every
weight 1 the assembly is exactly :func:`~harness.metrics.detection.fddb_discrete_roc` on the
whole set (tested).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

__all__ = ["FP_POINTS", "OVERLAP", "RULE", "ImageEvents", "image_events", "intervals", "roc"]

OVERLAP = 0.5
FP_POINTS = (100, 500, 1000)
RULE = ("FDDB discrete ROC (Jain & Learned-Miller 2010): per image, detections at or above each score threshold "
        "matched one-to-one to the ground-truth ellipses by maximum total overlap (Hungarian); overlap = "
        "intersection over union of the detection box's and the ellipse's pixel regions; a matched pair with "
        f"overlap > {OVERLAP} is a true positive, every other detection a false positive; TPR = true positives / "
        "faces, read at the most lenient threshold with at most N false positives")
_ROWS = 64  # replicates per cumulative-sum block: bounds memory to _ROWS x events floats


@dataclass(frozen=True)
class ImageEvents:
    """Per-image steps of the ROC, in one array each: the score level, the image it belongs to,
    and the change in true / false positives when the threshold drops to that level."""

    score: np.ndarray
    image: np.ndarray
    d_tp: np.ndarray
    d_fp: np.ndarray
    faces: np.ndarray  # (images,) ground-truth faces of each image

    @property
    def n_images(self) -> int:
        return int(self.faces.size)


def _one_image(key: str, d: np.ndarray, ell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from harness.metrics.detection import fddb_discrete_roc

    if len(d) == 0:
        return np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64)
    if len(ell) == 0:  # no face: every detection is false, counted at its own score level
        levels, counts = np.unique(d[:, 4], return_counts=True)
        return levels[::-1], np.zeros(levels.size, np.int64), counts[::-1].astype(np.int64)
    r = fddb_discrete_roc({key: d}, {key: ell}, overlap=OVERLAP)
    return (r.thresholds, np.diff(r.true_positives, prepend=0).astype(np.int64),
            np.diff(r.false_positives, prepend=0).astype(np.int64))


def image_events(preds: Mapping[str, Any], ellipses: Mapping[str, np.ndarray]) -> ImageEvents:
    """The events of every image of ``ellipses`` (image key -> (M, 5) ellipses); ``preds``:
    image key -> (N, 5) x1, y1, x2, y2, score (an image without an entry has no detection)."""
    scores, images, dtp, dfp = [], [], [], []
    faces = np.zeros(len(ellipses), np.int64)
    for i, (key, ell) in enumerate(ellipses.items()):
        ell = np.asarray(ell, np.float64).reshape(-1, 5)
        faces[i] = len(ell)
        d = np.asarray(preds.get(key, np.zeros((0, 5))), np.float64).reshape(-1, 5)
        s, t, f = _one_image(key, d, ell)
        scores.append(s)
        images.append(np.full(s.size, i, np.int64))
        dtp.append(t)
        dfp.append(f)
    s = _cat(scores, np.float64)
    order = np.argsort(-s, kind="stable")
    return ImageEvents(s[order], _cat(images, np.int64)[order], _cat(dtp, np.int64)[order],
                       _cat(dfp, np.int64)[order], faces)


def _cat(parts: list, dtype: Any) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _group_ends(score: np.ndarray) -> np.ndarray:
    """Indices of the last event of each distinct score (scores sorted descending)."""
    return np.flatnonzero(np.r_[score[1:] != score[:-1], True]) if score.size else np.zeros(0, np.int64)


def roc(ev: ImageEvents) -> Any:
    """The set's :class:`~harness.metrics.detection.FddbRoc` from the events."""
    from harness.metrics.detection import FddbRoc

    ends = _group_ends(ev.score)
    tp, fp = np.cumsum(ev.d_tp)[ends], np.cumsum(ev.d_fp)[ends]
    return FddbRoc(ev.score[ends], tp.astype(np.int64), fp.astype(np.int64), int(ev.faces.sum()))


def _tpr_at_fp(ev: ImageEvents, w: np.ndarray, n_fp: int) -> np.ndarray:
    """(replicates,) TPR at ``n_fp`` false positives with image weights ``w`` (replicates, images);
    with all-ones weights it equals ``roc(ev).tpr_at_fp(n_fp)``."""
    ends = _group_ends(ev.score)
    out = np.empty(w.shape[0])
    for a in range(0, w.shape[0], _ROWS):
        wf = w[a:a + _ROWS].astype(np.float64)
        we = wf[:, ev.image]
        tp = np.cumsum(we * ev.d_tp, axis=1)[:, ends]
        fp = np.cumsum(we * ev.d_fp, axis=1)[:, ends]  # non-decreasing along each row
        n = np.count_nonzero(fp <= n_fp, axis=1)
        hit = np.where(n > 0, tp[np.arange(len(wf)), np.maximum(n - 1, 0)], 0.0) if ends.size else np.zeros(len(wf))
        faces = wf @ ev.faces
        with np.errstate(divide="ignore", invalid="ignore"):
            out[a:a + len(wf)] = np.where(faces > 0, hit / faces, np.nan)
    return out


def intervals(spec: Any, metrics: list[dict], ev: ImageEvents, names: Mapping[int, str]) -> dict:
    """Attach a bootstrap-over-images interval to each ``fddb_tpr_at_fp_<N>`` record in
    ``metrics`` (``names``: N -> metric name); returns the statement for ``sections.intervals``.
    Every point uses the same image draws (one seed)."""
    from harness.metrics._checks import MetricInputError
    from harness.metrics.uncertainty import Design, attach_by_name, bootstrap, pair_design
    from harness.tasks import _intervals

    cfg = _intervals.settings_of(spec)
    if not cfg.enabled:
        return {"B": 0, "note": "off (intervals.bootstrap: 0)"}
    seed = getattr(spec, "seed", 0)
    kw = cfg.kwargs(seed)
    kw.pop("binomial")
    if ev.n_images == 0:
        return {"B": 0, "note": "not computed: no image"}
    base = pair_design(ev.n_images)
    design = Design("images", base.unit_a, base.unit_b, base.stratum, True)
    ivs = {}
    for n_fp, name in names.items():
        try:
            ivs[name] = bootstrap(lambda w, n_fp=n_fp: _tpr_at_fp(ev, w, n_fp), design, **kw)
        except MetricInputError:  # undefined in every resample: the record keeps no interval
            continue
    attach_by_name(metrics, ivs)
    return _intervals._statement(cfg, seed, "images",
                                 note="images drawn with replacement; each image's matching is kept, "
                                      "its true and false positives counted as often as it is drawn")
