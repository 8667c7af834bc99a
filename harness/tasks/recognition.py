"""Recognition: train a backbone with a loss (or take a pretrained
recognizer), then verify on pairs under one stated protocol.

Protocol (stated in every report): faces are detected (unless the data is
already aligned), one face per image is chosen nearest the image centre,
aligned with a five-point similarity transform to the model's template (a
flagged centre crop when no face is found) or by a recognizer that aligns
itself, embedded, and compared with cosine similarity (Euclidean distance for
models published that way).  Accuracy is k-fold cross-validated over the
dataset's folds (LFW View 2: 10) with the threshold of each fold chosen on the
other k - 1 over all midpoints between distinct scores; the statement in
``results.json`` is generated from the folds actually used
(:func:`threshold_rule`).  TAR@FAR uses the strict rule (largest TAR with
FAR <= target).  Under ``--skip-bad`` pairs using an unreadable image are
dropped and counted (:mod:`harness.tasks._data`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import ConfigError, HarnessError
from harness.tasks import choose_detector
from harness.tasks import _intervals
from harness.tasks._data import Skipped, load_pairs, train_images
from harness.tasks._faces import embed_in_batches, face_crops
from harness.tasks._landmark_points import landmarker_protocol
from harness.tasks._manifest import with_landmarker
from harness.tasks._pipeline import note_stage, pipeline_options, stage_section

if TYPE_CHECKING:
    from harness.config import DataRef, RunSpec
    from harness.specs import BackboneSpec
    from harness.tasks import TaskContext
    from harness.types import PairSet

__all__ = ["backbone_on_engine", "eval_folds", "run", "threshold_rule"]

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
    skipped: Skipped | None = None
    embeddings: np.ndarray | None = None  # when the pipeline embedded too (harness.tasks._pipeline)
    stages: dict | None = None  # the pipeline's workers and seconds per stage
    landmarker: Any = None  # --landmarker: who placed the points, and its misses (LandmarkerUse)

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        pos = np.searchsorted(self.uniq, self.pairs.pairs)
        return pos[:, 0], pos[:, 1]


def prepare_eval(
    ctx: "TaskContext", spec: "RunSpec", ref: "DataRef", *, template: str, size: tuple[int, int],
    recognizer: Any = None, model_spec: Any = None, embed: bool = False,
) -> _EvalSet:
    """Pairs plus the crops of every image they use (detected once, cached), aligned to
    ``template`` or by a recognizer that aligns itself."""
    pairs, _index, skipped = load_pairs(ctx, spec, ref)
    uniq = np.unique(pairs.pairs.ravel())
    detector = None
    if pairs.images.aligned is None:
        detector = choose_detector(ctx.registry, spec.components, "recognition", model_spec)
    fc = face_crops(pairs.images, uniq, registry=ctx.registry, detector=detector,
                    detector_options=spec.options.get(detector or ""), template=template, size=size,
                    recognizer=recognizer, cache_dir=ctx.cache_dir, progress=ctx.progress, embed=embed,
                    **pipeline_options(ctx, spec, recognizer, model_spec))
    skipped = skipped if (spec.skip_bad or skipped.items or skipped.pairs_dropped) else None
    return _EvalSet(ref, pairs, uniq, fc.crops, fc.fallback, fc.detector, fc.alignment, fc.faces_per_image,
                    skipped, fc.embeddings, fc.stages, fc.landmarker)


def pair_scores(emb: np.ndarray, ev: _EvalSet, distance: str) -> np.ndarray:
    """Similarity of each pair of ``ev`` from the embeddings of its images."""
    a, b = ev.rows()
    return pair_similarity(emb[a], emb[b], distance)


def pair_similarity(e1: np.ndarray, e2: np.ndarray, distance: str) -> np.ndarray:
    """Row-wise similarity: cosine, or minus the Euclidean distance."""
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
        "threshold_rule": threshold_rule(*eval_folds(p.issame, p.folds)),
        "cv_folds": eval_folds(p.issame, p.folds)[1],
        "tar_rule": "strict: largest TAR with FAR <= target",
        "fallbacks": int(ev.fallback.sum()),
        "multi_face_images": None if ev.faces_per_image is None else int((ev.faces_per_image > 1).sum()),
        **landmarker_protocol(ev.landmarker),  # --landmarker: faces where it placed no points
        "synthetic": bool(synthetic or p.images.synthetic),
        **_skip_protocol(ev.skipped),
    }


def _skip_protocol(skipped: Skipped | None) -> dict:
    """What ``--skip-bad`` left out, for the protocol statement (absent when it was off)."""
    if skipped is None:
        return {}
    return {"skipped_items": len(skipped.items), "pairs_dropped": int(skipped.pairs_dropped)}


def threshold_rule(cv_folds: np.ndarray, how: str = "dataset folds") -> str:
    """The accuracy rule as used: generated from the folds the pairs were cross-validated over."""
    k = int(len(np.unique(cv_folds)))
    base = "over all midpoints between distinct scores; accepted when score >= threshold"
    if k < 2:
        return f"one fold: threshold chosen on the same pairs (optimistic) {base}"
    where = "" if how == "dataset folds" else " (stratified sub-folds of one fold)"
    return f"{k}-fold{where}: threshold chosen on the other {k - 1} fold{'s' if k > 2 else ''} {base}"


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


def _results(ctx: "TaskContext", evals: list[tuple[_EvalSet, np.ndarray]], protocol_kw: dict,
             spec: "RunSpec | None" = None) -> dict:
    t_score = time.perf_counter()
    first, scores = evals[0]
    summary = _summarise(scores, first)
    _intervals.verification(spec, summary, scores, first.pairs.issame.astype(np.int64),
                            eval_folds(first.pairs.issame, first.pairs.folds)[0],
                            *first.pairs.images.labels[first.pairs.pairs].T)
    ctx.run_dir.save_arrays(
        "scores", score=scores, label=first.pairs.issame.astype(np.int8), fold=first.pairs.folds,
        fallback_a=first.fallback[first.rows()[0]], fallback_b=first.fallback[first.rows()[1]],
        **_intervals.subject_arrays(first.pairs),  # subject_a / subject_b: `harness score` redoes the subject bootstrap
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
        # intervals of every evaluation set, not only the first
        _intervals.verification(spec, s, sc, ev.pairs.issame.astype(np.int64), eval_folds(ev.pairs.issame,
                                ev.pairs.folds)[0], *ev.pairs.images.labels[ev.pairs.pairs].T)
        others.append({"protocol": _protocol(ev, **protocol_kw), "metrics": s["metrics"],
                       "sections": {k: v for k, v in s.get("sections", {}).items() if k != "hist"}})
    if others:
        out["sections"]["other_evals"] = others
    skips = [ev.skipped for ev, _ in evals if ev.skipped is not None]
    if skips:
        out["sections"]["skipped"] = _merge_skips(skips).section()
    pipeline = stage_section([ev.stages for ev, _ in evals], score_s=time.perf_counter() - t_score)
    if pipeline:  # workers, seconds per stage, images per second (harness.tasks._pipeline)
        out["sections"]["pipeline"] = pipeline
    return out


def _merge_skips(skips: list[Skipped]) -> Skipped:
    total = Skipped()
    for sk in skips:
        total = total.merge(sk)
    return total


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


def flip_rule(spec: "RunSpec", eff: dict) -> str | None:
    """Test-time flip fusion of a backbone's embeddings: ``--flip-test`` when given, else the
    model's own rule (concat for weights published that way, else none)."""
    if spec.flip_test:
        return None if spec.flip_test == "none" else spec.flip_test
    return "concat" if eff["flip_concat"] else None


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
    flip = flip_rule(spec, eff)
    engine, model = backbone_on_engine(reg, spec, bname, seed=spec.seed)

    evals = [prepare_eval(ctx, spec, ref, template=eff["alignment"], size=eff["input_size"]) for ref in spec.eval]

    def embed(m) -> list[np.ndarray]:
        return [engine.embed(m, ev.crops, backbone_spec=run_spec, flip=flip, batch_size=64,
                             device=spec.training.device, progress=ctx.progress) for ev in evals]

    out_sections: dict[str, Any] = {}
    curves: dict[str, Any] = {}
    train_skipped: Skipped | None = None
    if spec.train:
        if "loss" not in spec.components:
            raise ConfigError(f"training {bname} needs a loss: add --loss NAME (`harness list loss`)")
        lname = spec.components["loss"]
        lspec = reg.get("loss", lname)
        train_ref = spec.train[0]
        train_set, train_skipped = train_images(ctx, spec, train_ref)
        if train_set.aligned is None:
            raise HarnessError(
                f"training data {train_ref} holds raw photos; facebench trains on aligned crops. "
                f"Align them first: harness data rec {train_ref.path or 'DIR'} -o train --detector mtcnn"
            )
        ctx.log(f"untrained {bname}: embedding the evaluation set for the baseline")
        baseline = [_accuracy(_summarise(pair_scores(e, ev, "cosine"), ev)) for e, ev in zip(embed(model), evals)]
        loss = reg.build("loss", lname, spec.options.get(lname), embedding_size=_embedding_dim(engine, model, run_spec),
                         num_classes=train_set.num_classes)
        loss = _native(reg, spec, engine, "loss", lname, loss)
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
            **({"skipped_items": len(train_skipped.items)} if spec.skip_bad or train_skipped.items else {}),
        }
        out_sections["baseline"] = {
            "what": f"the same {bname}, untrained (seeded initialisation), on the same pairs",
            "accuracy": baseline[0],
        }
    t_embed = time.perf_counter()
    embs = embed(model)
    note_stage([ev.stages for ev in evals], "embed", time.perf_counter() - t_embed)
    synthetic = any(ev.pairs.images.synthetic for ev in evals)
    res = _results(ctx, [(ev, pair_scores(e, ev, "cosine")) for e, ev in zip(embs, evals)],
                   dict(input_size=eff["input_size"], flip=flip, distance="cosine", synthetic=synthetic), spec)
    if "baseline" in out_sections:
        from harness.metrics import Metric

        res["metrics"].append(Metric(
            "untrained_accuracy", out_sections["baseline"]["accuracy"], "higher",
            convention="the same protocol on the untrained network (reference point)").to_dict())
    res["sections"].update(out_sections)
    if train_skipped is not None and (spec.skip_bad or train_skipped.items):
        skips = [ev.skipped for ev in evals if ev.skipped] + [train_skipped]
        res["sections"]["skipped"] = _merge_skips(skips).section()
    res["curves"].update(curves)
    from harness.tasks._cost import attach_backbone  # sections.model_card (compute, speed) and .manifest

    attach_backbone(res, engine, model, run_spec, evals[0].crops, flip=flip, device=spec.training.device)
    with_landmarker(res["sections"]["manifest"], evals[0].landmarker)  # --landmarker: who placed the points
    from harness.tasks._gallery import run_evidence  # failure gallery, EVRC, --groups differentials

    res["sections"].update(run_evidence(ctx, spec, evals[0], pair_scores(embs[0], evals[0], "cosine"), embs[0]))
    from harness.tasks.bin_suite import attach as attach_suite  # --eval bin=DIR: sections.bin_suite
    attach_suite(ctx, res, evals, model=bname, plain=embs if flip is None else None, embed_plain=lambda c: engine.embed(
        model, c, backbone_spec=run_spec, device=spec.training.device, progress=ctx.progress))
    return res


