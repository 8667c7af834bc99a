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
  with the recognizer (``dlib_resnet`` by default; ``--recognizer`` or a
  ``--backbone`` with weights, e.g. ``mobilefacenet.weights=casia``, with its
  own alignment and cosine scores); 10-fold accuracy (threshold on the other folds),
  TAR@FAR = 1e-3 (strict rule) and EER for each.
* Training (``--train NAME=PATH``, trainable inpainters): no pair is ever
  restored by a model that saw one of its identities in training (names
  compared case-insensitively).  When the training set minus every
  evaluated identity still holds ``MIN_TRAIN_IMAGES`` images, one model is
  trained on them.  Otherwise — training on LFW itself while evaluating all
  of View 2 — the evaluated folds are **cross-fitted**, LFW's own 10-fold
  rule coarsened to ``CROSS_FIT_GROUPS`` groups of folds: for each group a
  fresh model is trained on the images of identities outside that group
  and restores that group's pairs only.  At most ``MAX_TRAIN_IMAGES`` images
  per model, evenly spaced, are aligned like the evaluation faces and meshed
  on the fly by the inpainter's ``fit``.  Checkpoints record their training
  identities; weights given with ``-o NAME.weights=A.pt,B.pt`` are checked
  against the evaluated identities the same way (each fold is restored by the
  first checkpoint that never saw its identities; none: an error).
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

__all__ = ["CROSS_FIT_GROUPS", "DEFAULT_DETECTOR", "DEFAULT_RECOGNIZER", "MAX_TRAIN_IMAGES", "MESH_SEED",
           "MIN_TRAIN_IMAGES", "PROTOCOL", "fold_groups", "fold_identities", "plan_training", "run",
           "subset_pairs", "training_subset"]

PROTOCOL = "meshface"
MESH_SEED = 20160601
DEFAULT_RECOGNIZER = "dlib_resnet"
DEFAULT_DETECTOR = "dlib_hog"
MAX_TRAIN_IMAGES = 3000
MIN_TRAIN_IMAGES = 200
CROSS_FIT_GROUPS = 2
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


@dataclasses.dataclass(frozen=True)
class _VerifierInfo:
    """What the protocol needs to know of a backbone used as the verification model."""

    input_size: tuple[int, int]
    alignment: str
    distance: str = "cosine"


class _BackboneVerifier:
    """A backbone with weights (``-o NAME.weights=...``) as the meshface recognizer: its own
    alignment, input size, normalisation and flip rule, cosine scores."""

    def __init__(self, ctx: "TaskContext", spec: "RunSpec", name: str) -> None:
        from harness.tasks.recognition import _effective_backbone

        reg = ctx.registry
        bspec = reg.get("backbone", name)
        eff = _effective_backbone(bspec, bspec.make_options(spec.options.get(name)))
        self.run_spec = dataclasses.replace(bspec, input_size=eff["input_size"], mean=eff["mean"], std=eff["std"],
                                            alignment=eff["alignment"], embedding_size=eff["embedding_size"])
        self.flip = "concat" if eff["flip_concat"] else None
        self.alignment = eff["alignment"]
        self.device = spec.training.device
        self.engine = reg.build("engine", bspec.framework)
        self.model = reg.build("backbone", name, spec.options.get(name))
        self.info = _VerifierInfo(tuple(eff["input_size"]), eff["alignment"])

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self.engine.embed(self.model, list(crops), backbone_spec=self.run_spec, flip=self.flip, batch_size=64,
                                 device=self.device)


def _verifier(ctx: "TaskContext", spec: "RunSpec") -> tuple[str, Any, Any]:
    """(name, model with ``embed``, spec-like with input_size / alignment / distance)."""
    if "backbone" in spec.components:
        name = spec.components["backbone"]
        if not (spec.options.get(name) or {}).get("weights"):
            raise ConfigError(f"backbone {name!r} verifies the meshface pairs only with weights: "
                              f"-o {name}.weights=PATH (or a named variant such as mobilefacenet.weights=casia)")
        ver = _BackboneVerifier(ctx, spec, name)
        return name, ver, ver.info
    name = spec.components.get("recognizer", DEFAULT_RECOGNIZER)
    return name, ctx.registry.build("recognizer", name, spec.options.get(name)), ctx.registry.get("recognizer", name)


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
def _norm(name: Any) -> str:
    return str(name).strip().lower()


def fold_identities(pairs: "PairSet") -> dict[int, set[str]]:
    """The (lower-cased) identity names of each evaluated fold's pairs."""
    names = pairs.images.identities
    out: dict[int, set[str]] = {}
    for f in np.unique(pairs.folds).tolist():
        idx = np.unique(pairs.pairs[pairs.folds == f].ravel())
        out[int(f)] = {_norm(names[int(lab)]) for lab in np.unique(pairs.images.labels[idx])
                       if 0 <= lab < len(names)}
    return out


