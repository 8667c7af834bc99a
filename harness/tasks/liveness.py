"""Liveness (presentation-attack detection) under ISO/IEC 30107-3.

Protocol (stated in every report):

* data: a liveness dataset (``spoof``) with bona fide (label 1) and attack
  (label 0, one species each) presentations in ``train`` / ``dev`` /
  ``test`` splits (unsplit data counts as test);
* trainable models are fitted on the training split first — of ``--train``
  when given, else of the evaluated dataset — and saved under the run's
  ``checkpoints/`` (an interrupted run reloads them);
* faces: detected with the run's detector (``--detector``; else the model's
  own ``detector`` option; else the detector declared the liveness default,
  ``meta["default_for"]``), one per
  image (nearest the image centre), five-point aligned to ``arcface_112``
  and resized to the model's input size; a flagged centre crop where no face
  is found.  With ``--landmarker NAME`` the landmarker places the five points
  in the detected box (faces where it places none keep the detector's points,
  counted as ``landmarker_misses``).  Full-image models (``minifasnet``) get
  the whole photo and the detected box and cut their own patches, so they
  refuse ``--landmarker`` (:func:`landmarker_refusal`);
* the decision threshold is fixed on the dev split with the dataset's
  ``threshold_rule`` (``eer`` by default: APCER = BPCER, attacks pooled; or
  ``bpcer20`` / ``bpcer10`` / ``bpcer100``; ``-o spoof.threshold_rule=...``);
  without a dev split it is fixed on the test scores themselves, an
  optimistic choice the report states (``threshold_source: test``);
* on the test split: APCER per attack species and its maximum, BPCER, ACER,
  HTER (attacks pooled), plus the EER and AUC of the test scores.

Synthesized attacks (:mod:`harness.synth`) are flagged with
``protocol["synthetic_attacks"]`` and the note that they are no substitute
for a real PAD database.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import ConfigError, DataError, HarnessError
from harness.tasks import _intervals, default_component
from harness.tasks._data import Skipped, readable, skip_bad_wanted
from harness.tasks._faces import centre_box, locate_faces, make_crops, progress_iter
from harness.tasks._landmark_points import landmarker_protocol
from harness.types import FaceScoringLiveness

if TYPE_CHECKING:
    from harness.config import DataRef, RunSpec
    from harness.specs import LivenessSpec
    from harness.tasks import TaskContext

__all__ = ["TEMPLATE", "landmarker_refusal", "run"]

#: alignment of the face crops given to face-crop models
TEMPLATE = "arcface_112"
FACE_POLICY = "center"
DECISION = "bona fide when score >= threshold (scores: higher = bona fide)"


@dataclass
class _Part:
    """One split of one dataset, prepared for a model."""

    ref: "DataRef"
    record: Any
    split: str
    idx: np.ndarray
    inputs: list  # crops, or (image key index) for full-image models
    boxes: np.ndarray | None
    fallback: np.ndarray
    detector: str | None
    faces_per_image: np.ndarray | None
    landmarker: Any = None  # --landmarker: who placed the points, and its misses (LandmarkerUse)

    @property
    def labels(self) -> np.ndarray:
        return np.asarray(self.record.labels)[self.idx].astype(np.int64)

    @property
    def species(self) -> np.ndarray:
        return np.asarray(self.record.species)[self.idx].astype(str)

    @property
    def keys(self) -> list[str]:
        return [self.record.images.keys[int(i)] for i in self.idx]


def _open(ctx: "TaskContext", spec: "RunSpec", ref: "DataRef") -> Any:
    from harness.tasks._data import open_dataset
    from harness.types import LivenessData

    ds = open_dataset(ctx, spec, ref)
    if not isinstance(ds, LivenessData):
        raise HarnessError(
            f"dataset {ref.name!r} has no liveness data (bona fide / attack labels); a liveness run needs one "
            f"such as --eval spoof=PATH (see `harness list dataset`)"
        )
    return ds.liveness()


def _readable(ctx: "TaskContext", spec: "RunSpec", ref: "DataRef", record: Any, idx: np.ndarray,
              skipped: Skipped) -> np.ndarray:
    """``idx`` without the unreadable images under ``--skip-bad`` (added to ``skipped``); else ``idx``."""
    if not len(idx) or not skip_bad_wanted(ctx, spec, ref):
        return idx
    return idx[readable(record.images, idx, ref, skipped, ctx.progress)]


def _split_indices(record: Any, wanted: str) -> tuple[str, np.ndarray]:
    split = np.asarray(record.split).astype(str)
    idx = np.flatnonzero(split == wanted)
    if len(idx):
        return wanted, idx
    if wanted in ("test", "train"):  # unsplit data serves as either
        idx = np.flatnonzero(split == "")
        if len(idx):
            return "(unsplit)", idx
    return wanted, idx


def _prepare(ctx: "TaskContext", spec: "RunSpec", lspec: "LivenessSpec", ref: "DataRef", record: Any,
             split: str, idx: np.ndarray, detector: str | None) -> _Part:
    images = record.images
    full = lspec.meta.get("input") == "full_image"
    faces = None
    det_name: str | None = None
    if images.aligned is None or full:
        detector = detector or default_component(ctx.registry, "detector", "liveness")
        det_name = detector
        lmk = None if full else spec.components.get("landmarker")  # full-image models refuse one (run)
        faces = locate_faces(images, idx, registry=ctx.registry, detector=detector,
                             detector_options=spec.options.get(detector), policy=FACE_POLICY,
                             cache_dir=ctx.cache_dir, progress=ctx.progress, landmarker=lmk,
                             landmarker_options=spec.options.get(lmk) if lmk else None)
    if full:
        fallback = ~faces.found
        return _Part(ref, record, split, idx, [], faces.boxes, fallback, det_name, faces.faces_per_image)
    crops, fallback = make_crops(images, idx, template=TEMPLATE, size=tuple(lspec.input_size), faces=faces,
                                 progress=ctx.progress)
    return _Part(ref, record, split, idx, crops, None, fallback, det_name,
                 None if faces is None else faces.faces_per_image, None if faces is None else faces.landmarker)


def landmarker_refusal(lspec: "LivenessSpec", landmarker: str) -> str | None:
    """Why ``--landmarker`` cannot go beside liveness model ``lspec`` (None: it can).  A model
    that takes face crops aligned on five points (``meta["input"] == "face_crop"``, the
    default) takes the landmarker's points; a full-image model cuts its own patches from
    the detector's box, so alignment points would change nothing."""
    if lspec.meta.get("input") != "full_image":
        return None
    return (f"--landmarker {landmarker} with --liveness {lspec.name}: {lspec.name} takes the whole image and cuts "
            "its own patches from the detector's box, so alignment points change nothing; drop --landmarker for "
            "it, or pick a liveness model that takes aligned face crops (`harness list liveness`)")


