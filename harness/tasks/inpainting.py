"""Inpainting: the "meshface" protocol (mesh removal, then verification).

Protocol (stated in every report):

* Pairs: LFW View 2 (``--eval``; ``--eval-folds`` restricts the folds).
* Faces: every image is detected (``dlib_hog`` by default; ``--detector``
  overrides), one face per image is kept (nearest the centre) and aligned
  the way the recognizer expects — for ``dlib_resnet`` dlib's own 150x150
  chip from its 5-point shape predictor.  A face that is not found falls
  back to a centred box (counted in ``fallbacks``).
* Mesh: in pair ``k`` of the full pair list the **second** image's aligned
  crop is meshed with :func:`harness.formats.mesh.mesh_image` seeded with
  ``MESH_SEED + k``: the same meshes for every model, whatever folds are run.
  Meshing the aligned crop (not the raw photo) keeps the generator's sizes,
  defined for a 112-pixel face, relative to the face as on an ID photo, and
  keeps clean, meshed and restored crops pixel-aligned (docs/inpainting.md).
* Restoration: the inpainter restores each meshed crop; blind unless the
  inpainter runs in its oracle-mask mode (then the true mask is given,
  stated in ``protocol.mask``).
* Quality: PSNR and SSIM (:mod:`harness.metrics.image`) of restored vs clean
  and of meshed vs clean (the floor), on the aligned crops the recognizer
  sees, averaged over pairs.
* Verification: clean-clean, clean-meshed and clean-restored pairs scored
  with the recognizer; 10-fold accuracy (threshold on the other folds),
  TAR@FAR = 1e-3 (strict rule) and EER for each.
* Training (``--train NAME=PATH``, trainable inpainters): the training
  set's images whose identity name appears in any evaluated pair are
  dropped (names compared case-insensitively); at most
  ``MAX_TRAIN_IMAGES`` of the rest, evenly spaced, are aligned like the
  evaluation faces and meshed on the fly by the inpainter's ``fit``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from harness.errors import ConfigError, DataError, HarnessError
from harness.tasks._faces import embed_in_batches, fingerprint, locate_faces, make_crops, progress_iter

if TYPE_CHECKING:
    from harness.config import RunSpec
    from harness.tasks import TaskContext
    from harness.types import ImageSet, PairSet

__all__ = ["DEFAULT_DETECTOR", "DEFAULT_RECOGNIZER", "MAX_TRAIN_IMAGES", "MESH_SEED", "PROTOCOL", "run",
           "subset_pairs"]

PROTOCOL = "meshface"
MESH_SEED = 20160601
DEFAULT_RECOGNIZER = "dlib_resnet"
DEFAULT_DETECTOR = "dlib_hog"
MAX_TRAIN_IMAGES = 3000
N_SAMPLES = 4
CONDITIONS = ("clean", "meshed", "restored")


@dataclasses.dataclass
class _Faces:
    crops: list
    fallback: np.ndarray
    detector: str | None
    alignment: str


# ------------------------------------------------------------------ pairs
def subset_pairs(pairs: "PairSet", n: int | None) -> tuple["PairSet", np.ndarray]:
    """At most ``n`` pairs, evenly spaced and half genuine (CI runs); also
    returns the positions kept."""
    from harness.types import PairSet

    keep = np.arange(len(pairs))
    if n is not None and 0 < n < len(pairs):
        gen, imp = np.flatnonzero(pairs.issame), np.flatnonzero(~pairs.issame)
        ng = min(len(gen), (n + 1) // 2)
        ni = min(len(imp), n - ng)
        keep = np.sort(np.concatenate([gen[np.linspace(0, len(gen) - 1, ng).astype(int)] if ng else gen[:0],
                                       imp[np.linspace(0, len(imp) - 1, ni).astype(int)] if ni else imp[:0]]))
    sub = PairSet(pairs.images, pairs.pairs[keep], pairs.issame[keep], pairs.folds[keep], pairs.protocol)
    return sub, keep


def _load_pairs(ctx: "TaskContext", spec: "RunSpec") -> tuple["PairSet", np.ndarray]:
    """The evaluated pairs and each one's index in the full pair list (the mesh seed)."""
    from harness.tasks.recognition import open_dataset
    from harness.types import PairSet

    ref = spec.eval[0]
    full = open_dataset(ctx, ref, spec.options.get(ref.name)).verification()
    index = np.arange(len(full))
    if spec.eval_folds:
        present = sorted(set(full.folds.tolist()))
        bad = [f for f in spec.eval_folds if f not in present]
        if bad:
            raise ConfigError(f"--eval-folds {bad} not in {ref.name}'s folds {present}")
        index = np.flatnonzero(np.isin(full.folds, spec.eval_folds))
    pairs = PairSet(full.images, full.pairs[index], full.issame[index], full.folds[index], full.protocol)
    pairs, keep = subset_pairs(pairs, ctx.extra.get("max_pairs"))
    return pairs, index[keep]