def fold_groups(folds: Sequence[int], k: int) -> list[tuple[int, ...]]:
    """``folds`` (sorted) split into ``k`` contiguous groups of near-equal size."""
    folds = sorted(int(f) for f in folds)
    return [tuple(int(f) for f in g) for g in np.array_split(np.asarray(folds), min(k, len(folds))) if len(g)]


def training_subset(train_names: Sequence[str], banned: set[str], cap: int) -> np.ndarray:
    """Indices of the training images whose identity is not ``banned``: at most ``cap``, evenly spaced."""
    cand = np.flatnonzero([n not in banned for n in train_names])
    if len(cand) > cap:
        cand = cand[np.linspace(0, len(cand) - 1, cap).astype(int)]
    return cand


def plan_training(by_fold: dict[int, set[str]], train_names: Sequence[str],
                  floor: int = MIN_TRAIN_IMAGES) -> tuple[list[tuple[int, ...]], str]:
    """The fold groups to train one model each for, and the rule stated in the report.

    One model for all evaluated folds when at least ``floor`` training images
    remain after dropping every evaluated identity (or only one fold is
    evaluated); otherwise ``CROSS_FIT_GROUPS`` cross-fitted models.
    """
    every = set().union(*by_fold.values()) if by_fold else set()
    outside = sum(1 for n in train_names if n not in every)
    if outside >= floor or len(by_fold) < 2:
        return [tuple(sorted(by_fold))], "one model; every evaluated identity dropped from training"
    groups = fold_groups(list(by_fold), CROSS_FIT_GROUPS)
    return groups, (f"cross-fitted: {len(groups)} models, each trained without the identities of its group of "
                    f"folds and restoring only that group's pairs ({outside} training images lie outside every "
                    f"evaluated identity, fewer than {floor})")


@dataclasses.dataclass
class _Model:
    inpainter: Any
    folds: tuple[int, ...]
    source: str
    train_identities: frozenset[str] | None


def _train(ctx: "TaskContext", spec: "RunSpec", ispec: Any, iname: str, pairs: "PairSet",
           rec: Any, rspec: Any) -> tuple[list[_Model], dict]:
    from harness.tasks.recognition import open_dataset

    ref = spec.train[0]
    if "," in str((spec.options.get(iname) or {}).get("weights") or ""):
        raise ConfigError(f"{iname}.weights: --train fine-tunes one checkpoint; several (comma-separated) are "
                          "for evaluation only")
    train = open_dataset(ctx, ref, spec.options.get(ref.name)).train_set()
    tnames = train.identities
    tid = np.array([_norm(tnames[lab]) if 0 <= lab < len(tnames) else "" for lab in train.labels.tolist()],
                   dtype=object)
    by_fold = fold_identities(pairs)
    cap = int(ctx.extra.get("max_train_images") or MAX_TRAIN_IMAGES)
    groups, mode = plan_training(by_fold, tid, MIN_TRAIN_IMAGES)
    if len(groups) > 1:
        ctx.log(f"{ref}: too few images left after dropping every evaluated identity; cross-fitting "
                f"{len(groups)} models over the fold groups {groups}")
    identity = None
    meta_id = ispec.meta.get("identity_backbone")
    models, infos, curve = [], [], None
    for g in groups:
        banned = set().union(*(by_fold[f] for f in g))
        dropped = sum(1 for n in tid if n in banned)
        cand = training_subset(tid, banned, cap)
        if len(cand) < 2:
            raise DataError(f"training data {ref}: {len(train)} images, {len(cand)} left after dropping the "
                            f"{len(banned)} identities of the evaluated folds {list(g)}; give identities disjoint "
                            "from them (another dataset, or evaluate fewer folds with --eval-folds)")
        faces = aligned_faces(ctx, spec, train, cand, rec, rspec, desc="align (train)")
        inp = ctx.registry.build("inpainter", iname, spec.options.get(iname))
        if meta_id and getattr(inp, "uses_identity", False) and identity is None:
            identity = ctx.registry.build("backbone", meta_id["name"], dict(meta_id.get("options", {})))
        steps = spec.training.max_steps or getattr(inp.options, "steps", None)
        label = "" if len(groups) == 1 else f" for folds {list(g)}"
        ctx.log(f"training {iname}{label} on {len(cand)} clean faces of {ref} ({dropped} "
                f"images of evaluated identities dropped), {steps} steps")
        hist = inp.fit(faces.crops, rng_seed=spec.seed, steps=steps, progress=ctx.progress,
                       identity_embedder=identity, time_budget=spec.training.time_budget)
        names = frozenset(str(n) for n in np.unique(tid[cand]))
        inp.train_identities = names
        fname = f"{iname}.pt" if len(groups) == 1 else f"{iname}-folds{'-'.join(map(str, g))}.pt"
        ckpt = inp.save(ctx.run_dir.checkpoint_dir / fname)
        models.append(_Model(inp, g, f"trained here: {fname}", names))
        curve = curve or {"step": hist["step"], "loss": hist["loss"], "lr": hist["lr"]}
        infos.append({"folds": list(g), "images": int(len(cand)), "identities": len(names),
                      "dropped_eval_identity_images": dropped,
                      "fallbacks": int(faces.fallback.sum()), "steps": hist["steps"],
                      "wall_s": round(hist["wall_s"], 2), "device": hist["device"],
                      "img_per_s": round(hist["img_per_s"], 2), "checkpoint": str(ckpt)})
    first = infos[0]
    section = {
        "dataset": str(ref), "mode": mode,
        "rule": "no pair is restored by a model trained on one of its identities (case-insensitive names); "
                f"at most {cap} training images per model, evenly spaced",
        **({k: v for k, v in first.items() if k != "folds"} if len(infos) == 1 else {
            "images": sum(i["images"] for i in infos), "steps": first["steps"], "device": first["device"],
            "wall_s": round(sum(i["wall_s"] for i in infos), 2),
            "models": "; ".join(f"folds {i['folds']}: {i['images']} images of {i['identities']} identities, "
                                f"{i['steps']} steps, {i['wall_s']} s -> {Path(i['checkpoint']).name}"
                                for i in infos)}),
        "identity_network": meta_id["note"] if identity is not None else None,
        "synthetic": bool(train.synthetic),
    }
    return models, {"section": section, "curve": curve, "models": infos}