def backbone_on_engine(reg: Any, spec: "RunSpec", name: str, *, seed: int | None = None) -> tuple[Any, Any]:
    """The engine that runs backbone ``name`` of ``spec``, and the backbone as that engine runs it.

    The one rule of every task that embeds with a backbone (recognition, the meshface
    verifier): ``--engine`` (``spec.engine``, with its ``-o ENGINE.…`` options) when given,
    else the engine named like the backbone's framework (torch for the built-ins).  The
    backbone is built by its spec's factory (weights loaded there) and, for an engine of
    another framework that adapts components (``--engine tf``), rebuilt as that engine's
    own twin with the same weights (:func:`_native`).  ``seed``: the engine is seeded
    before the backbone is built (its initial weights).

    :raises ConfigError: the chosen engine runs another framework and adapts no components.
    """
    from harness.types import AdaptingEngine

    bspec = reg.get("backbone", name)
    chosen = getattr(spec, "engine", None)
    engine = reg.build("engine", chosen or bspec.framework, spec.options.get(chosen or ""))
    framework = reg.get("engine", chosen).framework if chosen else bspec.framework
    if bspec.framework not in ("none", framework) and not isinstance(engine, AdaptingEngine):
        raise ConfigError(f"engine {chosen!r} runs {framework} models and cannot take backbone {name!r} "
                          f"({bspec.framework}); drop --engine to run it on the {bspec.framework} engine, or "
                          "pick an engine that adapts it (`harness list engine`)")
    if seed is not None:
        engine.seed_everything(seed)
    return engine, _native(reg, spec, engine, "backbone", name, reg.build("backbone", name, spec.options.get(name)))


