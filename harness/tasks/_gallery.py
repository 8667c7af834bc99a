"""Evidence a verification run keeps from its images, beyond the scores.

:func:`run_evidence` is called once by the recognition task with the
first evaluation set, its pair scores and the embeddings, and returns
results.json sections:

* ``failure_gallery``: the hardest false accepts (highest-scoring impostor
  pairs) and false rejects (lowest-scoring genuine pairs) at the operating
  threshold, and the images where detection fell back to a centre crop --
  each as a small JPEG data URI of the **aligned crop that was embedded**,
  so the page stays one offline file (total size capped by
  :data:`MAX_GALLERY_BYTES`).
* ``quality``: error-versus-reject curves (:mod:`harness.metrics.quality`)
  of the quality signals the pipeline has: detected face size, crop
  sharpness and embedding norm.
* ``demographics``: with ``--groups FILE.csv``, differentials at one
  global threshold (:mod:`harness.metrics.demographics`).

The liveness task calls :func:`liveness_gallery` for its own
``failure_gallery``: the attacks scored most like bona fide and the bona
fide presentations scored most like attacks.  The detection task calls
:func:`detection_gallery`: the images with the most missed and false faces
at the best-F1 threshold, the boxes drawn on them.
"""

from __future__ import annotations

import base64
import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from harness.config import RunSpec
    from harness.tasks import TaskContext

__all__ = ["GALLERY_N", "MAX_GALLERY_BYTES", "detection_gallery", "evidence_fmr_target", "face_rows",
           "failure_gallery", "liveness_gallery", "quality_signals", "run_evidence", "thumbnail_uri"]

GALLERY_N = 8
THUMB_PX = 72
JPEG_QUALITY = 70
#: Data-URI characters the whole gallery may add to a page.
MAX_GALLERY_BYTES = 400_000
#: FMR target of the demographic and quality analyses, when the impostor pairs can measure it.
FMR_TARGET = 1e-3
#: Impostor errors the chosen FMR target must leave room for.
MIN_FALSE_MATCHES = 10


def evidence_fmr_target(n_impostor: int) -> float:
    """:data:`FMR_TARGET`, or the smallest power of ten that allows
    :data:`MIN_FALSE_MATCHES` false matches among ``n_impostor`` pairs
    (LFW View 2, 3,000 impostors: 1e-2; one fold, 300: 1e-1)."""
    need = MIN_FALSE_MATCHES / max(int(n_impostor), 1)
    return min(1.0, max(FMR_TARGET, 10.0 ** math.ceil(math.log10(need) - 1e-12)))


def thumbnail_uri(crop: np.ndarray, px: int = THUMB_PX, quality: int = JPEG_QUALITY) -> str:
    """A ``data:image/jpeg;base64,…`` URI of ``crop`` with its longer side ``px``."""
    from harness.align import resize_to
    from harness.formats.images import encode_image

    img = np.asarray(crop)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    h, w = img.shape[:2]
    scale = px / max(h, w)
    if scale < 1:
        img = resize_to(img, (max(1, round(h * scale)), max(1, round(w * scale))))
    return "data:image/jpeg;base64," + base64.b64encode(encode_image(img, ".jpg", quality)).decode("ascii")


def _file_label(key: str) -> str:
    """The last two parts of an image key (``Aaron_Peirsol/Aaron_Peirsol_0001.jpg``)."""
    parts = str(key).replace("\\", "/").rstrip("/").split("/")
    return "/".join(parts[-2:])


class _Thumbs:
    """Thumbnails under one byte budget; each image encoded once."""

    def __init__(self, ev: Any, max_bytes: int) -> None:
        self.ev, self.max_bytes, self.used, self.cache = ev, max_bytes, 0, {}
        self.truncated = False

    def image(self, pos: int) -> dict[str, Any] | None:
        ev = self.ev
        if pos not in self.cache:
            uri = thumbnail_uri(ev.crops[pos])
            if self.used + len(uri) > self.max_bytes:
                self.truncated = True
                return None
            self.used += len(uri)
            key = ev.pairs.images.keys[int(ev.uniq[pos])]
            self.cache[pos] = {"file": _file_label(key), "uri": uri, "fallback": bool(ev.fallback[pos])}
        return self.cache[pos]


def operating_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, str]:
    """The EER threshold (FAR = FRR), the operating point a gallery of errors reads best at."""
    from harness.metrics.verification import Roc

    _eer, t = Roc(scores, labels).eer()
    return float(t), "EER threshold (FAR = FRR); accepted when score >= threshold"