def _given_models(ctx: "TaskContext", spec: "RunSpec", ispec: Any, iname: str,
                  pairs: "PairSet") -> tuple[list[_Model], str | None]:
    """The inpainter(s) to evaluate without training: one built from the options, or one per
    checkpoint of ``-o NAME.weights=A.pt,B.pt``, each fold assigned to a checkpoint that never saw its
    identities."""
    opts = dict(spec.options.get(iname) or {})
    paths = [w.strip() for w in str(opts.get("weights") or "").split(",") if w.strip()]
    folds = sorted(int(f) for f in np.unique(pairs.folds).tolist())
    models = []
    for path in (paths if len(paths) > 1 else paths or [""]):
        inp = ctx.registry.build("inpainter", iname, {**opts, "weights": path} if path else opts)
        seen = getattr(inp, "train_identities", None)  # recorded by the checkpoint, if any
        models.append(_Model(inp, tuple(folds), f"weights {path}" if path else "as built",
                             None if seen is None else frozenset(seen)))
    if not ispec.trainable or not paths:
        return models, None
    by_fold = fold_identities(pairs)
    unknown = [m.source for m in models if m.train_identities is None]
    if unknown:
        if len(models) > 1:
            raise ConfigError(f"{iname}: {', '.join(unknown)} record no training identities, so the folds cannot "
                              "be assigned to them; give one checkpoint, or checkpoints written by facebench")
        return models, "training identities not recorded in the weights: disjointness from the evaluated pairs unchecked"
    assigned: dict[int, list[int]] = {}
    for f in folds:
        j = next((j for j, m in enumerate(models) if not (m.train_identities & by_fold[f])), None)
        if j is None:
            worst = min(len(m.train_identities & by_fold[f]) for m in models)
            raise ConfigError(
                f"{iname}: every checkpoint given was trained on identities of LFW fold {f} (at least {worst} of "
                f"its {len(by_fold[f])}); restoring those pairs would overstate the inpainter. Evaluate other folds "
                "(--eval-folds), or give a checkpoint trained without them (harness run --train ... writes "
                "cross-fitted checkpoints)")
        assigned.setdefault(j, []).append(f)
    used = [dataclasses.replace(models[j], folds=tuple(fs)) for j, fs in sorted(assigned.items())]
    return used, "checked: no pair is restored by a checkpoint trained on one of its identities"


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
    rname, rec, rspec = _verifier(ctx, spec)

    pairs, pair_index = _load_pairs(ctx, spec)
    if len(pairs) == 0:
        raise DataError(f"{spec.eval[0]}: no pairs to evaluate")
    uniq = np.unique(pairs.pairs.ravel())
    pos = np.searchsorted(uniq, pairs.pairs)
    faces = aligned_faces(ctx, spec, pairs.images, uniq, rec, rspec)
    weights = str((spec.options.get(rname) or {}).get("weights") or "")
    stamp = [Path(weights).stat().st_size, Path(weights).stat().st_mtime_ns] if Path(weights).is_file() else None
    key = fingerprint("inpaint", rname, spec.options.get(rname), faces.detector, spec.options.get(faces.detector or ""),
                      [pairs.images.keys[i] for i in uniq], *([stamp] if stamp else []))

    training, identity_check = None, None
    if spec.train:
        if not ispec.trainable:
            raise ConfigError(f"inpainter {iname!r} is not trainable; drop --train")
        models, training = _train(ctx, spec, ispec, iname, pairs, rec, rspec)
        identity_check = "checked: no pair is restored by a model trained on one of its identities"
    else:
        models, identity_check = _given_models(ctx, spec, ispec, iname, pairs)
    inp = models[0].inpainter
    model_of_pair = np.zeros(len(pairs), np.int64)
    for j, m in enumerate(models):
        model_of_pair[np.isin(pairs.folds, m.folds)] = j
    untrained = bool(ispec.trainable and not spec.train and not getattr(inp.options, "weights", ""))
    if untrained:
        ctx.log(f"warning: {iname} is evaluated untrained (no --train, no -o {iname}.weights=...)")

    # mesh the second face of every pair, seeded by its index in the full list
    meshed, masks = [], []
    for k in progress_iter(range(len(pairs)), "mesh", ctx.progress):
        m, mk = mesh_image(faces.crops[pos[k, 1]], MESH_SEED + int(pair_index[k]))
        meshed.append(m)
        masks.append(mk)
    restored: list[np.ndarray] = [None] * len(meshed)  # type: ignore[list-item]
    est: list[np.ndarray] = [None] * len(meshed)  # type: ignore[list-item]
    with_est = not inp.needs_mask and hasattr(inp, "estimate_masks")
    batches = [(j, idx[s:s + 64]) for j in range(len(models))
               for idx in [np.flatnonzero(model_of_pair == j)] for s in range(0, len(idx), 64)]
    for j, idx in progress_iter(batches, f"restore ({iname})", ctx.progress, unit="batch"):
        m = models[j].inpainter
        batch, given = [meshed[i] for i in idx], ([masks[i] for i in idx] if m.needs_mask else None)
        if hasattr(m, "restore_with_masks"):  # restored images and estimated masks from one pass
            part, part_est = m.restore_with_masks(batch, given)
        else:
            part, part_est = m.restore(batch, given), None
        if len(part) != len(idx):
            raise HarnessError(f"inpainter {iname!r} returned {len(part)} images for {len(idx)}")
        if with_est and part_est is None:
            part_est = m.estimate_masks(batch)
        for n, i in enumerate(idx):
            restored[i] = np.asarray(part[n], np.uint8)
            if with_est:
                est[i] = part_est[n]
    if any(r is None or r.shape != m.shape for r, m in zip(restored, meshed)):
        raise HarnessError(f"inpainter {iname!r} returned images of other sizes or count than it was given")

    mask_iou = None
    if with_est:
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
        "models": "; ".join(f"{m.source} -> folds {list(m.folds)}" for m in models) if len(models) > 1 else None,
        "identity_check": identity_check,
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
        "recognizer_kind": "backbone" if "backbone" in spec.components else "recognizer",
        "recognizer_weights": weights or None,
        "distance": rspec.distance,
        "score": "cosine similarity" if rspec.distance == "cosine" else "minus Euclidean distance",
        "threshold_rule": ("10-fold: threshold chosen on the other 9 folds" if multi_fold
                           else "one fold: best threshold on the same pairs (optimistic)"),
        "tar_rule": "strict: largest TAR with FAR <= target",
        "fallbacks": int(faces.fallback.sum()),
        "meshing": "second image of every pair, on its aligned crop, harness.formats.mesh.mesh_image "
                   f"(default MeshParams) seeded with {MESH_SEED} + index of the pair in the full list",
        "mask": getattr(inp, "mask_mode", "blind"),
        "training_identities": identity_check,
        "quality": "PSNR / SSIM (skimage; SSIM 7x7, mean over RGB) on the aligned crops, mean over pairs",
        "flip_test": "none",
        "synthetic": bool(pairs.images.synthetic),
    }
    return {"protocol": protocol, "metrics": metrics, "sections": sections, "curves": curves}


def _best_accuracy(scores: np.ndarray, issame: np.ndarray) -> float:
    order = np.unique(scores)
    thr = np.concatenate([[order[0] - 1], (order[1:] + order[:-1]) / 2, [order[-1] + 1]])
    return float(max(np.mean((scores >= t) == issame) for t in thr))