def _native(reg: Any, spec: "RunSpec", engine: Any, kind: str, name: str, component: Any) -> Any:
    """``component`` as the run's engine runs it: an engine of another framework that adapts
    components (``--engine tf``) rebuilds it as its own, with the same weights."""
    from harness.types import AdaptingEngine

    cspec = reg.get(kind, name)
    chosen = getattr(spec, "engine", None)
    if not chosen or not isinstance(engine, AdaptingEngine) or reg.get("engine", chosen).framework == cspec.framework:
        return component
    return engine.adapt(kind, name, cspec.make_options(spec.options.get(name)), component)


def _embedding_dim(engine: Any, model: Any, bspec: "BackboneSpec") -> int:
    h, w = bspec.input_size
    probe = [np.zeros((h, w, 3), np.uint8)] * 2
    return int(engine.embed(model, probe, backbone_spec=bspec, flip=None, batch_size=2).shape[1])


# -------------------------------------------------------------- recognizers
def _run_recognizer(spec: "RunSpec", ctx: "TaskContext") -> dict:
    from harness.types import ConfiguredRecognizer, crop_template

    reg = ctx.registry
    rname = spec.components["recognizer"]
    rspec = reg.get("recognizer", rname)
    rec = reg.build("recognizer", rname, spec.options.get(rname))
    # a recognizer whose options or model file fix its crop (the onnx one) states them on the object
    configured = isinstance(rec, ConfiguredRecognizer)
    size = tuple(rec.input_size) if configured else tuple(rspec.input_size)
    template = crop_template(rec, rspec.alignment)
    evals, embs = [], []
    for ref in spec.eval:
        ev = prepare_eval(ctx, spec, ref, template=template, size=size, recognizer=rec, model_spec=rspec, embed=True)
        emb = ev.embeddings if ev.embeddings is not None else \
            embed_in_batches(rec.embed, ev.crops, desc=f"embed ({rname})", progress=ctx.progress)
        evals.append((ev, pair_scores(emb, ev, rspec.distance)))
        embs.append(emb)
    synthetic = any(ev.pairs.images.synthetic for ev, _ in evals)
    res = _results(ctx, evals, dict(input_size=size, flip=rec.flip if configured else None, distance=rspec.distance,
                                    synthetic=synthetic), spec)
    if configured:  # preprocessing, model sha256, runtime as used
        res["sections"]["recognizer"] = rec.describe()
    if rspec.published:
        res["sections"]["published"] = dict(rspec.published)
    from harness.tasks._cost import attach_recognizer  # sections.model_card (compute, speed) and .manifest

    attach_recognizer(res, rec, rspec, evals[0][0].crops, template=template, input_size=size)
    with_landmarker(res["sections"]["manifest"], evals[0][0].landmarker)  # --landmarker: who placed the points
    from harness.tasks._gallery import run_evidence  # failure gallery, EVRC, --groups differentials

    res["sections"].update(run_evidence(ctx, spec, evals[0][0], evals[0][1], embs[0]))
    from harness.tasks.bin_suite import attach as attach_suite  # --eval bin=DIR: sections.bin_suite

    attach_suite(ctx, res, [ev for ev, _ in evals], model=rname, plain=embs,
                 model_flip=rec.flip if configured else None,
                 embed_plain=lambda crops: embed_in_batches(rec.embed, crops, desc=f"embed ({rname}, mirrored)",
                                                            progress=ctx.progress))
    return res


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    if getattr(spec, "protocol", "verification") != "verification" or any(r.name == "ijb" for r in spec.eval):
        # 1:N search (--protocol identification …) and IJB template protocols: harness.tasks.identification
        from harness.tasks.identification import run as run_identification

        return run_identification(spec, ctx)
    from harness.tasks.bin_suite import expand as expand_suites

    spec = expand_suites(ctx, spec)  # --eval bin=DIR: one evaluation set per .bin (harness.tasks.bin_suite)
    if "backbone" in spec.components:
        return _run_backbone(spec, ctx)
    if "recognizer" in spec.components:
        return _run_recognizer(spec, ctx)
    raise HarnessError(f"a recognition run needs a backbone or a recognizer, got {dict(spec.components)}")