# ------------------------------------------------------------------ faces
def aligned_faces(ctx: "TaskContext", spec: "RunSpec", images: "ImageSet", indices: np.ndarray,
                  rec: Any, rspec: Any, desc: str = "align") -> _Faces:
    """The aligned crops the recognizer sees, for ``images[indices]``."""
    from harness.tasks._faces import resize_crop

    alignment = getattr(rec, "alignment", None) or rspec.alignment or "arcface_112"
    size = tuple(rspec.input_size)
    if images.aligned is not None:
        crops = [resize_crop(images.load(int(i)), size) for i in progress_iter(indices, desc, ctx.progress)]
        return _Faces(crops, np.zeros(len(indices), bool), None, f"none (already aligned: {images.aligned})")
    detector = spec.components.get("detector", DEFAULT_DETECTOR)
    faces = locate_faces(images, indices, registry=ctx.registry, detector=detector,
                         detector_options=spec.options.get(detector), cache_dir=ctx.cache_dir,
                         progress=ctx.progress)
    if alignment != "dlib_chip":
        crops, fallback = make_crops(images, indices, template=alignment, size=size, faces=faces,
                                     progress=ctx.progress)
        return _Faces(crops, fallback, detector, alignment)
    crops = []
    for j in progress_iter(range(len(indices)), f"{desc} (dlib chips)", ctx.progress):
        img = images.load(int(indices[j]))
        if faces.found[j]:
            box = faces.boxes[j]
        else:  # flagged fallback: a centred box of half the shorter side
            h, w = img.shape[:2]
            s = min(h, w) / 4
            box = np.array([w / 2 - s, h / 2 - s, w / 2 + s, h / 2 + s], np.float32)
        crops.append(rec.chips(img, box[None])[0])
    return _Faces(crops, ~faces.found, detector, "dlib_chip (5-point shape predictor, 150x150)")


def _embed_cached(ctx: "TaskContext", key: str, rec: Any, crops: Sequence[np.ndarray], desc: str) -> np.ndarray:
    path = Path(ctx.cache_dir) / f"inpaint-emb-{key}.npz" if ctx.cache_dir else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            if len(z["emb"]) == len(crops):
                return z["emb"]
    emb = embed_in_batches(rec.embed, crops, batch=32, desc=desc, progress=ctx.progress)
    if path is not None:
        import io

        from harness.results import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, emb=emb)
        atomic_write_bytes(path, buf.getvalue())
    return emb


