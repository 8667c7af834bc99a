"""Recognition: train a backbone with a loss (or take a pretrained
recognizer), then verify on pairs under one stated protocol.

Protocol (stated in every report): faces are detected (unless the data is
already aligned), one face per image is chosen nearest the image centre,
aligned with a five-point similarity transform to the model's template (a
flagged centre crop when no face is found), embedded, and compared with
cosine similarity (Euclidean distance for models published that way).
Accuracy is the 10-fold protocol with the threshold chosen on the other 9
folds over all midpoints between distinct scores; TAR@FAR uses the strict
rule (largest TAR with FAR <= target).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import ConfigError, HarnessError
from harness.tasks._faces import embed_in_batches, locate_faces, make_crops, progress_iter

if TYPE_CHECKING:
    from harness.config import DataRef, RunSpec
    from harness.specs import BackboneSpec
    from harness.tasks import TaskContext
    from harness.types import PairSet

__all__ = ["DEFAULT_DETECTOR", "run"]

#: detector used on raw photos when the run names none (stated in the report)
DEFAULT_DETECTOR = "mtcnn"
THRESHOLD_RULE = (
    "10-fold: threshold chosen on the other 9 folds over all midpoints between distinct scores; "
    "accepted when score >= threshold"
)
#: embed the eval set after each epoch only when it is this small
_EPOCH_EVAL_MAX_IMAGES = 3000


@dataclasses.dataclass
class _EvalSet:
    ref: "DataRef"
    pairs: "PairSet"
    uniq: np.ndarray
    crops: list
    fallback: np.ndarray
    detector: str | None
    template: str
    faces_per_image: np.ndarray | None

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        pos = np.searchsorted(self.uniq, self.pairs.pairs)
        return pos[:, 0], pos[:, 1]


def open_dataset(ctx: "TaskContext", ref: "DataRef", options: dict | None = None) -> Any:
    return ctx.registry.build("dataset", ref.name, options or {}, path=ref.path)


def load_pairs(ctx: "TaskContext", ref: "DataRef", spec: "RunSpec") -> "PairSet":
    pairs = open_dataset(ctx, ref, spec.options.get(ref.name)).verification()
    folds = spec.eval_folds
    if folds:
        present = sorted(set(pairs.folds.tolist()))
        bad = [f for f in folds if f not in present]
        if bad:
            raise ConfigError(f"--eval-folds {bad} not in {ref.name}'s folds {present}")
        pairs = pairs.subset(folds)
    return pairs


def prepare_eval(
    ctx: "TaskContext", spec: "RunSpec", ref: "DataRef", *, template: str, size: tuple[int, int],
) -> _EvalSet:
    """Pairs plus aligned crops of every image they use (detected once, cached)."""
    pairs = load_pairs(ctx, ref, spec)
    uniq = np.unique(pairs.pairs.ravel())
    faces = None
    detector = None
    if pairs.images.aligned is None:
        detector = spec.components.get("detector", DEFAULT_DETECTOR)
        faces = locate_faces(
            pairs.images, uniq, registry=ctx.registry, detector=detector,
            detector_options=spec.options.get(detector), cache_dir=ctx.cache_dir, progress=ctx.progress,
        )
    crops, fallback = make_crops(pairs.images, uniq, template=template, size=size, faces=faces,
                                 progress=ctx.progress)
    return _EvalSet(ref, pairs, uniq, crops, fallback, detector, template,
                    None if faces is None else faces.faces_per_image)


def pair_scores(emb: np.ndarray, ev: _EvalSet, distance: str) -> np.ndarray:
    """Similarity of each pair: cosine, or minus the Euclidean distance."""
    a, b = ev.rows()
    e1, e2 = emb[a], emb[b]
    if distance == "cosine":
        n1 = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1)
        return (np.sum(e1 * e2, axis=1) / np.maximum(n1, 1e-12)).astype(np.float64)
    if distance == "euclidean":
        return -np.linalg.norm(e1 - e2, axis=1).astype(np.float64)
    raise HarnessError(f"unknown distance {distance!r}: expected 'cosine' or 'euclidean'")


def _protocol(ev: _EvalSet, *, input_size, flip: str | None, distance: str, synthetic: bool) -> dict:
    p = ev.pairs
    return {
        "dataset": ev.ref.name,
        "path": ev.ref.path,
        "name": p.protocol,
        "pairs": int(len(p)),
        "folds": int(len(np.unique(p.folds))),
        "images": int(len(ev.uniq)),
        "detector": ev.detector or f"none (data already aligned: {p.images.aligned})",
        "face_choice": "nearest the image centre" if ev.detector else None,
        "alignment": ev.template,
        "input_size": list(input_size),
        "flip_test": flip or "none",
        "distance": distance,
        "score": "cosine similarity" if distance == "cosine" else "minus Euclidean distance",
        "threshold_rule": THRESHOLD_RULE,
        "cv_folds": eval_folds(p.issame, p.folds)[1],
        "tar_rule": "strict: largest TAR with FAR <= target",
        "fallbacks": int(ev.fallback.sum()),
        "multi_face_images": None if ev.faces_per_image is None else int((ev.faces_per_image > 1).sum()),
        "synthetic": bool(synthetic or p.images.synthetic),
    }


def eval_folds(issame: np.ndarray, folds: np.ndarray, n_sub: int = 10) -> tuple[np.ndarray, str]:
    """The folds accuracy is cross-validated over, and how they were made.

    The dataset's own folds when it has several (LFW View 2: 10 x 600).  With
    a single fold (e.g. ``--eval-folds 0`` in CI) its pairs are split into
    ``n_sub`` stratified sub-folds — the k-th genuine and the k-th impostor
    pair go to sub-fold k mod n_sub — so the threshold is still never chosen
    on the pairs it is tested on.
    """
    if len(np.unique(folds)) > 1:
        return folds, "dataset folds"
    sub = np.empty(len(issame), np.int64)
    for cls in (True, False):
        idx = np.flatnonzero(issame == cls)
        sub[idx] = np.arange(len(idx)) % n_sub
    return sub, f"one fold split into {n_sub} stratified sub-folds (k-th pair of each class -> k mod {n_sub})"


def _summarise(scores: np.ndarray, ev: _EvalSet) -> dict:
    from harness.metrics.report import verification_summary

    labels = ev.pairs.issame.astype(np.int64)
    folds, _how = eval_folds(ev.pairs.issame, ev.pairs.folds)
    return verification_summary(scores, labels, folds)


def _accuracy(summary: dict) -> float | None:
    for m in summary["metrics"]:
        if m["name"] == "accuracy":
            return m["value"]
    return None


def _results(ctx: "TaskContext", evals: list[tuple[_EvalSet, np.ndarray]], protocol_kw: dict) -> dict:
    first, scores = evals[0]
    summary = _summarise(scores, first)
    ctx.run_dir.save_arrays(
        "scores", score=scores, label=first.pairs.issame.astype(np.int8), fold=first.pairs.folds,
        fallback_a=first.fallback[first.rows()[0]], fallback_b=first.fallback[first.rows()[1]],
    )
    out = {
        "protocol": _protocol(first, **protocol_kw),
        "metrics": summary["metrics"],
        "sections": dict(summary.get("sections", {})),
        "curves": dict(summary.get("curves", {})),
    }
    others = []
    for ev, sc in evals[1:]:
        s = _summarise(sc, ev)
        others.append({"protocol": _protocol(ev, **protocol_kw), "metrics": s["metrics"],
                       "sections": {k: v for k, v in s.get("sections", {}).items() if k != "hist"}})
    if others:
        out["sections"]["other_evals"] = others
    return out


# --------------------------------------------------------------- backbones
def _effective_backbone(bspec: "BackboneSpec", opts: Any) -> dict:
    """Input size, normalisation, alignment and flip rule after options
    (a weights variant such as ``mobilefacenet.weights=casia`` changes them)."""
    info = {
        "input_size": tuple(bspec.input_size), "mean": tuple(bspec.mean), "std": tuple(bspec.std),
        "alignment": bspec.alignment, "flip_concat": bool(bspec.meta.get("flip_concat", False)),
        "embedding_size": bspec.embedding_size,
    }
    size = getattr(opts, "input_size", None)
    if isinstance(size, int) and size:
        info["input_size"] = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        info["input_size"] = tuple(size)
    emb = getattr(opts, "embedding_size", None)
    if isinstance(emb, int) and emb:
        info["embedding_size"] = emb
    variant = (bspec.meta.get("variants") or {}).get(getattr(opts, "weights", None) or "")
    if variant:
        for k in ("input_size", "mean", "std", "alignment", "flip_concat", "embedding_size"):
            if k in variant:
                info[k] = tuple(variant[k]) if isinstance(variant[k], list) else variant[k]
    return info


def _run_backbone(spec: "RunSpec", ctx: "TaskContext") -> dict:
    reg = ctx.registry
    bname = spec.components["backbone"]
    bspec = reg.get("backbone", bname)
    bopts = bspec.make_options(spec.options.get(bname))
    eff = _effective_backbone(bspec, bopts)
    run_spec = dataclasses.replace(
        bspec, input_size=eff["input_size"], mean=eff["mean"], std=eff["std"], alignment=eff["alignment"],
        embedding_size=eff["embedding_size"],
    )
    flip = "concat" if eff["flip_concat"] else None
    engine = reg.build("engine", bspec.framework)
    engine.seed_everything(spec.seed)
    model = reg.build("backbone", bname, spec.options.get(bname))

    evals = [prepare_eval(ctx, spec, ref, template=eff["alignment"], size=eff["input_size"]) for ref in spec.eval]

    def embed(m) -> list[np.ndarray]:
        return [engine.embed(m, ev.crops, backbone_spec=run_spec, flip=flip, batch_size=64,
                             device=spec.training.device, progress=ctx.progress) for ev in evals]

    out_sections: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    if spec.train:
        if "loss" not in spec.components:
            raise ConfigError(f"training {bname} needs a loss: add --loss NAME (`harness list loss`)")
        lname = spec.components["loss"]
        lspec = reg.get("loss", lname)
        train_ref = spec.train[0]
        train_set = open_dataset(ctx, train_ref, spec.options.get(train_ref.name)).train_set()
        if train_set.aligned is None:
            raise HarnessError(
                f"training data {train_ref} holds raw photos; facebench trains on aligned crops. "
                f"Align them first: harness data rec {train_ref.path or 'DIR'} -o train --detector mtcnn"
            )
        ctx.log(f"untrained {bname}: embedding the evaluation set for the baseline")
        baseline = [_accuracy(_summarise(pair_scores(e, ev, "cosine"), ev)) for e, ev in zip(embed(model), evals)]
        loss = reg.build("loss", lname, spec.options.get(lname), embedding_size=_embedding_dim(engine, model, run_spec),
                         num_classes=train_set.num_classes)
        first_eval = evals[0]

        def on_epoch_end(epoch: int, m: Any) -> dict:
            if len(first_eval.crops) > _EPOCH_EVAL_MAX_IMAGES:
                return {}
            e = engine.embed(m, first_eval.crops, backbone_spec=run_spec, flip=flip, device=spec.training.device)
            return {"val_accuracy": _accuracy(_summarise(pair_scores(e, first_eval, "cosine"), first_eval))}

        outcome = engine.train(
            model, loss, train_set, backbone_spec=run_spec, settings=spec.training,
            workdir=ctx.run_dir.path, seed=spec.seed, resume=ctx.resume, init=spec.training.init,
            sampler=lspec.sampler, on_epoch_end=on_epoch_end, progress=ctx.progress,
        )
        model = outcome.model
        h = outcome.history
        curves["training"] = {k: list(h.get(k, [])) for k in ("step", "loss", "lr", "accuracy")}
        out_sections["training"] = {
            "dataset": str(train_ref), "images": len(train_set), "identities": train_set.num_classes,
            "synthetic": bool(train_set.synthetic), "steps": outcome.steps, "epochs": outcome.epochs_done,
            "wall_s": round(outcome.wall_s, 2), "device": outcome.device, "stopped_by": outcome.stopped_by,
            "resumed_from_step": outcome.resumed_from_step, "checkpoint": str(outcome.checkpoint),
            "img_per_s": round(float(np.mean(h["img_per_s"])) if h.get("img_per_s") else 0.0, 2),
            "epoch_evals": h.get("eval", []),
            "settings": dataclasses.asdict(spec.training),
        }
        out_sections["baseline"] = {
            "what": f"the same {bname}, untrained (seeded initialisation), on the same pairs",
            "accuracy": baseline[0],
        }
    embs = embed(model)
    synthetic = any(ev.pairs.images.synthetic for ev in evals)
    res = _results(ctx, [(ev, pair_scores(e, ev, "cosine")) for e, ev in zip(embs, evals)],
                   dict(input_size=eff["input_size"], flip=flip, distance="cosine", synthetic=synthetic))
    if "baseline" in out_sections:
        from harness.metrics import Metric

        res["metrics"].append(Metric(
            "untrained_accuracy", out_sections["baseline"]["accuracy"], "higher",
            convention="the same protocol on the untrained network (reference point)").to_dict())
    res["sections"].update(out_sections)
    res["curves"].update(curves)
    return res


def _embedding_dim(engine: Any, model: Any, bspec: "BackboneSpec") -> int:
    h, w = bspec.input_size
    probe = [np.zeros((h, w, 3), np.uint8)] * 2
    return int(engine.embed(model, probe, backbone_spec=bspec, flip=None, batch_size=2).shape[1])


# -------------------------------------------------------------- recognizers
def _run_recognizer(spec: "RunSpec", ctx: "TaskContext") -> dict:
    reg = ctx.registry
    rname = spec.components["recognizer"]
    rspec = reg.get("recognizer", rname)
    rec = reg.build("recognizer", rname, spec.options.get(rname))
    alignment = getattr(rec, "alignment", None) or rspec.alignment or "arcface_112"
    size = tuple(rspec.input_size)
    evals = []
    for ref in spec.eval:
        if alignment == "dlib_chip":
            ev, emb = _dlib_chip_eval(ctx, spec, ref, rec, size)
        else:
            ev = prepare_eval(ctx, spec, ref, template=alignment, size=size)
            emb = embed_in_batches(rec.embed, ev.crops, desc=f"embed ({rname})", progress=ctx.progress)
        evals.append((ev, pair_scores(emb, ev, rspec.distance)))
    synthetic = any(ev.pairs.images.synthetic for ev, _ in evals)
    res = _results(ctx, evals, dict(input_size=size, flip=None, distance=rspec.distance, synthetic=synthetic))
    if rspec.published:
        res["sections"]["published"] = dict(rspec.published)
    return res


def _dlib_chip_eval(ctx, spec, ref, rec, size) -> tuple[_EvalSet, np.ndarray]:
    """dlib's own alignment: its shape predictor on the chosen box, 150x150 chips."""
    from harness.tasks._faces import resize_crop

    pairs = load_pairs(ctx, ref, spec)
    uniq = np.unique(pairs.pairs.ravel())
    images = pairs.images
    if images.aligned is not None:
        crops = [resize_crop(images.load(int(i)), size) for i in uniq]
        emb = embed_in_batches(rec.embed, crops, progress=ctx.progress)
        return _EvalSet(ref, pairs, uniq, crops, np.zeros(len(uniq), bool), None, "dlib_chip", None), emb
    detector = spec.components.get("detector", "dlib_hog")
    faces = locate_faces(images, uniq, registry=ctx.registry, detector=detector,
                         detector_options=spec.options.get(detector), cache_dir=ctx.cache_dir, progress=ctx.progress)
    out = []
    for j in progress_iter(range(len(uniq)), "embed (dlib chips)", ctx.progress):
        img = images.load(int(uniq[j]))
        if faces.found[j]:
            box = faces.boxes[j]
        else:  # flagged fallback: a centred box of half the shorter side
            h, w = img.shape[:2]
            s = min(h, w) / 4
            box = np.array([w / 2 - s, h / 2 - s, w / 2 + s, h / 2 + s], np.float32)
        out.append(rec.embed_faces(img, box[None])[0])
    ev = _EvalSet(ref, pairs, uniq, [], ~faces.found, detector, "dlib_chip (5-point shape predictor, 150x150)",
                  faces.faces_per_image)
    return ev, np.stack(out).astype(np.float32)


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    if "backbone" in spec.components:
        return _run_backbone(spec, ctx)
    if "recognizer" in spec.components:
        return _run_recognizer(spec, ctx)
    raise HarnessError(f"a recognition run needs a backbone or a recognizer, got {dict(spec.components)}")
