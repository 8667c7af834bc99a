"""Inpainting: the "meshface" protocol (mesh removal, then verification).

Protocol (stated in every report):

* Pairs: LFW View 2 (``--eval``; ``--eval-folds`` restricts the folds).
* Faces: every image is detected (``--detector``; else the detector the
  recognizer's spec names, else the one declared the inpainting default),
  one face per image is kept (nearest the centre) and aligned the way the
  recognizer expects — its own alignment when it aligns itself
  (:class:`harness.types.SelfAligningRecognizer`, e.g. dlib's 150x150 chip).
  A face that is not found falls back to a centred box (counted in
  ``fallbacks``).
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
  with the recognizer (``--recognizer``, else the one declared the
  inpainting default; or a ``--backbone`` with weights, e.g.
  ``mobilefacenet.weights=casia``, with its own alignment and cosine scores,
  embedded by the engine recognition would use: ``--engine``, else its
  framework's; ``protocol.recognizer_engine`` and ``sections.manifest`` name it);
  k-fold accuracy over the evaluated folds (threshold on the other k - 1,
  stated from the folds used), TAR@FAR = 1e-3 (strict rule) and EER for each.
* ``--skip-bad``: pairs using an unreadable image are dropped before meshing
  and counted in the protocol (:mod:`harness.tasks._data`).
* Training (``--train NAME=PATH``, trainable inpainters): no pair is ever
  restored by a model that saw one of its identities in training (names
  compared case-insensitively).  When the training set minus every
  evaluated identity still holds ``MIN_TRAIN_IMAGES`` images, one model is
  trained on them.  Otherwise — training on LFW itself while evaluating all
  of View 2 — the evaluated folds are **cross-fitted**, LFW's own fold
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
from harness.tasks import _intervals, choose_detector, default_component
from harness.tasks._data import Skipped, load_pairs, train_images
from harness.tasks._faces import DAMAGED_CACHE, FaceCrops, embed_in_batches, face_crops, fingerprint, progress_iter
from harness.tasks._landmark_points import landmarker_protocol
from harness.tasks._manifest import with_landmarker
from harness.tasks._pipeline import landmarker_of
from harness.types import IdentityGuidedInpainter, TrainableInpainter

if TYPE_CHECKING:
    from harness.config import RunSpec
    from harness.tasks import TaskContext
    from harness.types import ImageSet, PairSet

__all__ = ["CROSS_FIT_GROUPS", "MAX_TRAIN_IMAGES", "MESH_SEED", "MIN_TRAIN_IMAGES", "PROTOCOL", "fold_groups",
           "fold_identities", "plan_training", "run", "subset_pairs", "training_subset"]

PROTOCOL = "meshface"
MESH_SEED = 20160601
MAX_TRAIN_IMAGES = 3000
MIN_TRAIN_IMAGES = 200
CROSS_FIT_GROUPS = 2
N_SAMPLES = 4
CONDITIONS = ("clean", "meshed", "restored")


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


def _load_pairs(ctx: "TaskContext", spec: "RunSpec") -> tuple["PairSet", np.ndarray, Skipped]:
    """The evaluated pairs, each one's index in the full pair list (the mesh seed), and what
    ``--skip-bad`` left out."""
    pairs, index, skipped = load_pairs(ctx, spec, spec.eval[0])
    pairs, keep = subset_pairs(pairs, ctx.extra.get("max_pairs"))
    return pairs, index[keep], skipped


# ------------------------------------------------------------------ faces
def aligned_faces(ctx: "TaskContext", spec: "RunSpec", images: "ImageSet", indices: np.ndarray,
                  rec: Any, rspec: Any, desc: str = "align") -> FaceCrops:
    """The aligned crops the recognizer sees, for ``images[indices]``."""
    from harness.types import crop_template

    detector = None
    if images.aligned is None:
        detector = choose_detector(ctx.registry, spec.components, "inpainting", rspec)
    return face_crops(images, indices, registry=ctx.registry, detector=detector,
                      detector_options=spec.options.get(detector or ""),
                      template=crop_template(rec, rspec.alignment), size=tuple(rspec.input_size), recognizer=rec,
                      cache_dir=ctx.cache_dir, progress=ctx.progress, desc=desc, **landmarker_of(spec))


@dataclasses.dataclass(frozen=True)
class _VerifierInfo:
    """What the protocol needs to know of a backbone used as the verification model."""

    input_size: tuple[int, int]
    alignment: str
    distance: str = "cosine"
    meta: Any = dataclasses.field(default_factory=dict)
    flip: str | None = None
    engine: str | None = None  # the engine that embeds (recognition's rule: --engine, else the framework's)


class _BackboneVerifier:
    """A backbone with weights (``-o NAME.weights=...``) as the meshface recognizer: its own
    alignment, input size, normalisation and flip rule, cosine scores; embedded by the engine
    recognition would use for it (``--engine``, else its framework's:
    :func:`harness.tasks.recognition.backbone_on_engine`)."""

    def __init__(self, ctx: "TaskContext", spec: "RunSpec", name: str) -> None:
        from harness.tasks.recognition import _effective_backbone, backbone_on_engine, flip_rule

        reg = ctx.registry
        bspec = reg.get("backbone", name)
        eff = _effective_backbone(bspec, bspec.make_options(spec.options.get(name)))
        self.run_spec = dataclasses.replace(bspec, input_size=eff["input_size"], mean=eff["mean"], std=eff["std"],
                                            alignment=eff["alignment"], embedding_size=eff["embedding_size"])
        self.flip = flip_rule(spec, eff)
        self.alignment = eff["alignment"]
        self.device = spec.training.device
        self.engine_name = getattr(spec, "engine", None) or bspec.framework
        self.engine, self.model = backbone_on_engine(reg, spec, name)
        self.info = _VerifierInfo(tuple(eff["input_size"]), eff["alignment"], flip=self.flip, engine=self.engine_name)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self.engine.embed(self.model, list(crops), backbone_spec=self.run_spec, flip=self.flip, batch_size=64,
                                 device=self.device)

    def manifest(self) -> dict:
        """``sections.manifest`` of the verifier as evaluated, naming the engine that embedded."""
        from harness.tasks._manifest import backbone_manifest

        return {"engine": self.engine_name, **backbone_manifest(self.engine, self.model, self.run_spec, flip=self.flip,
                                                                device=self.device, batch_size=32)}


def _verifier(ctx: "TaskContext", spec: "RunSpec") -> tuple[str, Any, Any]:
    """(name, model with ``embed``, spec-like with input_size / alignment / distance)."""
    if "backbone" in spec.components:
        name = spec.components["backbone"]
        if not (spec.options.get(name) or {}).get("weights"):
            raise ConfigError(f"backbone {name!r} verifies the meshface pairs only with weights: "
                              f"-o {name}.weights=PATH (or a named variant such as mobilefacenet.weights=casia)")
        ver = _BackboneVerifier(ctx, spec, name)
        return name, ver, ver.info
    name = spec.components.get("recognizer") or default_component(ctx.registry, "recognizer", "inpainting")
    return name, ctx.registry.build("recognizer", name, spec.options.get(name)), ctx.registry.get("recognizer", name)


def _embed_cached(ctx: "TaskContext", key: str, rec: Any, crops: Sequence[np.ndarray], desc: str) -> np.ndarray:
    path = Path(ctx.cache_dir) / f"inpaint-emb-{key}.npz" if ctx.cache_dir else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if len(z["emb"]) == len(crops):
                    return z["emb"]
        except DAMAGED_CACHE:  # a damaged cache is recomputed, never trusted
            pass
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
    ref = spec.train[0]
    if "," in str((spec.options.get(iname) or {}).get("weights") or ""):
        raise ConfigError(f"{iname}.weights: --train fine-tunes one checkpoint; several (comma-separated) are "
                          "for evaluation only")
    train, skipped = train_images(ctx, spec, ref)
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
        if meta_id and isinstance(inp, IdentityGuidedInpainter) and inp.uses_identity and identity is None:
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
        **({"skipped_items": len(skipped.items)} if spec.skip_bad or skipped.items else {}),
    }
    return models, {"section": section, "curve": curve, "models": infos, "skipped": skipped}


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
        seen = inp.train_identities if isinstance(inp, TrainableInpainter) else None  # recorded by the checkpoint
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


@dataclasses.dataclass
class _Restoration:
    """The meshed second faces, their true masks, the restorations and the inpainter's own
    mask estimates (``None`` when it estimates none)."""

    meshed: list
    masks: list
    restored: list
    estimated: list | None


def _mesh(ctx: "TaskContext", crops: list, pos: np.ndarray, pair_index: np.ndarray) -> tuple[list, list]:
    """Mesh the second face of every pair, seeded by its index in the full pair list."""
    from harness.formats.mesh import mesh_image

    meshed, masks = [], []
    for k in progress_iter(range(len(pos)), "mesh", ctx.progress):
        m, mk = mesh_image(crops[pos[k, 1]], MESH_SEED + int(pair_index[k]))
        meshed.append(m)
        masks.append(mk)
    return meshed, masks


def _restore_batch(m: Any, batch: list, given: list | None, want_est: bool) -> tuple[list, list | None]:
    """One batch through an inpainter: restored images and, when wanted, its mask estimates."""
    from harness.types import MaskEstimatingInpainter, RestoringWithMasks

    if isinstance(m, RestoringWithMasks):  # restored images and estimated masks from one pass
        part, part_est = m.restore_with_masks(batch, given)
    else:
        part, part_est = m.restore(batch, given), None
    if want_est and part_est is None and isinstance(m, MaskEstimatingInpainter):
        part_est = m.estimate_masks(batch)
    return part, part_est


def _restore(ctx: "TaskContext", models: list[_Model], iname: str, pairs: "PairSet", meshed: list,
             masks: list) -> _Restoration:
    """Restore every meshed face with the model assigned to its fold, 64 at a time."""
    from harness.types import MaskEstimatingInpainter

    model_of_pair = np.zeros(len(pairs), np.int64)
    for j, m in enumerate(models):
        model_of_pair[np.isin(pairs.folds, m.folds)] = j
    first = models[0].inpainter
    with_est = not first.needs_mask and isinstance(first, MaskEstimatingInpainter)
    restored: list = [None] * len(meshed)
    est: list = [None] * len(meshed)
    batches = [(j, idx[s:s + 64]) for j in range(len(models))
               for idx in [np.flatnonzero(model_of_pair == j)] for s in range(0, len(idx), 64)]
    for j, idx in progress_iter(batches, f"restore ({iname})", ctx.progress, unit="batch"):
        m = models[j].inpainter
        given = [masks[i] for i in idx] if m.needs_mask else None
        part, part_est = _restore_batch(m, [meshed[i] for i in idx], given, with_est)
        if len(part) != len(idx):
            raise HarnessError(f"inpainter {iname!r} returned {len(part)} images for {len(idx)}")
        for n, i in enumerate(idx):
            restored[i] = np.asarray(part[n], np.uint8)
            if with_est:
                est[i] = part_est[n]
    if any(r is None or r.shape != m.shape for r, m in zip(restored, meshed)):
        raise HarnessError(f"inpainter {iname!r} returned images of other sizes or count than it was given")
    return _Restoration(meshed, masks, restored, est if with_est else None)


def _mask_ious(est: list | None, masks: list) -> np.ndarray | None:
    """IoU of each pair's estimated mesh mask with the true one (1 when both are empty)."""
    if est is None:
        return None
    inter = [np.count_nonzero((e > 0) & (t > 0)) for e, t in zip(est, masks)]
    union = [np.count_nonzero((e > 0) | (t > 0)) for e, t in zip(est, masks)]
    return np.array([i / u if u else 1.0 for i, u in zip(inter, union)], dtype=np.float64)