# --------------------------------------------------------------- training
def _train(ctx: "TaskContext", spec: "RunSpec", inp: Any, ispec: Any, iname: str, pairs: "PairSet",
           rec: Any, rspec: Any) -> dict:
    from harness.tasks.recognition import open_dataset

    ref = spec.train[0]
    train = open_dataset(ctx, ref, spec.options.get(ref.name)).train_set()
    names = pairs.images.identities
    used = np.unique(pairs.images.labels[np.unique(pairs.pairs.ravel())])
    eval_names = {str(names[int(label)]).strip().lower() for label in used if 0 <= label < len(names)}
    tnames = train.identities
    keep = np.array([not (0 <= lab < len(tnames) and str(tnames[lab]).strip().lower() in eval_names)
                     for lab in train.labels.tolist()], bool)
    cand = np.flatnonzero(keep)
    if len(cand) < 2:
        raise DataError(f"training data {ref}: {len(train)} images, {int(keep.sum())} left after dropping the "
                        f"{len(eval_names)} identities of the evaluated pairs; give identities disjoint from them")
    cap = int(ctx.extra.get("max_train_images") or MAX_TRAIN_IMAGES)
    if len(cand) > cap:
        cand = cand[np.linspace(0, len(cand) - 1, cap).astype(int)]
    faces = aligned_faces(ctx, spec, train, cand, rec, rspec, desc="align (train)")
    identity = None
    meta_id = ispec.meta.get("identity_backbone")
    if meta_id and getattr(inp, "uses_identity", False):
        identity = ctx.registry.build("backbone", meta_id["name"], dict(meta_id.get("options", {})))
    steps = spec.training.max_steps or getattr(inp.options, "steps", None)
    ctx.log(f"training {iname} on {len(cand)} clean faces of {ref} ({len(train) - int(keep.sum())} images "
            f"of evaluated identities dropped), {steps} steps")
    hist = inp.fit(faces.crops, rng_seed=spec.seed, steps=steps, progress=ctx.progress,
                   identity_embedder=identity, time_budget=spec.training.time_budget)
    ckpt = inp.save(ctx.run_dir.checkpoint_dir / f"{iname}.pt")
    return {
        "section": {
            "dataset": str(ref), "images": int(len(cand)), "identities": int(len(np.unique(train.labels[cand]))),
            "dropped_eval_identity_images": int(len(train) - int(keep.sum())),
            "rule": "images of identities named in any evaluated pair are dropped (case-insensitive names); "
                    f"at most {cap} of the rest, evenly spaced",
            "fallbacks": int(faces.fallback.sum()), "steps": hist["steps"], "wall_s": round(hist["wall_s"], 2),
            "device": hist["device"], "img_per_s": round(hist["img_per_s"], 2), "checkpoint": str(ckpt),
            "identity_network": meta_id["note"] if identity is not None else None,
            "synthetic": bool(train.synthetic),
        },
        "curve": {"step": hist["step"], "loss": hist["loss"], "lr": hist["lr"]},
    }