def _alignment(lspec: "LivenessSpec", part: _Part) -> str:
    """The protocol's ``alignment``: the model's own crop, the template, or the template with the
    landmarker that placed its points."""
    if lspec.meta.get("input") == "full_image":
        return "model's own crop of the detected box: " + str(lspec.meta.get("crop", ""))
    use = part.landmarker
    if use is None:
        return TEMPLATE
    return f"{TEMPLATE}; five points by landmarker {use.name} in the detector's box ({use.rule})"


def _score(model: Any, part: _Part, lspec: "LivenessSpec", progress: bool) -> np.ndarray:
    if lspec.meta.get("input") != "full_image":
        out = np.asarray(model.score(part.inputs), np.float64).reshape(-1)
    else:
        images = part.record.images
        out = np.zeros(len(part.idx), np.float64)
        for j in progress_iter(range(len(part.idx)), f"score ({lspec.name})", progress):
            img = images.load(int(part.idx[j]))
            box = part.boxes[j] if part.boxes is not None else np.full(4, np.nan)
            if not np.all(np.isfinite(box)):  # flagged fallback: centred box of half the shorter side
                box = centre_box(img.shape)
            if isinstance(model, FaceScoringLiveness):
                out[j] = float(np.asarray(model.score_faces(img, box[None])).reshape(-1)[0])
            else:
                out[j] = float(np.asarray(model.score([img])).reshape(-1)[0])
    if out.shape != (len(part.idx),):
        raise HarnessError(f"{lspec.name}.score returned {out.shape[0]} scores for {len(part.idx)} images")
    if not np.all(np.isfinite(out)):
        raise HarnessError(f"{lspec.name} gave {int((~np.isfinite(out)).sum())} non-finite scores on "
                           f"{part.ref} ({part.split})")
    return out