def _quality(clean2: list, r: _Restoration) -> dict[str, np.ndarray]:
    """PSNR / SSIM of meshed and restored second faces against their clean crops."""
    from harness.metrics.image import psnr, ssim

    return {
        "psnr_meshed": np.array([psnr(c, m) for c, m in zip(clean2, r.meshed)]),
        "ssim_meshed": np.array([ssim(c, m) for c, m in zip(clean2, r.meshed)]),
        "psnr_restored": np.array([psnr(c, x) for c, x in zip(clean2, r.restored)]),
        "ssim_restored": np.array([ssim(c, x) for c, x in zip(clean2, r.restored)]),
    }


def _condition_scores(ctx: "TaskContext", key: str, rname: str, rec: Any, distance: str, faces: FaceCrops,
                      pos: np.ndarray, r: _Restoration, pair_index: np.ndarray) -> dict[str, np.ndarray]:
    """Clean-clean, clean-meshed and clean-restored pair scores (clean and meshed embeddings cached)."""
    from harness.tasks.recognition import pair_similarity

    seeds = (MESH_SEED + pair_index).tolist()
    emb_clean = _embed_cached(ctx, key + "-clean", rec, faces.crops, f"embed clean ({rname})")
    emb_meshed = _embed_cached(ctx, fingerprint(key, "meshed", seeds), rec, r.meshed, f"embed meshed ({rname})")
    emb_restored = embed_in_batches(rec.embed, r.restored, batch=32, desc=f"embed restored ({rname})",
                                    progress=ctx.progress)
    a = emb_clean[pos[:, 0]]
    return {"clean": pair_similarity(a, emb_clean[pos[:, 1]], distance),
            "meshed": pair_similarity(a, emb_meshed, distance),
            "restored": pair_similarity(a, emb_restored, distance)}