# ----------------------------------------------------------------- output
def _samples(ctx: "TaskContext", clean: list, meshed: list, masks: list, restored: list, picks: np.ndarray) -> list:
    import cv2

    out = []
    folder = ctx.run_dir.path / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    for n, k in enumerate(picks):
        m = (np.asarray(masks[k]) > 0).astype(np.uint8) * 255
        strip = np.hstack([clean[n], meshed[k], np.repeat(m[:, :, None], 3, axis=2), restored[k]])
        name = f"samples/pair_{n:02d}.png"
        if not cv2.imwrite(str(ctx.run_dir.path / name), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
            raise HarnessError(f"could not write {ctx.run_dir.path / name}")
        out.append(name)
    return out


def _short(summary: dict) -> dict:
    by = {m["name"]: m for m in summary["metrics"]}
    acc = by.get("accuracy", {})
    return {"accuracy": acc.get("value"), "accuracy_std": acc.get("std"),
            "tar_at_far_1e-3": by.get("tar_at_far_1e-3", {}).get("value"), "eer": by["eer"]["value"],
            "auc": by["auc"]["value"]}


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    from harness.formats.mesh import mesh_image
    from harness.metrics import Metric
    from harness.metrics.image import psnr, ssim
    from harness.metrics.report import verification_summary

    reg = ctx.registry
    if "inpainter" not in spec.components:
        raise HarnessError(f"an inpainting run needs --inpainter, got {dict(spec.components)}")
    if not spec.eval:
        raise ConfigError("an inpainting run needs --eval lfw=PATH (LFW View 2 pairs)")
    iname = spec.components["inpainter"]
    ispec = reg.get("inpainter", iname)
    rname = spec.components.get("recognizer", DEFAULT_RECOGNIZER)
    rspec = reg.get("recognizer", rname)
    rec = reg.build("recognizer", rname, spec.options.get(rname))
    inp = reg.build("inpainter", iname, spec.options.get(iname))

    pairs, pair_index = _load_pairs(ctx, spec)
    if len(pairs) == 0:
        raise DataError(f"{spec.eval[0]}: no pairs to evaluate")
    uniq = np.unique(pairs.pairs.ravel())
    pos = np.searchsorted(uniq, pairs.pairs)
    faces = aligned_faces(ctx, spec, pairs.images, uniq, rec, rspec)
    key = fingerprint("inpaint", rname, spec.options.get(rname), faces.detector, spec.options.get(faces.detector or ""),
                      [pairs.images.keys[i] for i in uniq])

    training = None
    if spec.train:
        if not ispec.trainable:
            raise ConfigError(f"inpainter {iname!r} is not trainable; drop --train")
        training = _train(ctx, spec, inp, ispec, iname, pairs, rec, rspec)
    untrained = bool(ispec.trainable and not spec.train and not getattr(inp.options, "weights", ""))
    if untrained:
        ctx.log(f"warning: {iname} is evaluated untrained (no --train, no -o {iname}.weights=...)")

    # mesh the second face of every pair, seeded by its index in the full list
    meshed, masks = [], []
    for k in progress_iter(range(len(pairs)), "mesh", ctx.progress):
        m, mk = mesh_image(faces.crops[pos[k, 1]], MESH_SEED + int(pair_index[k]))
        meshed.append(m)
        masks.append(mk)
    restored: list[np.ndarray] = []
    for s in progress_iter(range(0, len(meshed), 64), f"restore ({iname})", ctx.progress, unit="batch"):
        part = inp.restore(meshed[s:s + 64], masks[s:s + 64] if inp.needs_mask else None)
        restored.extend(np.asarray(r, np.uint8) for r in part)
    if len(restored) != len(meshed) or any(r.shape != m.shape for r, m in zip(restored, meshed)):
        raise HarnessError(f"inpainter {iname!r} returned images of other sizes or count than it was given")

    mask_iou = None
    if not inp.needs_mask and hasattr(inp, "estimate_masks"):
        est = []
        for s in range(0, len(meshed), 64):
            est.extend(inp.estimate_masks(meshed[s:s + 64]))
        inter = [np.count_nonzero((e > 0) & (t > 0)) for e, t in zip(est, masks)]
        union = [np.count_nonzero((e > 0) | (t > 0)) for e, t in zip(est, masks)]
        mask_iou = float(np.mean([i / u if u else 1.0 for i, u in zip(inter, union)]))

    clean2 = [faces.crops[p] for p in pos[:, 1]]
    q = {
        "psnr_meshed": np.array([psnr(c, m) for c, m in zip(clean2, meshed)]),
        "ssim_meshed": np.array([ssim(c, m) for c, m in zip(clean2, meshed)]),
        "psnr_restored": np.array([psnr(c, r) for c, r in zip(clean2, restored)]),
        "ssim_restored": np.array([ssim(c, r) for c, r in zip(clean2, restored)]),
    }
    seeds = (MESH_SEED + pair_index).tolist()
    emb_clean = _embed_cached(ctx, key + "-clean", rec, faces.crops, f"embed clean ({rname})")
    emb_meshed = _embed_cached(ctx, fingerprint(key, "meshed", seeds), rec, meshed, f"embed meshed ({rname})")
    emb_restored = embed_in_batches(rec.embed, restored, batch=32, desc=f"embed restored ({rname})",
                                    progress=ctx.progress)

    def score(e1: np.ndarray, e2: np.ndarray) -> np.ndarray:
        if rspec.distance == "cosine":
            n = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
            return (np.sum(e1 * e2, axis=1) / np.maximum(n, 1e-12)).astype(np.float64)
        return -np.linalg.norm(e1 - e2, axis=1).astype(np.float64)

    a = emb_clean[pos[:, 0]]
    scores = {"clean": score(a, emb_clean[pos[:, 1]]), "meshed": score(a, emb_meshed),
              "restored": score(a, emb_restored)}
    labels = pairs.issame.astype(np.int64)
    multi_fold = len(np.unique(pairs.folds)) > 1
    summaries = {c: verification_summary(s, labels, pairs.folds if multi_fold else None) for c, s in scores.items()}
    if not multi_fold:  # one fold: the threshold is chosen on the same pairs (stated)
        for c, s in scores.items():
            acc = _best_accuracy(s, pairs.issame)
            summaries[c]["metrics"].insert(0, Metric(
                "accuracy", acc, "higher", "one fold: best threshold on the same pairs (optimistic)").to_dict())
    ctx.run_dir.save_arrays("scores", label=labels.astype(np.int8), fold=pairs.folds, pair_index=pair_index,
                            **{f"score_{c}": s for c, s in scores.items()}, **q)

    short = {c: _short(summaries[c]) for c in CONDITIONS}
    metrics: list[dict] = []
    head = dict(meta={"headline": True})
    for c in ("restored", "meshed", "clean"):
        m = next(x for x in summaries[c]["metrics"] if x["name"] == "accuracy")
        metrics.append(Metric(f"accuracy_{c}", m["value"], "higher", f"clean-{c} pairs; " + m["convention"],
                              std=m.get("std"), **head).to_dict())
    for name in ("psnr_restored", "ssim_restored", "psnr_meshed", "ssim_meshed"):
        unit = {"meta": {"headline": True, "unit": "dB"}} if name.startswith("psnr") else head
        metrics.append(Metric(name, float(np.mean(q[name])), "higher",
                              "mean over pairs of the second face's aligned crop vs its clean crop",
                              std=float(np.std(q[name])), **unit).to_dict())
    for c in CONDITIONS:
        metrics.append(Metric(f"tar_at_far_1e-3_{c}", short[c]["tar_at_far_1e-3"], "higher",
                              f"clean-{c} pairs; strict: largest TAR with FAR <= 1e-3").to_dict())
        metrics.append(Metric(f"eer_{c}", short[c]["eer"], "lower", f"clean-{c} pairs; interpolated").to_dict())
    if mask_iou is not None:
        metrics.append(Metric("mask_iou", mask_iou, "higher",
                              "mean IoU of the inpainter's estimated mesh mask with the true mask").to_dict())
    # the restored pairs' full summary fills the standard verification sections
    for m in summaries["restored"]["metrics"]:
        if m["name"] != "accuracy":
            metrics.append({**m, "name": f"{m['name']}_restored" if not m["name"].endswith("_restored") else m["name"],
                            "convention": "clean-restored pairs; " + m.get("convention", "")})
    metrics = list({m["name"]: m for m in metrics}.values())

    picks = np.linspace(0, len(pairs) - 1, min(N_SAMPLES, len(pairs))).astype(int)
    samples = _samples(ctx, [clean2[k] for k in picks], meshed, masks, restored, picks)
    sections = dict(summaries["restored"].get("sections", {}))
    sections["inpainting"] = {
        "psnr": float(np.mean(q["psnr_restored"])),
        "ssim": float(np.mean(q["ssim_restored"])),
        "psnr_meshed": float(np.mean(q["psnr_meshed"])),
        "ssim_meshed": float(np.mean(q["ssim_meshed"])),
        "measured_on": "aligned crops the recognizer sees (second face of each pair)",
        "verification": {"recognizer": rname, **short},
        "mask": getattr(inp, "mask_mode", "blind"),
        "mask_iou": mask_iou,
        "untrained": untrained,
        "samples": samples,
        "sample_layout": "clean | meshed | true mask | restored",
    }
    if training:
        sections["training"] = training["section"]
    curves = dict(summaries["restored"].get("curves", {}))
    if training:
        curves["training"] = training["curve"]
    protocol = {
        "name": PROTOCOL,
        "dataset": spec.eval[0].name,
        "path": spec.eval[0].path,
        "pairs_source": pairs.protocol,
        "pairs": int(len(pairs)),
        "folds": int(len(np.unique(pairs.folds))),
        "images": int(len(uniq)),
        "detector": faces.detector or "none (data already aligned)",
        "face_choice": "nearest the image centre" if faces.detector else None,
        "alignment": faces.alignment,
        "input_size": list(rspec.input_size),
        "recognizer": rname,
        "distance": rspec.distance,
        "score": "cosine similarity" if rspec.distance == "cosine" else "minus Euclidean distance",
        "threshold_rule": ("10-fold: threshold chosen on the other 9 folds" if multi_fold
                           else "one fold: best threshold on the same pairs (optimistic)"),
        "tar_rule": "strict: largest TAR with FAR <= target",
        "fallbacks": int(faces.fallback.sum()),
        "meshing": "second image of every pair, on its aligned crop, harness.formats.mesh.mesh_image "
                   f"(default MeshParams) seeded with {MESH_SEED} + index of the pair in the full list",
        "mask": getattr(inp, "mask_mode", "blind"),
        "quality": "PSNR / SSIM (skimage; SSIM 7x7, mean over RGB) on the aligned crops, mean over pairs",
        "flip_test": "none",
        "synthetic": bool(pairs.images.synthetic),
    }
    return {"protocol": protocol, "metrics": metrics, "sections": sections, "curves": curves}


def _best_accuracy(scores: np.ndarray, issame: np.ndarray) -> float:
    order = np.unique(scores)
    thr = np.concatenate([[order[0] - 1], (order[1:] + order[:-1]) / 2, [order[-1] + 1]])
    return float(max(np.mean((scores >= t) == issame) for t in thr))