def _train(ctx: "TaskContext", spec: "RunSpec", lspec: "LivenessSpec", model: Any, eval_record: Any,
           eval_ref: "DataRef", detector: str | None) -> tuple[dict, dict, set]:
    """Fit (or reload) a trainable model; returns the training section, curves
    and the keys trained on (to check they are not tested on)."""
    if spec.train:
        ref = spec.train[0]
        record = _open(ctx, spec, ref)
    else:
        ref, record = eval_ref, eval_record
    split, idx = _split_indices(record, "train")
    if split == "(unsplit)" and not spec.train:
        idx = np.zeros(0, np.int64)
    if not len(idx):
        raise ConfigError(
            f"{lspec.name} is trainable and needs training data: add --train spoof=DIR, or give {eval_ref} a "
            f"train/ split (harness.synth.synthesize_spoof_set writes train/dev/test)"
        )
    skipped = Skipped()
    idx = _readable(ctx, spec, ref, record, idx, skipped)
    part = _prepare(ctx, spec, lspec, ref, record, split, idx, detector)
    y = part.labels
    if y.min() == y.max():
        raise DataError(f"training split {split!r} of {ref} holds only "
                        f"{'bona fide' if y[0] else 'attack'} presentations; both are needed")
    ext = "npz" if lspec.framework != "torch" else "pt"
    ckpt = ctx.run_dir.checkpoint_dir / f"{lspec.name}.{ext}"
    t0 = time.perf_counter()
    resumed = False
    if ctx.resume and ckpt.is_file():
        ctx.log(f"{lspec.name}: reloading the trained model from {ckpt}")
        model.load(ckpt)
        resumed = True
    else:
        ctx.log(f"{lspec.name}: training on {len(y)} presentations of {ref} ({split})")
        model.fit(part.inputs, y, species=part.species, progress=ctx.progress)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        model.save(ckpt)
    hist = dict(getattr(model, "history", {}) or {})
    curves = {}
    if hist.get("loss"):
        curves["training"] = {"step": list(hist.get("epoch", range(1, len(hist["loss"]) + 1))),
                              "loss": list(hist["loss"]), "lr": list(hist.get("lr", []))}
    section = {
        "dataset": str(ref), "split": split, "presentations": int(len(y)), "bona_fide": int(y.sum()),
        "attack": int((y == 0).sum()), "species": sorted(set(part.species[y == 0].tolist())),
        "fallbacks": int(part.fallback.sum()), **landmarker_protocol(part.landmarker),
        "checkpoint": str(ckpt), "resumed": resumed,
        "wall_s": round(time.perf_counter() - t0, 2),
        **{k: v for k, v in hist.items() if k not in ("epoch", "loss", "lr")},
        **({"skipped_items": len(skipped.items), "skipped": [i["item"] for i in skipped.items]}
           if skip_bad_wanted(ctx, spec, ref) else {}),
    }
    return section, curves, set(part.keys)