def failure_gallery(ev: Any, scores: np.ndarray, *, n: int = GALLERY_N,
                    max_bytes: int = MAX_GALLERY_BYTES) -> dict[str, Any]:
    """The ``n`` hardest false accepts and false rejects, and fallback images, as thumbnails."""
    y = ev.pairs.issame.astype(bool)
    t, rule = operating_threshold(scores, y)
    a, b = ev.rows()
    fa = np.flatnonzero(~y & (scores >= t))
    fr = np.flatnonzero(y & (scores < t))
    fa = fa[np.argsort(-scores[fa], kind="stable")]
    fr = fr[np.argsort(scores[fr], kind="stable")]
    thumbs = _Thumbs(ev, max_bytes)

    def pairs(idx: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for i in idx[:n]:
            ia, ib = thumbs.image(int(a[i])), thumbs.image(int(b[i]))
            if ia is None or ib is None:
                break
            out.append({"score": float(scores[i]), "fold": int(ev.pairs.folds[i]), "a": ia, "b": ib})
        return out

    gallery = {"threshold": t, "rule": rule, "false_accepts": pairs(fa), "false_rejects": pairs(fr),
               "fallbacks": []}
    for pos in np.flatnonzero(ev.fallback)[:n]:
        img = thumbs.image(int(pos))
        if img is None:
            break
        gallery["fallbacks"].append(img)
    gallery["counts"] = {"false_accepts": int(fa.size), "false_rejects": int(fr.size),
                         "fallback_images": int(np.count_nonzero(ev.fallback)), "images": int(len(ev.uniq))}
    gallery["bytes"], gallery["truncated"] = thumbs.used, thumbs.truncated
    gallery["thumbnail"] = f"{THUMB_PX} px JPEG (quality {JPEG_QUALITY}) of the aligned crop that was embedded"
    return gallery


def face_boxes(ctx: "TaskContext", spec: "RunSpec", ev: Any) -> np.ndarray | None:
    """(N, 4) boxes of the chosen faces from the detection store the run wrote (NaN where none
    was found); None for already-aligned data or when the store does not hold every image."""
    found = face_rows(ctx, spec, ev)
    return None if found is None else found[0]


def face_rows(ctx: "TaskContext", spec: "RunSpec", ev: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(boxes (N, 4), detector scores (N,))`` of the chosen faces from the detection store
    the run wrote (NaN where no face was found, and scores NaN where the store predates them);
    None for already-aligned data or when the store does not hold every image."""
    if ev.detector is None or not ctx.cache_dir:
        return None
    from harness.tasks._faces import _read_store, face_store

    images = ev.pairs.images
    keys = [str(images.keys[int(i)]) for i in ev.uniq]
    store = face_store(images, keys, ev.detector, dict(spec.options.get(ev.detector) or {}), "center",
                       ctx.cache_dir)
    rows = _read_store(store)
    if not all(k in rows for k in keys):
        return None
    boxes = np.array([rows[k][0] for k in keys], np.float64).reshape(-1, 4)
    scores = np.array([rows[k][4] if len(rows[k]) > 4 else np.nan for k in keys], np.float64)
    return boxes, scores


def _presentation(part: Any, i: int, score: float, accepted: bool, thumbs: "_Thumbs") -> dict[str, Any] | None:
    """One liveness presentation as a thumbnail: the crop the model scored, or the image
    itself for a model that takes full images."""
    item = part.inputs[i]
    img = item if isinstance(item, np.ndarray) and item.ndim == 3 else part.record.images.load(int(part.idx[i]))
    uri = thumbnail_uri(img)
    if thumbs.used + len(uri) > thumbs.max_bytes:
        thumbs.truncated = True
        return None
    thumbs.used += len(uri)
    return {"file": _file_label(part.keys[i]), "uri": uri, "fallback": bool(part.fallback[i]),
            "score": float(score), "species": str(part.species[i]), "accepted": bool(accepted)}


def liveness_gallery(part: Any, scores: np.ndarray, threshold: float | None, *, n: int = GALLERY_N,
                     max_bytes: int = MAX_GALLERY_BYTES) -> dict[str, Any]:
    """The ``n`` attacks scored most like bona fide and the ``n`` bona fide presentations
    scored most like attacks, with whether the threshold accepted each (score >= threshold)."""
    scores = np.asarray(scores, np.float64)
    y = np.asarray(part.labels) == 1
    t = float("nan") if threshold is None else float(threshold)
    thumbs = _Thumbs(None, max_bytes)
    attacks = np.flatnonzero(~y)
    bona = np.flatnonzero(y)
    out: dict[str, Any] = {"kind": "liveness", "threshold": threshold,
                           "rule": "accepted as bona fide when score >= threshold (fixed on the dev split)"}
    for key, idx in (("attacks", attacks[np.argsort(-scores[attacks], kind="stable")]),
                     ("bona_fide", bona[np.argsort(scores[bona], kind="stable")])):
        items = []
        for i in idx[:n]:
            item = _presentation(part, int(i), scores[i], bool(scores[i] >= t), thumbs)
            if item is None:
                break
            items.append(item)
        out[key] = items
    out["counts"] = {"attacks_accepted": int(np.sum(~y & (scores >= t))),
                     "bona_fide_rejected": int(np.sum(y & (scores < t))),
                     "fallback_images": int(np.count_nonzero(part.fallback))}
    out["bytes"], out["truncated"] = thumbs.used, thumbs.truncated
    out["thumbnail"] = f"{THUMB_PX} px JPEG (quality {JPEG_QUALITY}) of what the model scored"
    return out


def quality_signals(ev: Any, emb: np.ndarray | None, boxes: np.ndarray | None = None,
                    det_scores: np.ndarray | None = None,
                    ) -> tuple[dict[str, np.ndarray], dict[str, str], list[str]]:
    """Per-image quality signals (higher = better), their descriptions, and what is unavailable."""
    from harness.metrics.quality import sharpness

    sig: dict[str, np.ndarray] = {}
    desc: dict[str, str] = {}
    missing = ["landmark confidence (no detector or landmarker contract reports one per face)"]
    found = None if boxes is None else np.isfinite(np.asarray(boxes, np.float64)).all(axis=1)
    if det_scores is not None and found is not None and np.isfinite(det_scores[found]).all() and found.any():
        sig["detector_score"] = np.where(found, det_scores, np.nan)  # NaN: the lowest quality (pair_quality)
        desc["detector_score"] = ("the detector's confidence in the chosen face (cached per image; below every "
                                  "score where detection fell back)")
    else:
        missing.append("detector score (already-aligned data, or a detection store written before scores "
                       "were kept: delete it to recompute)" if det_scores is None or found is None or found.any()
                       else "detector score (no face was detected)")
    if boxes is not None:
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]).astype(np.float64)
        sig["face_size"] = np.where(np.isfinite(side), side, 0.0)  # no face found: the lowest quality
        desc["face_size"] = "shorter side of the detected box in source pixels (0 where detection fell back)"
    else:
        missing.append("face size (already-aligned data, or no detection store for these images)")
    gray = [np.asarray(c, np.float64).mean(axis=2) if np.ndim(c) == 3 else np.asarray(c, np.float64)
            for c in ev.crops]
    sig["sharpness"] = np.array([sharpness(g) for g in gray])
    desc["sharpness"] = "variance of the Laplacian of the grey aligned crop (focus; blur lowers it)"
    if emb is not None:
        norms = np.linalg.norm(np.asarray(emb, np.float64), axis=1)
        if np.ptp(norms) > 1e-6 * max(float(norms.max()), 1e-12):
            sig["embedding_norm"] = norms
            desc["embedding_norm"] = "L2 norm of the embedding before cosine scoring"
        else:
            missing.append("embedding norm (the model's embeddings are unit length)")
    return sig, desc, missing


def _quality(ev: Any, scores: np.ndarray, emb: np.ndarray | None, rows: tuple[np.ndarray, np.ndarray] | None,
             fmr_target: float) -> dict[str, Any]:
    from harness.metrics.quality import quality_report

    boxes, det_scores = rows if rows is not None else (None, None)
    sig, desc, missing = quality_signals(ev, emb, boxes, det_scores)
    a, b = ev.rows()
    out = quality_report(scores, ev.pairs.issame, {k: (v[a], v[b]) for k, v in sig.items()},
                         descriptions=desc, fmr_target=fmr_target)
    out["unavailable"] = missing
    return out


def _identities(ev: Any) -> list[str]:
    images = ev.pairs.images
    names = list(images.identities or ())
    out = []
    for i in ev.uniq:
        lab = int(images.labels[int(i)])
        out.append(names[lab] if 0 <= lab < len(names) else "")
    return out


def _interval_kwargs(spec: "RunSpec") -> dict[str, Any]:
    """B, seed and level of the run's ``intervals:`` settings (the defaults when it has none)."""
    iv = getattr(spec, "intervals", None)
    if iv is None:
        return {"seed": int(spec.seed)}
    return {"B": int(iv.bootstrap), "level": float(iv.level),
            "seed": int(spec.seed if iv.seed is None else iv.seed)}


def _demographics(ev: Any, scores: np.ndarray, groups_path: str, fmr_target: float,
                  interval_kw: dict[str, Any]) -> dict[str, Any]:
    from harness.formats.groups import read_groups
    from harness.metrics.demographics import group_report

    table = read_groups(groups_path)
    ids = _identities(ev)
    per_image = table.lookup_images([ev.pairs.images.keys[int(i)] for i in ev.uniq], ids)
    if not any(per_image):
        from harness.errors import DataError

        example = ids[0] if table.key == "identity" else _file_label(ev.pairs.images.keys[int(ev.uniq[0])])
        raise DataError(f"{groups_path}: no {table.key} in the file matches an image of {ev.ref.name} "
                        f"(the file has e.g. {next(iter(table.values))!r}, the data e.g. {example!r})")
    a, b = ev.rows()
    subj = np.array(ids, dtype=object)
    kw: dict[str, Any] = {}
    if all(ids):  # identities known: resample subjects
        kw = {"subject_a": subj[a].astype(str), "subject_b": subj[b].astype(str)}
    digest = hashlib.sha256(Path(groups_path).read_bytes()).hexdigest()[:16]
    out = group_report(scores, ev.pairs.issame, [per_image[i] for i in a], [per_image[i] for i in b],
                       table.attributes, fmr_target=fmr_target, source=str(groups_path), key=table.key,
                       **interval_kw, **kw)
    out["sha256"] = digest
    out["matched"] = {"images": int(sum(bool(m) for m in per_image)), "of": len(per_image)}
    return out


def run_evidence(ctx: "TaskContext", spec: "RunSpec", ev: Any, scores: np.ndarray,
                 emb: np.ndarray | None) -> dict[str, Any]:
    """Sections ``failure_gallery``, ``quality`` and (with ``--groups``) ``demographics``."""
    scores = np.asarray(scores, np.float64)
    y = ev.pairs.issame.astype(bool)
    out: dict[str, Any] = {}
    if not (y.any() and (~y).any()):
        return out
    fmr_target = evidence_fmr_target(int((~y).sum()))
    out["failure_gallery"] = failure_gallery(ev, scores)
    out["quality"] = _quality(ev, scores, emb, face_rows(ctx, spec, ev), fmr_target)
    groups = getattr(spec, "groups", None)
    if groups:
        ctx.log(f"demographic differentials by {groups}")
        out["demographics"] = _demographics(ev, scores, str(groups), fmr_target, _interval_kwargs(spec))
    return out


# -------------------------------------------------------------- detection: missed and false faces
#: longer side of a detection gallery image, and the colours drawn (RGB)
DETECTION_PX = 320
_MISSED, _FALSE, _FOUND = (220, 38, 38), (217, 119, 6), (22, 163, 74)


def _draw_box(img: np.ndarray, box: np.ndarray, color: tuple[int, int, int], width: int) -> None:
    """A rectangle outline on ``img`` (H, W, 3) in place, clipped to the image."""
    h, w = img.shape[:2]
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    if x1 >= w or y1 >= h or x2 < 0 or y2 < 0:  # wholly outside: nothing to draw
        return
    x1, x2 = max(0, min(x1, w - 1)), max(0, min(x2, w - 1))
    y1, y2 = max(0, min(y1, h - 1)), max(0, min(y2, h - 1))
    if x2 < x1 or y2 < y1:
        return
    img[y1:min(y1 + width, y2 + 1), x1:x2 + 1] = color
    img[max(y2 - width + 1, y1):y2 + 1, x1:x2 + 1] = color
    img[y1:y2 + 1, x1:min(x1 + width, x2 + 1)] = color
    img[y1:y2 + 1, max(x2 - width + 1, x1):x2 + 1] = color


def _image_errors(pred: np.ndarray, gt: np.ndarray, keep: np.ndarray) -> dict[str, np.ndarray]:
    """One image under the WIDER rules (:func:`~harness.metrics.detection.wider_image_eval`),
    predictions sorted by score: which prediction first recalls a kept face (``tp``), which is a
    counted proposal recalling none (``fp``: a false face or a duplicate), and for each kept face
    the score of the first prediction recalling it (``-inf``: never recalled)."""
    from harness.metrics.detection import iou, wider_image_eval

    p = pred[np.argsort(-pred[:, 4], kind="stable")] if len(pred) else np.zeros((0, 5))
    recall, proposal = wider_image_eval(p[:, :4], gt, keep)
    tp = np.diff(np.r_[0.0, recall]) > 0
    recalled_at = np.full(len(gt), -np.inf)
    if len(p) and len(gt):
        best = iou(p[:, :4], gt, pixel_inclusive=True).argmax(axis=1)
        for i in np.flatnonzero(tp)[::-1]:  # descending score: the first hit is written last
            recalled_at[best[i]] = p[i, 4]
    return {"pred": p, "tp": tp, "fp": (proposal == 1) & ~tp, "recalled_at": recalled_at}


def _f1_threshold(per_image: dict[str, dict[str, np.ndarray]], n_faces: int) -> float:
    """The score threshold of best F1 (kept faces recalled vs counted proposals) over the set."""
    s = np.concatenate([e["pred"][:, 4] for e in per_image.values()] or [np.zeros(0)])
    if s.size == 0:
        return math.inf
    tp = np.concatenate([e["tp"] for e in per_image.values()]).astype(np.int64)
    fp = np.concatenate([e["fp"] for e in per_image.values()]).astype(np.int64)
    order = np.argsort(-s, kind="stable")
    s, ctp, cfp = s[order], np.cumsum(tp[order]), np.cumsum(fp[order])
    last = np.r_[s[1:] != s[:-1], True]  # a threshold keeps every prediction of its score
    f1 = 2 * ctp[last] / np.maximum(2 * ctp[last] + cfp[last] + (n_faces - ctp[last]), 1)
    return float(s[last][int(np.argmax(f1))])


def detection_gallery(preds: dict[str, np.ndarray], gt: dict[str, np.ndarray], keep: dict[str, np.ndarray],
                      loader: Any, *, setting: str = "hard", n: int = 6,
                      max_bytes: int = MAX_GALLERY_BYTES) -> dict[str, Any]:
    """The ``n`` images with the most detection errors at the best-F1 score threshold, the
    missed faces (kept ground truth not recalled, red) and false faces (counted detections
    recalling none, orange) drawn on each, found faces in green; small JPEG data URIs under
    ``max_bytes`` in all."""
    per = {k: _image_errors(np.asarray(preds.get(k, np.zeros((0, 5))), np.float64).reshape(-1, 5),
                            np.asarray(gt[k], np.float64).reshape(-1, 4), np.asarray(keep[k], bool)) for k in gt}
    n_faces = int(sum(np.count_nonzero(keep[k]) for k in gt))
    t = _f1_threshold(per, n_faces)
    rows = []
    for k, e in per.items():
        above = e["pred"][:, 4] >= t
        missed = np.flatnonzero(np.asarray(keep[k], bool) & (e["recalled_at"] < t))
        false = np.flatnonzero(above & e["fp"])
        found = np.flatnonzero(above & e["tp"])
        rows.append((len(missed) + len(false), k, missed, false, found))
    rows.sort(key=lambda r: (-r[0], r[1]))
    out: dict[str, Any] = {"threshold": t, "setting": setting, "images": [], "truncated": False,
                           "rule": "score threshold of best F1 over the set (WIDER matching, IoU 0.5)",
                           "colours": {"missed": "red", "false": "orange", "found": "green"}}
    used = 0
    for errors, k, missed, false, found in rows[:n]:
        if errors == 0:
            break
        img = np.array(loader(k), dtype=np.uint8, copy=True)
        if img.ndim == 2:  # grey: drawn in colour
            img = np.repeat(img[:, :, None], 3, axis=2)
        width = max(1, round(max(img.shape[:2]) / DETECTION_PX))
        for idx, boxes, colour in ((found, per[k]["pred"][:, :4], _FOUND), (missed, gt[k], _MISSED),
                                   (false, per[k]["pred"][:, :4], _FALSE)):
            for i in idx:
                _draw_box(img, np.asarray(boxes[i]), colour, width)
        uri = thumbnail_uri(img, DETECTION_PX)
        if used + len(uri) > max_bytes:
            out["truncated"] = True
            break
        used += len(uri)
        out["images"].append({"file": _file_label(k), "uri": uri, "missed": int(len(missed)),
                              "false": int(len(false)), "found": int(len(found))})
    totals = [(len(r[2]), len(r[3])) for r in rows]
    out["counts"] = {"missed": int(sum(m for m, _ in totals)), "false": int(sum(f for _, f in totals)),
                     "faces": n_faces, "images": len(rows)}
    out["bytes"] = used
    out["thumbnail"] = f"{DETECTION_PX} px JPEG (quality {JPEG_QUALITY}) of the image with the boxes drawn"
    return out
