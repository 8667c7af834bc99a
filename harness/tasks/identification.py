"""Identification (1:N): closed-set and open-set search over a labelled image set.

Protocol (stated in every ``results.json``, :func:`protocol_text`):

* **Images.** The dataset's evaluation images when it has verification pairs
  (the images its pairs use: LFW's, AT&T's test subjects), else its labelled
  images (``imagefolder``, ``rec``, ``tfrecord``).  Images of unknown identity
  (label -1) are left out.  Faces go through the same detection, face choice,
  alignment and cache as verification (:func:`harness.tasks._faces.face_crops`).
* **Closed set.** Per trial, each identity with more than K images puts K of
  them in the gallery (the first K in dataset order, or K drawn at random with
  the trial's seed); its other images are probes.  Identities with at most K
  images go to the gallery whole, as distractors.  Every probe has a mate.
* **Open set.** As the closed set, then a seeded fraction of the identities
  with more than K images is left out of the gallery: all their images become
  non-mated searches, as do the images of identities with at most K images.
* **Search.** Exact: normalised embeddings, a blocked matrix product (memory
  bounded by ``-o search.max_memory``; :mod:`harness.metrics.search`), a gallery identity's score the maximum over its
  K images.  A probe's mate rank is 1 + the number of other gallery identities
  scoring ``>=`` the mate (ties count against the probe).
* **Open-set rates** (NIST FRVT 1:N, NISTIR 8271; ISO/IEC 19795-1): FPIR(T) =
  share of non-mated searches whose top candidate scores ``>= T``; FNIR(T, R)
  = share of mated searches whose mate is not within rank R with score
  ``>= T``; TPIR = 1 - FNIR.  At an FPIR target, T is the lowest threshold
  with FPIR(T) <= target.
* **Trials.** T seeded trials (seed + trial); rates are the mean over trials
  with their standard deviation.  A draw with nothing random (closed set,
  ``first``) runs once.

An IJB release (``--eval ijb=PATH``) runs its own template protocols instead
(:mod:`harness.tasks.templates`).  docs/identification.md states all of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np

from harness.errors import ConfigError, DataError, HarnessError
from harness.specs import check_range, field_types, parse_option_value, settings_from_options
from harness.tasks import _intervals

if TYPE_CHECKING:
    from harness.config import DataRef, RunSpec
    from harness.metrics.search import SearchOptions
    from harness.tasks import TaskContext
    from harness.types import ImageSet

__all__ = ["FPIR_TARGETS", "IdentificationSettings", "SearchResult", "Split", "identification_images",
           "protocol_text", "run", "search", "split_trial", "summarise"]

#: FPIR targets of the open-set table (NIST FRVT 1:N operating points)
FPIR_TARGETS = (1e-3, 1e-2, 1e-1)
#: ranks reported as metrics (the CMC goes to ``max_rank``)
RANKS = (1, 5, 10)


@dataclass(frozen=True)
class IdentificationSettings:
    """``-o identification.KEY=VALUE``: how galleries and probes are drawn and searched."""

    #: K: gallery images per identity
    gallery_size: int = 1
    #: which K images: the first in dataset order, or drawn with the trial's seed
    gallery_pick: Literal["first", "random"] = "first"
    #: T: seeded trials (mean and std reported)
    trials: int = 10
    #: open set: share of the identities with more than K images left out of the gallery
    unknown_fraction: float = 0.2
    #: the CMC's last rank
    max_rank: int = 20
    #: candidates kept per search (``identification_top.npz``)
    top_k: int = 10
    #: a file listing the gallery images (``PATH [IDENTITY]`` per line): a protocol defined by files
    gallery: str = ""
    #: the file listing the probe images (with ``gallery``)
    probes: str = ""

    def __post_init__(self) -> None:
        hints = field_types(type(self))
        for f in dataclasses.fields(self):
            value = parse_option_value(hints[f.name], getattr(self, f.name), where=f"identification.{f.name}")
            object.__setattr__(self, f.name, value)
        check_range("identification.gallery_size", self.gallery_size, 1, 10_000, integer=True)
        check_range("identification.trials", self.trials, 1, 10_000, integer=True)
        check_range("identification.unknown_fraction", self.unknown_fraction, 0, 1, low_open=True)
        check_range("identification.max_rank", self.max_rank, 1, 10_000, integer=True)
        check_range("identification.top_k", self.top_k, 1, 10_000, integer=True)
        if bool(self.gallery) != bool(self.probes):
            raise ConfigError("identification.gallery and identification.probes come as a pair: give both "
                              "image lists (PATH [IDENTITY] per line), or neither")
        if self.unknown_fraction >= 1:
            raise ConfigError(f"identification.unknown_fraction={self.unknown_fraction}: leaves no identity in the "
                              "gallery; expected a share in (0, 1), e.g. 0.2")

    @classmethod
    def from_options(cls, values: Any) -> "IdentificationSettings":
        return settings_from_options(cls, "identification", values)


# ------------------------------------------------------------------ protocol
@dataclass(frozen=True)
class Split:
    """One trial's draw: indices into the labelled images.

    :param gallery: gallery images.
    :param probes: probe images (mated and, in the open set, non-mated).
    :param unknown: identities left out of the gallery (open set), sorted.
    """

    gallery: np.ndarray
    probes: np.ndarray
    unknown: np.ndarray


def split_trial(labels: Sequence[int], *, k: int = 1, pick: str = "first", open_set: bool = False,
                unknown_fraction: float = 0.2, seed: int = 0) -> Split:
    """Gallery and probes of one trial (see the module's protocol).  Deterministic in ``seed``."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    rng = np.random.default_rng(seed)
    ids, counts = np.unique(labels, return_counts=True)
    searchable = ids[counts > k]
    if searchable.size == 0:
        raise DataError(f"no identity has more than {k} image(s) (identification.gallery_size={k}): nothing to "
                        "search for; lower identification.gallery_size or give more images per identity")
    unknown = np.zeros(0, np.int64)
    if open_set:
        if searchable.size < 2:
            raise DataError("the open set needs at least 2 identities with more than "
                            f"{k} image(s): one in the gallery and one left out")
        n_out = min(max(int(round(unknown_fraction * searchable.size)), 1), searchable.size - 1)
        unknown = np.sort(rng.choice(searchable, n_out, replace=False))
    gallery, probes = [], []
    for ident, n in zip(ids, counts):
        idx = np.flatnonzero(labels == ident)
        if np.isin(ident, unknown) or (open_set and n <= k):
            probes.append(idx)  # non-mated searches
            continue
        chosen = idx[:k] if pick == "first" else np.sort(rng.choice(idx, min(k, n), replace=False))
        gallery.append(chosen)
        probes.append(np.setdiff1d(idx, chosen))
    return Split(np.sort(np.concatenate(gallery)), np.sort(np.concatenate(probes)), unknown)


# -------------------------------------------------------------------- search
@dataclass
class SearchResult:
    """Per probe: mate rank (0: no mate in the gallery), the mate's score (NaN when none), the
    top candidate's score, and the ``top_k`` candidate identities and scores, best first."""

    rank: np.ndarray
    mate_score: np.ndarray
    top_score: np.ndarray
    top_ids: np.ndarray
    top_scores: np.ndarray


def _prepared(x: np.ndarray, order: np.ndarray | None, distance: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 rows (reordered by ``order``; L2-normalised for cosine) and their squared norms,
    made with one copy of ``x`` and no other full-size temporary (large galleries)."""
    x = np.asarray(x, np.float32)
    x = x[order] if order is not None else x.copy()
    sq = np.einsum("ij,ij->i", x, x)
    if distance == "cosine":
        x *= (1.0 / np.maximum(np.sqrt(sq), 1e-12))[:, None]
        sq = np.einsum("ij,ij->i", x, x)
    return x, sq


def _scores(dot: np.ndarray, p_sq: np.ndarray, g_sq: np.ndarray, distance: str) -> np.ndarray:
    """(probes, gallery) scores of one block from its inner products: the cosine of normalised
    rows as is, or minus the Euclidean distance (in place)."""
    if distance == "cosine":
        return dot
    dot *= -2.0
    dot += p_sq[:, None]
    dot += g_sq[None, :]
    np.maximum(dot, 0.0, out=dot)
    np.sqrt(dot, out=dot)
    return np.negative(dot, out=dot)


def search(probes: np.ndarray, probe_ids: np.ndarray, gallery: np.ndarray, gallery_ids: np.ndarray, *,
           distance: str = "cosine", top_k: int = 10, max_memory: int | None = None,
           options: "SearchOptions | None" = None) -> SearchResult:
    """Exact 1:N search, probes in blocks whose score matrix fits ``options.max_memory`` bytes
    (``max_memory`` overrides it), scored by :func:`harness.metrics.search.score_blocks` (numpy or
    torch, CPU or GPU, float32 or half precision).

    A gallery identity scores the maximum over its entries; ranks count the other identities
    scoring ``>=`` the mate (ties against the probe); the ``top_k`` candidates are selected by
    partial selection (:func:`harness.metrics.search.select_topk`) and ordered by score, then
    identity.
    """
    from harness.metrics.search import SearchOptions, score_blocks, select_topk

    if distance not in ("cosine", "euclidean"):
        raise HarnessError(f"unknown distance {distance!r}: expected 'cosine' or 'euclidean'")
    options = options or SearchOptions()
    if max_memory is not None:
        options = dataclasses.replace(options, max_memory=max_memory)
    probe_ids = np.asarray(probe_ids, np.int64)
    gallery_ids = np.asarray(gallery_ids, np.int64)
    if len(gallery_ids) == 0:
        raise DataError("the gallery is empty: nothing to search")
    order = np.argsort(gallery_ids, kind="stable")
    ids, starts = np.unique(gallery_ids[order], return_index=True)
    pooling = len(ids) < len(order)  # several entries of one identity: pool their scores
    g, g_sq = _prepared(gallery, None if np.all(order[1:] > order[:-1]) else order, distance)
    p_all, p_sq = _prepared(probes, None, distance)
    n, n_ids = len(probe_ids), len(ids)
    k = min(top_k, n_ids)
    mate_col = np.searchsorted(ids, probe_ids)
    mate_col = np.where((mate_col < n_ids) & (ids[np.minimum(mate_col, n_ids - 1)] == probe_ids), mate_col, -1)
    out = SearchResult(np.zeros(n, np.int64), np.full(n, np.nan), np.zeros(n), np.zeros((n, k), np.int64),
                       np.zeros((n, k), np.float32))
    for s, e, dot in score_blocks(p_all, g, options):
        block = _scores(dot, p_sq[s:e], g_sq, distance)
        pooled = np.maximum.reduceat(block, starts, axis=1) if pooling else block
        rows = np.arange(e - s)
        col = mate_col[s:e]
        has = col >= 0
        mate = np.where(has, pooled[rows, np.maximum(col, 0)], np.nan)
        above = np.count_nonzero(pooled >= np.where(has, mate, np.inf)[:, None], axis=1) - has
        out.rank[s:e] = np.where(has, above + 1, 0)
        out.mate_score[s:e] = mate
        top, cols = select_topk(pooled, k)
        out.top_score[s:e] = top[:, 0]
        out.top_ids[s:e] = ids[cols]
        out.top_scores[s:e] = top
    return out


# -------------------------------------------------------------------- images
def _has_view(dataset: Any, name: str) -> bool:
    """The dataset implements ``name`` (not only the base class's "has no … data")."""
    from harness.types import Dataset

    fn = getattr(type(dataset), name, None)
    return fn is not None and fn is not getattr(Dataset, name, None)


def identification_images(ctx: "TaskContext", spec: "RunSpec",
                          ref: "DataRef") -> tuple["ImageSet", np.ndarray, str, Any]:
    """The labelled images of ``ref`` searched over, the indices used (known identity, readable
    under ``--skip-bad``), where they come from, and what ``--skip-bad`` left out (or None)."""
    from harness.tasks._data import Skipped, _dataset_skips, open_dataset, readable, skip_bad_wanted

    images, source = _dataset_images(open_dataset(ctx, spec, ref), ref)
    keep = images.labels >= 0
    skipped = None
    if skip_bad_wanted(ctx, spec, ref):
        skipped = Skipped()
        _dataset_skips(images, ref, skipped)
        known = np.flatnonzero(keep)
        keep[known[~readable(images, known, ref, skipped, ctx.progress)]] = False
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise DataError(f"{ref}: no image of a known identity to search (labels are all -1 or unreadable)")
    return images, idx, source, skipped


def _dataset_images(ds: Any, ref: "DataRef") -> tuple["ImageSet", str]:
    """The images a 1:N search draws from, and where they come from."""
    if _has_view(ds, "verification"):
        return ds.verification().images, "the images its verification pairs use"
    if _has_view(ds, "train_set"):
        return ds.train_set(), "its labelled images"
    raise DataError(f"dataset {ref.name!r} has neither labelled images nor verification pairs: nothing to "
                    "search; use an identity-folder dataset (imagefolder, att, lfw, rec, tfrecord)")


def _list_rows(images: "ImageSet", root: str | None, listed: list[Any], where: str) -> tuple[np.ndarray, list[str]]:
    """Dataset indices and identity names of the entries of one image list."""
    import os

    index: dict[str, int] = {}
    for i, key in enumerate(images.keys):
        index.setdefault(str(key), i)
        if root and os.path.isabs(str(key)):
            index.setdefault(os.path.relpath(str(key), root).replace(os.sep, "/"), i)
    rows, names = [], []
    for e in listed:
        i = index.get(e.path, index.get(e.path.replace("\\", "/")))
        if i is None:
            raise DataError(f"{where}:{e.line}: {e.path!r} is not an image of the evaluated dataset; expected its "
                            "path relative to the dataset's folder (or the dataset's key of it)")
        label = int(images.labels[i])
        if e.identity is None and label < 0:
            raise DataError(f"{where}:{e.line}: {e.path!r} has no identity in the dataset; add it: PATH IDENTITY")
        names.append(e.identity if e.identity is not None else
                     (images.identities[label] if label < len(images.identities) else str(label)))
        rows.append(i)
    return np.asarray(rows, np.int64), names


def listed_images(ctx: "TaskContext", spec: "RunSpec", ref: "DataRef", settings: IdentificationSettings
                  ) -> tuple["ImageSet", np.ndarray, np.ndarray, Split, str]:
    """The protocol ``-o identification.gallery=LIST -o identification.probes=LIST`` defines over the
    dataset's images: (images, dataset index per entry, label per entry, the split of the entries
    — gallery first, then probes —, where it comes from).  A probe is mated when its identity is
    listed in the gallery."""
    import os

    from harness.formats.image_list import read_image_list
    from harness.tasks._data import open_dataset

    images, _ = _dataset_images(open_dataset(ctx, spec, ref), ref)
    root = os.path.abspath(ref.path) if ref.path else None
    g_rows, g_names = _list_rows(images, root, read_image_list(settings.gallery), settings.gallery)
    p_rows, p_names = _list_rows(images, root, read_image_list(settings.probes), settings.probes)
    names, labels = np.unique(np.array(g_names + p_names, dtype=object).astype(str), return_inverse=True)
    labels = labels.astype(np.int64)
    ng = len(g_rows)
    unknown = np.setdiff1d(labels[ng:], labels[:ng])
    split = Split(np.arange(ng), np.arange(ng, ng + len(p_rows)), unknown)
    source = f"the images listed in {settings.gallery} (gallery) and {settings.probes} (probes)"
    return images, np.concatenate([g_rows, p_rows]), labels, split, source


def _model(spec: "RunSpec", ctx: "TaskContext") -> dict[str, Any]:
    """The run's model as identification uses it: how to embed crops, and its crop settings."""
    reg = ctx.registry
    if "recognizer" in spec.components:
        from harness.tasks._faces import embed_in_batches
        from harness.types import ConfiguredRecognizer, crop_template

        name = spec.components["recognizer"]
        rspec = reg.get("recognizer", name)
        rec = reg.build("recognizer", name, spec.options.get(name))
        configured = isinstance(rec, ConfiguredRecognizer)
        return {"embed": lambda crops: embed_in_batches(rec.embed, crops, desc=f"embed ({name})",
                                                        progress=ctx.progress),
                "size": tuple(rec.input_size) if configured else tuple(rspec.input_size),
                "template": crop_template(rec, rspec.alignment), "recognizer": rec, "model_spec": rspec,
                "distance": rspec.distance, "flip": (rec.flip if configured else None) or "none",
                "describe": rec.describe() if configured else None}
    if "backbone" in spec.components and "loss" not in spec.components:
        from harness.tasks.recognition import _effective_backbone, flip_rule

        name = spec.components["backbone"]
        bspec = reg.get("backbone", name)
        eff = _effective_backbone(bspec, bspec.make_options(spec.options.get(name)))
        run_spec = dataclasses.replace(bspec, input_size=eff["input_size"], mean=eff["mean"], std=eff["std"],
                                       alignment=eff["alignment"], embedding_size=eff["embedding_size"])
        flip = flip_rule(spec, eff)
        from harness.tasks.recognition import _native  # --engine tf: the engine's own twin of the backbone

        chosen = getattr(spec, "engine", None)  # --engine, else the backbone's framework's engine
        engine = reg.build("engine", chosen or bspec.framework, spec.options.get(chosen or ""))
        engine.seed_everything(spec.seed)
        net = _native(reg, spec, engine, "backbone", name, reg.build("backbone", name, spec.options.get(name)))
        return {"embed": lambda crops: engine.embed(net, crops, backbone_spec=run_spec, flip=flip, batch_size=64,
                                                    device=spec.training.device, progress=ctx.progress),
                "size": tuple(eff["input_size"]), "template": eff["alignment"], "recognizer": None,
                "model_spec": None, "distance": "cosine", "flip": flip or "none", "describe": None}
    names = ", ".join(f"{k}={v}" for k, v in spec.components.items())
    raise ConfigError(f"--protocol {spec.protocol} searches with a trained model; {names} trains one in this run. "
                      "Train it first, then search with its checkpoint: --backbone NAME -o NAME.weights=CHECKPOINT "
                      "--protocol identification (or use a --recognizer)")


def embed_images(spec: "RunSpec", ctx: "TaskContext", model: dict[str, Any], images: "ImageSet",
                 indices: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Embeddings of ``images[indices]`` through the verification pipeline (detector, face choice,
    alignment or the recognizer's own, cache), and how the crops were made."""
    from harness.tasks import choose_detector
    from harness.tasks._faces import face_crops
    from harness.tasks._landmark_points import landmarker_protocol
    from harness.tasks._pipeline import landmarker_of

    detector = None
    if images.aligned is None:
        detector = choose_detector(ctx.registry, spec.components, "recognition", model["model_spec"])
    fc = face_crops(images, indices, registry=ctx.registry, detector=detector,
                    detector_options=spec.options.get(detector or ""), template=model["template"],
                    size=model["size"], recognizer=model["recognizer"], cache_dir=ctx.cache_dir,
                    progress=ctx.progress, **landmarker_of(spec))
    emb = np.asarray(model["embed"](fc.crops), np.float32)
    if emb.shape[0] != len(indices) or not np.isfinite(emb).all():
        raise HarnessError(f"the model returned {emb.shape[0]} embeddings for {len(indices)} crops"
                           + ("" if np.isfinite(emb).all() else " (with NaN or infinite values)"))
    return emb, {
        "detector": fc.detector or f"none (data already aligned: {images.aligned})",
        "face_choice": "nearest the image centre" if fc.detector else None,
        "alignment": fc.alignment, "input_size": list(model["size"]), "flip_test": model["flip"],
        "distance": model["distance"],
        "score": "cosine similarity" if model["distance"] == "cosine" else "minus Euclidean distance",
        "fallbacks": int(fc.fallback.sum()),
        "multi_face_images": None if fc.faces_per_image is None else int((fc.faces_per_image > 1).sum()),
        **landmarker_protocol(fc.landmarker),  # --landmarker: faces where it placed no points
    }


# ------------------------------------------------------------------- metrics
def _target_name(t: float) -> str:
    return f"1e{int(round(np.log10(t)))}"


def _search_text(options: "SearchOptions") -> str:
    """How the scores were computed, for ``results.json``."""
    return (f"exact: blocked matrix product (backend {options.backend}, {options.dtype}, score blocks of at most "
            f"{options.max_memory} bytes), identity pooling, partial selection of the candidates")


def protocol_text(settings: IdentificationSettings, open_set: bool, trials: int | None = None, *,
                  files: bool = False) -> dict[str, str]:
    """The rules of the protocol as run (``trials``: as many as ran; ``files``: gallery and probes
    from ``identification.gallery`` / ``identification.probes``), for ``results.json``."""
    trials = settings.trials if trials is None else trials
    k = settings.gallery_size
    pick = "the first K in dataset order" if settings.gallery_pick == "first" else "K drawn with the trial's seed"
    out = {
        "gallery_rule": f"K={k} image(s) per identity with more than K images ({pick}); the rest are probes; "
                        f"identities with at most K images " + ("are non-mated searches" if open_set else
                                                                "join the gallery as distractors"),
        "score_rule": "a gallery identity scores the maximum over its gallery images; exact search (blocked "
                      "matrix product, partial selection of the candidates)",
        "tie_rule": "rank = 1 + the number of other gallery identities scoring >= the mate (ties count against "
                    "the probe); candidate lists order equal scores by identity",
        "trials_rule": f"{trials} seeded trial(s) (seed + trial number); mean and standard deviation"
                       + ("" if trials == settings.trials else " (one: this draw has nothing random)"),
    }
    if files:
        out["gallery_rule"] = (f"defined by files: the gallery is the images listed in {settings.gallery}, the "
                               f"probes those in {settings.probes}; a probe is mated when its identity is listed "
                               "in the gallery" + ("" if open_set else "; non-mated probes are left out of the CMC"))
        out["trials_rule"] = "one search of the listed gallery and probes (nothing random)"
    if open_set and not files:
        out["unknown_rule"] = (f"a seeded {settings.unknown_fraction:g} of the identities with more than K images "
                               "is left out of the gallery; their images are non-mated searches")
        out["threshold_rule"] = ("NIST FRVT 1:N (NISTIR 8271) / ISO/IEC 19795-1: FPIR(T) = share of non-mated "
                                 "searches whose top candidate scores >= T; FNIR(T, L) = share of mated searches "
                                 f"whose mate is not within the candidate list (L={settings.top_k}) with score >= T; "
                                 "TPIR = 1 - FNIR; at an FPIR target T is the lowest threshold with FPIR(T) <= "
                                 "target (undefined when the target is below 1 / non-mated searches)")
    return out


def _closed_metrics(results: list[Any], settings: IdentificationSettings, n_ids: int) -> dict[str, Any]:
    from harness.metrics import Metric
    from harness.metrics.identification import cmc_from_ranks

    depth = max(settings.max_rank, max(RANKS))
    curves = np.array([cmc_from_ranks(r.rank, depth) for r in results])
    mean, std = curves.mean(axis=0), curves.std(axis=0)
    conv = "closed set: share of probes whose mate identity is within rank k (ties against); mean over trials"
    metrics = [Metric(f"rank{k}", float(mean[k - 1]), "higher", convention=conv, std=float(std[k - 1]),
                      meta={"trials": len(results)}).to_dict() for k in RANKS]
    shown = min(settings.max_rank, n_ids)
    return {
        "metrics": metrics,
        "section": {"rank": [{"k": k, "mean": float(mean[k - 1]), "std": float(std[k - 1])} for k in RANKS],
                    "gallery_identities": n_ids},
        "curve": {"rank": list(range(1, shown + 1)), "rate": mean[:shown].tolist(), "std": std[:shown].tolist()},
    }


def _open_metrics(results: list[Any], settings: IdentificationSettings) -> dict[str, Any]:
    from harness.metrics import Metric
    from harness.metrics.identification import open_set_det, open_set_point

    L = settings.top_k
    rows, metrics = [], []
    for t in FPIR_TARGETS:
        pts = [open_set_point(r.rank, r.mate_score, r.top_score, t, rank=L) for r in results]
        hit1 = [open_set_point(r.rank, r.mate_score, r.top_score, t, rank=1) for r in results]
        defined = all(p.defined for p in pts)
        fnir = np.array([p.fnir for p in pts])
        hit = np.array([p.tpir for p in hit1])
        name = _target_name(t)
        val = (lambda v: float(v) if defined else None)  # below 1 / non-mated searches: n/a
        rows.append({"fpir_target": t, "fnir": val(fnir.mean()), "fnir_std": val(fnir.std()),
                     "tpir": val(1 - fnir.mean()), "rank1_hit_rate": val(hit.mean()),
                     "rank1_hit_rate_std": val(hit.std()), "fpir": float(np.mean([p.fpir for p in pts])),
                     "threshold": val(np.mean([p.threshold for p in pts])), "defined": defined})
        conv = f"open set: FPIR <= {t:g}, candidate list L={L}; mean over trials"
        metrics += [Metric(f"fnir_at_fpir_{name}", val(fnir.mean()), "lower", convention=conv,
                           std=float(fnir.std()) if defined else None).to_dict(),
                    Metric(f"tpir_at_fpir_{name}", val(1 - fnir.mean()), "higher", convention=conv,
                           std=float(fnir.std()) if defined else None).to_dict(),
                    Metric(f"rank1_hit_at_fpir_{name}", val(hit.mean()), "higher",
                           convention=f"open set: mate at rank 1 with score >= the FPIR {t:g} threshold",
                           std=float(hit.std()) if defined else None).to_dict()]
    det = open_set_det(results[0].rank, results[0].mate_score, results[0].top_score, rank=L)
    keep = np.unique(np.linspace(0, len(det["fpir"]) - 1, min(len(det["fpir"]), 400)).astype(int))
    first = results[0]
    section = {"table": rows, "mated_searches": int((first.rank > 0).sum()),
               "nonmated_searches": int((first.rank == 0).sum()), "candidate_list": L}
    return {"metrics": metrics, "section": section,
            "curve": {"fpir": [det["fpir"][i] for i in keep], "fnir": [det["fnir"][i] for i in keep],
                      "note": "trial 0"}}


# ----------------------------------------------------------------------- run
def _headline(m: dict[str, Any]) -> str:
    if m["value"] is None:
        return f"{m['name']} n/a"
    return f"{m['name']} {m['value']:.4f}" + (f" ± {m['std']:.4f}" if m.get("std") else "")


def _trials(labels: np.ndarray, emb: np.ndarray, settings: IdentificationSettings, *, open_set: bool,
            seed: int, distance: str, search_options: "SearchOptions | None" = None,
            split: Split | None = None) -> tuple[list[SearchResult], list[Split]]:
    randomness = split is None and (open_set or settings.gallery_pick == "random")
    results, splits = [], []
    for t in range(settings.trials if randomness else 1):
        sp = split or split_trial(labels, k=settings.gallery_size, pick=settings.gallery_pick, open_set=open_set,
                                  unknown_fraction=settings.unknown_fraction, seed=seed + t)
        results.append(search(emb[sp.probes], labels[sp.probes], emb[sp.gallery], labels[sp.gallery],
                              distance=distance, top_k=settings.top_k, options=search_options))
        splits.append(sp)
    return results, splits


def summarise(labels: np.ndarray, emb: np.ndarray, settings: IdentificationSettings, *, open_set: bool,
              seed: int = 0, distance: str = "cosine", search_options: "SearchOptions | None" = None,
              split: Split | None = None) -> dict[str, Any]:
    """Metrics, section and curve of one protocol over its trials (``labels``/``emb`` per image);
    with ``split`` one search of that fixed gallery and probes (a protocol defined by files)."""
    labels = np.asarray(labels, np.int64)
    results, splits = _trials(labels, emb, settings, open_set=open_set, seed=seed, distance=distance,
                              search_options=search_options, split=split)
    sp = splits[0]
    counts = {"trials": len(results), "gallery_images": int(len(sp.gallery)), "probes": int(len(sp.probes)),
              "gallery_identities": int(len(np.unique(labels[sp.gallery])))}
    if open_set:
        out = _open_metrics(results, settings)
        counts["unknown_identities"] = int(len(sp.unknown))
    else:
        out = _closed_metrics(results, settings, counts["gallery_identities"])
    out["section"] = {**counts, **out["section"],
                      "protocol": protocol_text(settings, open_set, len(results), files=split is not None)}
    if split is not None and not open_set and (results[0].rank == 0).any():
        out["section"]["nonmated_left_out"] = int((results[0].rank == 0).sum())
    out["first"] = (sp, results[0])
    out["trials"] = [(labels[p.probes], r.rank, r.mate_score, r.top_score) for p, r in zip(splits, results)]
    return out


def _evaluate(spec: "RunSpec", ctx: "TaskContext", ref: "DataRef", model: dict[str, Any],
              settings: IdentificationSettings, protocols: Sequence[str], *, save: bool) -> dict[str, Any]:
    from harness.metrics.search import SearchOptions

    search_options = SearchOptions.from_options(spec.options.get("search"))
    split = None
    if settings.gallery:
        images, idx, labels, split, source = listed_images(ctx, spec, ref, settings)
        skipped = None
    else:
        images, idx, source, skipped = identification_images(ctx, spec, ref)
        labels = images.labels[idx]
    unique, inverse = np.unique(idx, return_inverse=True)  # an image listed twice is embedded once
    emb, crops = embed_images(spec, ctx, model, images, unique)
    emb = emb[inverse.reshape(-1)]
    res: dict[str, Any] = {"metrics": [], "sections": {}, "curves": {}, "notes": []}
    for name in protocols:
        open_set = name == "open-set"
        try:
            out = summarise(labels, emb, settings, open_set=open_set, seed=spec.seed, distance=model["distance"],
                            search_options=search_options, split=split)
            _intervals.identification(spec, out, out.pop("trials"), open_set=open_set,
                                      candidate_list=settings.top_k)
        except DataError as exc:
            if len(protocols) == 1:
                raise DataError(f"{ref}: {exc}") from None
            res["notes"].append(f"{name} not run on {ref}: {exc}")
            continue
        key = "open_set" if open_set else "identification"
        res["metrics"] += out["metrics"]
        res["sections"][key] = out["section"]
        res["curves"]["open_set_det" if open_set else "cmc"] = out["curve"]
        shown = [m for m in out["metrics"] if m["name"] in ("rank1", "rank5", "rank10") or m["name"].startswith("fnir")]
        ctx.log(f"{ref}: {name}: " + ", ".join(_headline(m) for m in shown))
        if save:
            sp, r = out["first"]
            ctx.run_dir.save_arrays(f"{key}_candidates", probe=idx[sp.probes], label=labels[sp.probes],
                                    rank=r.rank, mate_score=r.mate_score, top_ids=r.top_ids,
                                    top_scores=r.top_scores)
    res["protocol"] = {
        "dataset": ref.name, "path": ref.path, "name": " + ".join(protocols) + f" over {source}",
        "images": int(len(unique)), "identities": int(len(np.unique(labels))),
        **({"gallery_list": settings.gallery, "probe_list": settings.probes} if split is not None else
           {"gallery_size": settings.gallery_size, "gallery_pick": settings.gallery_pick}),
        "seed": spec.seed, "search": _search_text(search_options),
        **crops, "synthetic": bool(images.synthetic),
        **({"skipped_items": len(skipped.items)} if skipped is not None else {}),
    }
    res["skipped"] = skipped
    return res


def run(spec: "RunSpec", ctx: "TaskContext") -> dict:
    """``--protocol identification | open-set | all`` of a recognition run (see the module's protocol)."""
    settings = IdentificationSettings.from_options(spec.options.get("identification"))
    model = _model(spec, ctx)
    ijb = _template_dataset(ctx, spec)
    if ijb is not None:  # IJB: the release's own 1:1 and 1:N template protocols, whatever --protocol says
        from harness.tasks.templates import run_ijb

        return run_ijb(spec, ctx, spec.eval[0], ijb, model)
    protocols = {"identification": ["identification"], "open-set": ["open-set"],
                 "all": ["identification", "open-set"]}.get(spec.protocol)
    if protocols is None:
        raise ConfigError(f"--protocol {spec.protocol!r}: expected verification, identification, open-set or all")
    evals = [_evaluate(spec, ctx, ref, model, settings, protocols, save=i == 0) for i, ref in enumerate(spec.eval)]
    first = evals[0]
    out = {"protocol": first["protocol"], "metrics": first["metrics"], "sections": dict(first["sections"]),
           "curves": dict(first["curves"])}
    if spec.protocol == "all":
        out = _with_verification(spec, ctx, out)
    if model["describe"]:
        out["sections"]["recognizer"] = model["describe"]
    others = [{"protocol": e["protocol"], "metrics": e["metrics"]} for e in evals[1:]]
    if others:
        out["sections"]["other_identification_evals"] = others
    notes = [n for e in evals for n in e["notes"]]
    if notes:
        out["sections"].setdefault("identification_notes", notes)
    skips = [e["skipped"] for e in evals if e["skipped"] is not None]
    if skips and "skipped" not in out["sections"]:
        from functools import reduce

        out["sections"]["skipped"] = reduce(lambda a, b: a.merge(b), skips).section()
    return out


def _template_dataset(ctx: "TaskContext", spec: "RunSpec") -> Any:
    """The dataset when the run evaluates a template release (one with ``templates()``: ``ijb``), else None."""
    from harness.tasks._data import open_dataset

    found = [open_dataset(ctx, spec, r) for r in spec.eval]
    found = [ds for ds in found if callable(getattr(ds, "templates", None))]
    if not found:
        return None
    if len(spec.eval) > 1:
        raise ConfigError("--eval ijb=PATH runs the release's own 1:1 and 1:N protocols: give it as the only --eval")
    return found[0]


def _with_verification(spec: "RunSpec", ctx: "TaskContext", ident: dict) -> dict:
    """``--protocol all``: the verification results too when the first dataset has pairs."""
    from harness.tasks import recognition
    from harness.tasks._data import open_dataset

    if not _has_view(open_dataset(ctx, spec, spec.eval[0]), "verification"):
        ident["sections"]["identification_notes"] = [f"verification not run: {spec.eval[0]} has no pairs"]
        return ident
    ver = recognition.run(dataclasses.replace(spec, protocol="verification", eval=spec.eval[:1]), ctx)
    ver["metrics"] = list(ver["metrics"]) + ident["metrics"]
    ver["sections"] = {**ver["sections"], **ident["sections"]}
    ver["curves"] = {**ver["curves"], **ident["curves"]}
    ver["protocol"] = {**ver["protocol"], "identification": ident["protocol"]["name"]}
    return ver