def _evaluate(ctx: "TaskContext", spec: "RunSpec", lspec: "LivenessSpec", model: Any, ref: "DataRef",
              record: Any, detector: str | None, trained_on: set, train_ref: str | None, save: bool) -> dict:
    from harness.metrics.report import liveness_summary
    from harness.synth import SYNTHETIC_NOTE

    test_split, test_idx = _split_indices(record, "test")
    if not len(test_idx):
        raise DataError(f"{ref} has no test presentations (a test/ split, or unsplit live/ and attack/ folders)")
    dev_split, dev_idx = _split_indices(record, "dev")
    skipped = Skipped()
    test_idx = _readable(ctx, spec, ref, record, test_idx, skipped)
    dev_idx = _readable(ctx, spec, ref, record, dev_idx, skipped)
    test = _prepare(ctx, spec, lspec, ref, record, test_split, test_idx, detector)
    overlap = trained_on & set(test.keys)
    if overlap:
        raise ConfigError(
            f"{len(overlap)} test presentations of {ref} were also trained on (e.g. {sorted(overlap)[0]}); "
            "give the training data its own train/ split or folder"
        )
    y = test.labels
    if y.min() == y.max():
        raise DataError(f"the test split of {ref} holds only {'bona fide' if y[0] else 'attack'} presentations; "
                        "APCER and BPCER need both")
    scores = _score(model, test, lspec, ctx.progress)
    rule = getattr(record, "threshold_rule", "eer") or "eer"
    dev_scores = dev_labels = None
    dev_info: dict[str, Any] = {"split": None}
    if len(dev_idx):
        dev = _prepare(ctx, spec, lspec, ref, record, dev_split, dev_idx, detector)
        dev_labels = dev.labels
        if dev_labels.min() == dev_labels.max():
            raise DataError(f"the dev split of {ref} holds only one class; the threshold rule needs both")
        dev_scores = _score(model, dev, lspec, ctx.progress)
        dev_info = {"split": dev_split, "bona_fide": int(dev_labels.sum()), "attack": int((dev_labels == 0).sum()),
                    "fallbacks": int(dev.fallback.sum()), **landmarker_protocol(dev.landmarker)}
        if save:
            ctx.run_dir.save_arrays("dev_scores", score=dev_scores, label=dev_labels.astype(np.int8),
                                    species=dev.species, fallback=dev.fallback)
    summary = liveness_summary(scores, y, np.where(y == 1, "", test.species), dev_scores=dev_scores,
                               dev_labels=dev_labels, rule=rule)
    _intervals.liveness(spec, summary, scores, y, np.where(y == 1, "", test.species))
    if save:
        ctx.run_dir.save_arrays("scores", score=scores, label=y.astype(np.int8), species=test.species,
                                fallback=test.fallback, key=np.asarray(test.keys, dtype=str))
    lv = summary["sections"]["liveness"]
    synthetic = bool(getattr(record, "synthetic_attacks", False))
    protocol = {
        "dataset": ref.name,
        "path": ref.path,
        "name": "ISO/IEC 30107-3: threshold fixed on the dev split, errors on the test split",
        "test_split": test_split,
        "dev_split": dev_info["split"],
        "train": train_ref,
        "bona_fide": int(y.sum()),
        "attacks": int((y == 0).sum()),
        "attack_species": lv["counts"]["per_species"],
        "threshold_rule": rule,
        "threshold_source": lv["threshold_source"],
        "decision": DECISION,
        "detector": test.detector or f"none (data already aligned: {record.images.aligned})",
        "face_choice": "nearest the image centre" if test.detector else None,
        "alignment": _alignment(lspec, test),
        "input_size": list(lspec.input_size),
        "model_input": lspec.meta.get("input", "face_crop"),
        "fallbacks": int(test.fallback.sum()),
        "multi_face_images": None if test.faces_per_image is None else int((test.faces_per_image > 1).sum()),
        **landmarker_protocol(test.landmarker),  # --landmarker: faces where it placed no points
        "synthetic_attacks": synthetic,
        "synthetic": synthetic,
    }
    if synthetic:
        protocol["note"] = getattr(record, "note", "") or SYNTHETIC_NOTE
        if "no substitute" not in protocol["note"] and "not a substitute" not in protocol["note"]:
            protocol["note"] += " " + SYNTHETIC_NOTE
    if lv["threshold_source"] == "test":
        protocol["threshold_warning"] = "no dev split: the threshold was fixed on the test scores (optimistic)"
    sections = {"liveness": {**lv, "dev": dev_info}}
    from harness.tasks._gallery import liveness_gallery  # worst-scored attacks and bona fide, as thumbnails

    sections["failure_gallery"] = liveness_gallery(test, scores, lv.get("threshold"))
    sections["intervals"] = summary["sections"]["intervals"]
    if skip_bad_wanted(ctx, spec, ref):
        protocol["skipped_items"] = len(skipped.items)
        sections["skipped"] = skipped.section()
    return {"protocol": protocol, "metrics": summary["metrics"], "sections": sections,
            "curves": dict(summary.get("curves", {}))}


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    reg = ctx.registry
    name = spec.components.get("liveness")
    if not name:
        raise HarnessError(f"a liveness run needs --liveness NAME, got components {dict(spec.components)}")
    if not spec.eval:
        raise ConfigError("a liveness run needs evaluation data: --eval spoof=PATH")
    lspec = reg.get("liveness", name)
    refusal = landmarker_refusal(lspec, spec.components["landmarker"]) if "landmarker" in spec.components else None
    if refusal:
        raise ConfigError(refusal)
    kwargs = {"registry": reg} if lspec.meta.get("input") == "full_image" else {}
    model = reg.build("liveness", name, spec.options.get(name), **kwargs)
    own = lspec.make_options(spec.options.get(name)) if "detector" in lspec.option_fields() else None
    # None: the detector declared the liveness default, resolved only when faces must be found
    detector = spec.components.get("detector") or (own.detector if own is not None else None)
    first_ref = spec.eval[0]
    first = _open(ctx, spec, first_ref)
    training: dict = {}
    curves: dict = {}
    trained_on: set = set()
    train_ref = None
    if lspec.trainable:
        training, curves, trained_on = _train(ctx, spec, lspec, model, first, first_ref, detector)
        train_ref = training["dataset"] + f" ({training['split']})"
    elif spec.train:
        ctx.log(f"{name} is pretrained (not trainable): --train {spec.train[0]} is not used")
    out = _evaluate(ctx, spec, lspec, model, first_ref, first, detector, trained_on, train_ref, save=True)
    if training:
        out["sections"]["training"] = training
        out["curves"].update(curves)
    others = []
    for ref in spec.eval[1:]:
        r = _evaluate(ctx, spec, lspec, model, ref, _open(ctx, spec, ref), detector, trained_on, train_ref,
                      save=False)
        others.append({"protocol": r["protocol"], "metrics": r["metrics"], "sections": r["sections"]})
    if others:
        out["sections"]["other_evals"] = others
    return out