def _fold_rule(pairs: "PairSet") -> str:
    """The accuracy rule as used, from the evaluated folds."""
    from harness.tasks.recognition import threshold_rule

    return threshold_rule(pairs.folds)


def _summaries(scores: dict[str, np.ndarray], pairs: "PairSet") -> dict[str, dict]:
    """The verification summary of each condition (k-fold over the evaluated folds; one fold:
    best threshold on the same pairs, stated as optimistic)."""
    from harness.metrics import Metric
    from harness.metrics.report import verification_summary

    labels = pairs.issame.astype(np.int64)
    multi_fold = len(np.unique(pairs.folds)) > 1
    summaries = {c: verification_summary(s, labels, pairs.folds if multi_fold else None) for c, s in scores.items()}
    if not multi_fold:
        for c, s in scores.items():
            summaries[c]["metrics"].insert(0, Metric(
                "accuracy", _best_accuracy(s, pairs.issame), "higher", _fold_rule(pairs)).to_dict())
    return summaries


def _metric_list(summaries: dict[str, dict], q: dict[str, np.ndarray], mask_iou: float | None) -> list[dict]:
    """Headline accuracies and image quality, TAR@FAR and EER per condition, then the restored
    pairs' full verification metrics."""
    from harness.metrics import Metric

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
    for m in summaries["restored"]["metrics"]:
        if m["name"] != "accuracy":
            metrics.append({**m, "name": f"{m['name']}_restored" if not m["name"].endswith("_restored") else m["name"],
                            "convention": "clean-restored pairs; " + m.get("convention", "")})
    return list({m["name"]: m for m in metrics}.values())


