"""Template protocols (IJB-B/C): pool face embeddings into template features, then 1:1 template
verification (TAR@FAR 1e-6 … 1e-1) and 1:N template search (rank-k, TPIR@FPIR) per gallery.

Pooling (``pooling``):

* ``media`` (default; as insightface's IJB evaluation does): the faces of one media (one video's
  frames, or one still) are averaged, the media features of a template are summed, and the sum is
  L2-normalised — a template of one video and three stills weighs the video as one still;
* ``mean``: every face of the template averaged, then L2-normalised.

With ``face_norm`` each face embedding is L2-normalised first (insightface: off).  Template scores
are the cosine of the template features.  TAR@FAR uses the strict rule (largest TAR with FAR <=
target; :func:`harness.metrics.verification.tar_at_far`).  1:N: the probes are searched against
each gallery (G1, G2) separately; a probe is mated when its subject is in that gallery; rank-k over
the mated probes, TPIR@FPIR at rank 1 with the rules of :mod:`harness.tasks.identification`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import ConfigError, DataError

if TYPE_CHECKING:
    from harness.formats.ijb import IjbMeta

__all__ = ["FAR_TARGETS", "POOLINGS", "evaluate_templates", "template_features", "template_scores"]

POOLINGS = ("media", "mean")
FAR_TARGETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
FPIR_TARGETS = (1e-2, 1e-1)


def _group_sum(x: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum of the rows of ``x`` per distinct row of ``keys``: (unique keys, sums, counts)."""
    uk, inv, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    order = np.argsort(inv.reshape(-1), kind="stable")
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    return uk, np.add.reduceat(x[order], starts, axis=0), counts