@dataclasses.dataclass
class _Setup:
    """What the protocol statement and the sections are written from."""

    iname: str
    rname: str
    rspec: Any
    weights: str
    pairs: "PairSet"
    uniq: np.ndarray
    faces: FaceCrops
    models: list[_Model]
    training: dict | None
    identity_check: str | None
    untrained: bool
    skipped: Skipped


def _protocol(spec: "RunSpec", st: _Setup) -> dict:
    inp = st.models[0].inpainter
    return {
        "name": PROTOCOL,
        "dataset": spec.eval[0].name,
        "path": spec.eval[0].path,
        "pairs_source": st.pairs.protocol,
        "pairs": int(len(st.pairs)),
        "folds": int(len(np.unique(st.pairs.folds))),
        "images": int(len(st.uniq)),
        "detector": st.faces.detector or "none (data already aligned)",
        "face_choice": "nearest the image centre" if st.faces.detector else None,
        "alignment": st.faces.alignment,
        "input_size": list(st.rspec.input_size),
        "recognizer": st.rname,
        "recognizer_kind": "backbone" if "backbone" in spec.components else "recognizer",
        "recognizer_weights": st.weights or None,
        **({"recognizer_engine": st.rspec.engine} if getattr(st.rspec, "engine", None) else {}),
        "distance": st.rspec.distance,
        "score": "cosine similarity" if st.rspec.distance == "cosine" else "minus Euclidean distance",
        "threshold_rule": _fold_rule(st.pairs),
        "tar_rule": "strict: largest TAR with FAR <= target",
        "fallbacks": int(st.faces.fallback.sum()),
        **landmarker_protocol(st.faces.landmarker),  # --landmarker: faces where it placed no points
        "meshing": "second image of every pair, on its aligned crop, harness.formats.mesh.mesh_image "
                   f"(default MeshParams) seeded with {MESH_SEED} + index of the pair in the full list",
        "mask": inp.mask_mode,
        "training_identities": st.identity_check,
        "quality": "PSNR / SSIM (skimage; SSIM 7x7, mean over RGB) on the aligned crops, mean over pairs",
        "flip_test": getattr(st.rspec, "flip", None) or "none",
        "synthetic": bool(st.pairs.images.synthetic),
        **({"skipped_items": len(st.skipped.items), "pairs_dropped": int(st.skipped.pairs_dropped)}
           if spec.skip_bad or st.skipped.items else {}),
    }


def _sections(ctx: "TaskContext", spec: "RunSpec", st: _Setup, summaries: dict, q: dict, r: _Restoration,
              clean2: list, mask_iou: float | None) -> tuple[dict, dict]:
    picks = np.linspace(0, len(st.pairs) - 1, min(N_SAMPLES, len(st.pairs))).astype(int)
    samples = _samples(ctx, [clean2[k] for k in picks], r.meshed, r.masks, r.restored, picks)
    sections = dict(summaries["restored"].get("sections", {}))
    sections["inpainting"] = {
        "psnr": float(np.mean(q["psnr_restored"])),
        "ssim": float(np.mean(q["ssim_restored"])),
        "psnr_meshed": float(np.mean(q["psnr_meshed"])),
        "ssim_meshed": float(np.mean(q["ssim_meshed"])),
        "measured_on": "aligned crops the recognizer sees (second face of each pair)",
        "verification": {"recognizer": st.rname, **{c: _short(summaries[c]) for c in CONDITIONS}},
        "mask": st.models[0].inpainter.mask_mode,
        "mask_iou": mask_iou,
        "untrained": st.untrained,
        "models": ("; ".join(f"{m.source} -> folds {list(m.folds)}" for m in st.models)
                   if len(st.models) > 1 else None),
        "identity_check": st.identity_check,
        "samples": samples,
        "sample_layout": "clean | meshed | true mask | restored",
    }
    curves = dict(summaries["restored"].get("curves", {}))
    skipped = st.skipped
    if st.training:
        sections["training"] = st.training["section"]
        curves["training"] = st.training["curve"]
        skipped = skipped.merge(st.training["skipped"])
    if spec.skip_bad or skipped.items:
        sections["skipped"] = skipped.section()
    return sections, curves