def template_features(emb: np.ndarray, templates: np.ndarray, medias: np.ndarray, *, pooling: str = "media",
                      face_norm: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(template ids, features)``: one L2-normalised float64 feature per template, ids sorted."""
    if pooling not in POOLINGS:
        raise ConfigError(f"pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
    x = np.asarray(emb, np.float64)
    templates, medias = np.asarray(templates, np.int64), np.asarray(medias, np.int64)
    if not (len(x) == len(templates) == len(medias)) or len(x) == 0:
        raise DataError(f"{len(x)} embeddings for {len(templates)} template and {len(medias)} media ids; "
                        "expected one of each per face, and at least one face")
    if face_norm:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if pooling == "media":
        keys, sums, counts = _group_sum(x, np.stack([templates, medias], 1))
        tids, feats, _ = _group_sum(sums / counts[:, None], keys[:, :1])
    else:
        tids, sums, counts = _group_sum(x, templates[:, None])
        feats = sums / counts[:, None]
    feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    return tids[:, 0], feats


def _rows_of(tids: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    pos = np.searchsorted(tids, wanted)
    ok = (pos < len(tids)) & (tids[np.minimum(pos, len(tids) - 1)] == wanted)
    if not ok.all():
        raise DataError(f"{what}: template {int(np.asarray(wanted)[~ok][0])} has no face")
    return pos


def template_scores(tids: np.ndarray, feats: np.ndarray, pairs: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """Cosine score of each template pair (rows of template ids), in blocks."""
    a, b = _rows_of(tids, pairs[:, 0], "pairs"), _rows_of(tids, pairs[:, 1], "pairs")
    return np.concatenate([np.einsum("ij,ij->i", feats[a[s:s + block]], feats[b[s:s + block]])
                           for s in range(0, len(a), block)] or [np.zeros(0)])


def _verification(meta: "IjbMeta", tids: np.ndarray, feats: np.ndarray) -> dict[str, Any]:
    from harness.metrics.verification import tar_at_far

    scores = template_scores(tids, feats, meta.pairs)
    rows = []
    for far in FAR_TARGETS:
        op = tar_at_far(scores, meta.labels, far)
        rows.append({"far": far, "tar": op.tar, "threshold": op.threshold, "far_reached": op.far,
                     "defined": op.defined, "rule": "strict: largest TAR with FAR <= target"})
    return {"pairs": int(len(scores)), "genuine": int(meta.labels.sum()), "tar_at_far": rows, "scores": scores}


def _search(meta: "IjbMeta", tids: np.ndarray, feats: np.ndarray) -> dict[str, Any]:
    from harness.metrics.identification import cmc_from_ranks, open_set_point
    from harness.tasks.identification import search

    p_t, p_s = meta.probes
    out = {}
    for name, (g_t, g_s) in meta.galleries.items():
        res = search(feats[_rows_of(tids, p_t, "probes")], p_s, feats[_rows_of(tids, g_t, name)], g_s)
        mated = res.rank > 0
        row: dict[str, Any] = {"probes": int(len(p_t)), "mated": int(mated.sum()), "gallery_templates": int(len(g_t)),
                               "ranks": res.rank, "search": res}
        if mated.any():
            c = cmc_from_ranks(res.rank, 10)
            row.update({f"rank{k}": float(c[k - 1]) for k in (1, 5, 10)})
        if mated.any() and not mated.all():
            row["tpir_at_fpir"] = [
                {"fpir": t, "tpir": p.tpir, "threshold": p.threshold, "defined": p.defined}
                for t, p in ((t, open_set_point(res.rank, res.mate_score, res.top_score, t, rank=1))
                             for t in FPIR_TARGETS)]
        out[name] = row
    return out


def evaluate_templates(meta: "IjbMeta", emb: np.ndarray, *, pooling: str = "media",
                       face_norm: bool = False) -> dict[str, Any]:
    """1:1 template verification and (when the release has the 1:N files) 1:N search per gallery,
    from one embedding per face of ``meta`` (in its order)."""
    tids, feats = template_features(emb, meta.templates, meta.medias, pooling=pooling, face_norm=face_norm)
    out: dict[str, Any] = {"templates": int(len(tids)), "faces": int(len(meta.names)), "pooling": pooling,
                           "face_norm": bool(face_norm), "verification": _verification(meta, tids, feats)}
    if meta.galleries and meta.probes is not None:
        out["identification"] = _search(meta, tids, feats)
    return out


# ----------------------------------------------------------- harness run --eval ijb=PATH
def _landmark_faces(landmarks: np.ndarray) -> Any:
    """The release's five points as :class:`~harness.tasks._faces.FaceLocations`; the box is the
    points' bounding box grown 2x about its centre (what a recognizer that aligns itself is given)."""
    from harness.tasks._faces import FaceLocations

    lo, hi = np.nanmin(landmarks, axis=1), np.nanmax(landmarks, axis=1)
    centre, half = (lo + hi) / 2, (hi - lo).max(axis=1, keepdims=True)
    found = np.isfinite(landmarks).all(axis=(1, 2))
    return FaceLocations(np.concatenate([centre - half, centre + half], 1).astype(np.float32),
                         landmarks.astype(np.float32), found, found.astype(np.int64))


def ijb_crops(spec: Any, ctx: Any, model: dict[str, Any], images: Any, landmarks: np.ndarray | None) -> tuple:
    """Crops of every face: aligned from the release's landmarks when it has them, else through the
    detector pipeline; ``(crops, how)``."""
    from harness.tasks._faces import centre_box, make_crops, progress_iter
    from harness.types import own_alignment

    idx = np.arange(len(images))
    if landmarks is None:
        from harness.tasks.identification import embed_images

        return None, embed_images(spec, ctx, model, images, idx)
    faces = _landmark_faces(landmarks)
    rec = model["recognizer"]
    own = own_alignment(rec)
    if own is None:
        crops, fallback = make_crops(images, idx, template=model["template"], size=model["size"], faces=faces,
                                     progress=ctx.progress)
    else:
        crops, fallback = [], ~faces.found
        for j in progress_iter(idx, "align (the recognizer's own alignment)", ctx.progress):
            img = images.load(int(j))
            box = faces.boxes[j] if faces.found[j] else centre_box(img.shape)
            crops.append(rec.align_faces(img, box[None])[0])
    return crops, {"detector": "none (the release's five landmarks)", "alignment": own or model["template"],
                   "input_size": list(model["size"]), "distance": "cosine of pooled template features",
                   "fallbacks": int(np.sum(fallback))}


def run_ijb(spec: Any, ctx: Any, ref: Any, ds: Any, model: dict[str, Any]) -> dict[str, Any]:
    """The IJB 1:1 and 1:N template protocols of ``--eval ijb=PATH``: ``results.json`` parts."""
    from harness.metrics import Metric

    meta, images = ds.templates()
    crops, how = ijb_crops(spec, ctx, model, images, meta.landmarks)
    if crops is None:  # no landmarks: embedded through the detector pipeline
        emb, how = how
    else:
        emb = np.asarray(model["embed"](crops), np.float32)
    res = evaluate_templates(meta, emb, pooling=ds.pooling, face_norm=ds.face_norm)
    ver = res["verification"]
    metrics = [Metric(f"tar_at_far_1e{int(round(np.log10(r['far'])))}", r["tar"] if r["defined"] else None,
                      "higher", convention=r["rule"]).to_dict() for r in ver["tar_at_far"]]
    one_n = {}
    for g, row in (res.get("identification") or {}).items():
        one_n[g] = {k: v for k, v in row.items() if k not in ("ranks", "search")}
        for k in (1, 5, 10):
            if f"rank{k}" in row:
                metrics.append(Metric(f"{g.lower()}_rank{k}", row[f"rank{k}"], "higher",
                                      convention=f"1:N against gallery {g}: mated probes within rank {k}").to_dict())
        for p in row.get("tpir_at_fpir", []):
            metrics.append(Metric(f"{g.lower()}_tpir_at_fpir_1e{int(round(np.log10(p['fpir'])))}",
                                  p["tpir"] if p["defined"] else None, "higher",
                                  convention=f"1:N against gallery {g}, rank 1").to_dict())
    ctx.log(f"{ref}: " + ", ".join(f"{m['name']} {m['value']:.4f}" for m in metrics if m["value"] is not None))
    protocol = {"dataset": ref.name, "path": ref.path, "name": f"{meta.prefix.upper()} 1:1 and 1:N templates",
                "templates": res["templates"], "faces": res["faces"], "pairs": ver["pairs"],
                "pooling": f"{res['pooling']}" + (" (faces L2-normalised first)" if res["face_norm"] else ""),
                **how, "tar_rule": "strict: largest TAR with FAR <= target", "synthetic": False}
    sections = {"tar_at_far": ver["tar_at_far"], "counts": {"genuine": ver["genuine"],
                                                            "impostor": ver["pairs"] - ver["genuine"]}}
    if one_n:
        sections["ijb_identification"] = one_n
    out = {"protocol": protocol, "metrics": metrics, "sections": sections, "curves": {}}
    from harness.tasks import _intervals  # 1:1 and 1:N intervals (subjects, or templates)

    return _intervals.templates(spec, out, meta, res)