def _setup(ctx: "TaskContext", spec: "RunSpec") -> tuple[_Setup, Any, np.ndarray, np.ndarray, str]:
    """Check the run, load the pairs, align their faces and get the inpainter model(s)."""
    reg = ctx.registry
    if "inpainter" not in spec.components:
        raise HarnessError(f"an inpainting run needs --inpainter, got {dict(spec.components)}")
    if not spec.eval:
        raise ConfigError("an inpainting run needs --eval lfw=PATH (LFW View 2 pairs)")
    iname = spec.components["inpainter"]
    ispec = reg.get("inpainter", iname)
    rname, rec, rspec = _verifier(ctx, spec)
    pairs, pair_index, skipped = _load_pairs(ctx, spec)
    if len(pairs) == 0:
        raise DataError(f"{spec.eval[0]}: no pairs to evaluate")
    uniq = np.unique(pairs.pairs.ravel())
    faces = aligned_faces(ctx, spec, pairs.images, uniq, rec, rspec)
    weights = str((spec.options.get(rname) or {}).get("weights") or "")
    stamp = [Path(weights).stat().st_size, Path(weights).stat().st_mtime_ns] if Path(weights).is_file() else None
    key = fingerprint("inpaint", rname, spec.options.get(rname), faces.detector, spec.options.get(faces.detector or ""),
                      [pairs.images.keys[i] for i in uniq], *([stamp] if stamp else []),
                      *([f"flip={spec.flip_test}"] if spec.flip_test else []),
                      *([f"engine={rspec.engine}"] if getattr(rspec, "engine", None) else []),
                      *([f"alignment={faces.alignment}"] if faces.landmarker is not None else []))  # --landmarker
    training = None
    if spec.train:
        if not ispec.trainable:
            raise ConfigError(f"inpainter {iname!r} is not trainable; drop --train")
        models, training = _train(ctx, spec, ispec, iname, pairs, rec, rspec)
        identity_check = "checked: no pair is restored by a model trained on one of its identities"
    else:
        models, identity_check = _given_models(ctx, spec, ispec, iname, pairs)
    untrained = bool(ispec.trainable and not spec.train and not getattr(models[0].inpainter.options, "weights", ""))
    if untrained:
        ctx.log(f"warning: {iname} is evaluated untrained (no --train, no -o {iname}.weights=...)")
    st = _Setup(iname, rname, rspec, weights, pairs, uniq, faces, models, training, identity_check, untrained,
                skipped)
    return st, rec, pair_index, np.searchsorted(uniq, pairs.pairs), key


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    """The meshface protocol (module docstring): set up, mesh, restore, measure, verify, report."""
    st, rec, pair_index, pos, key = _setup(ctx, spec)
    meshed, masks = _mesh(ctx, st.faces.crops, pos, pair_index)
    r = _restore(ctx, st.models, st.iname, st.pairs, meshed, masks)
    clean2 = [st.faces.crops[p] for p in pos[:, 1]]
    q = _quality(clean2, r)
    scores = _condition_scores(ctx, key, st.rname, rec, st.rspec.distance, st.faces, pos, r, pair_index)
    summaries = _summaries(scores, st.pairs)
    ctx.run_dir.save_arrays("scores", label=st.pairs.issame.astype(np.int8), fold=st.pairs.folds,
                            pair_index=pair_index, **{f"score_{c}": s for c, s in scores.items()}, **q)
    ious = _mask_ious(r.estimated, masks)
    mask_iou = None if ious is None else float(np.mean(ious))
    metrics = _metric_list(summaries, q, mask_iou)
    sections, curves = _sections(ctx, spec, st, summaries, q, r, clean2, mask_iou)
    # confidence intervals of every condition's verification metrics and of the quality means
    sections["intervals"] = _intervals.inpainting(spec, metrics, scores, st.pairs.issame, st.pairs.folds, q, ious,
                                                  *st.pairs.images.labels[st.pairs.pairs].T)
    sections["manifest"] = with_landmarker(_verifier_manifest(rec, st), st.faces.landmarker)  # its engine named
    return {"protocol": _protocol(spec, st), "metrics": metrics, "sections": sections, "curves": curves}


def _verifier_manifest(rec: Any, st: _Setup) -> dict:
    """``sections.manifest`` of the verification model (:mod:`harness.tasks._manifest`): a backbone's
    names the engine that embedded it; a recognizer's is read from the recognizer."""
    if isinstance(rec, _BackboneVerifier):
        return rec.manifest()
    from harness.tasks._manifest import recognizer_manifest

    return recognizer_manifest(rec, st.rspec, template=st.faces.alignment, input_size=st.rspec.input_size,
                               task_batch=32)


def _best_accuracy(scores: np.ndarray, issame: np.ndarray) -> float:
    order = np.unique(scores)
    thr = np.concatenate([[order[0] - 1], (order[1:] + order[:-1]) / 2, [order[-1] + 1]])
    return float(max(np.mean((scores >= t) == issame) for t in thr))
