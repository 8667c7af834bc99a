"""The insightface ``.bin`` verification suite: every set of a folder in one recognition run.

``harness run --recognizer sface --eval bin=DIR`` evaluates each ``.bin`` in
DIR (``lfw``, ``cfp_ff``, ``cfp_fp``, ``agedb_30``, ``calfw``, ``cplfw``,
``vgg2_fp`` or any other name) under two stated conventions and records one
result per set.

How it fits the recognition task: the ``bin`` dataset opened on a folder is
a :class:`~harness.types.VerificationSuite`.  :func:`expand` replaces such
an ``--eval`` entry by one entry per set (``bin=DIR/lfw.bin``, ...), in
insightface's order (:data:`SET_ORDER`, then the others by name), before the
task prepares its evaluation sets.  Each set is then evaluated exactly as
``--eval bin=DIR/NAME.bin`` alone would be — facebench's protocol, the first
set giving the run's ``protocol`` / ``metrics``, the others
``sections.other_evals``.  Once the embeddings exist, :func:`attach` embeds
the horizontal mirror of every crop and writes ``sections.bin_suite``: per
set, insightface's numbers (:func:`insightface_verification`) beside
facebench's, the lines insightface's ``verification.py`` prints, and the
conventions in words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from harness.config import RunSpec
    from harness.tasks import TaskContext
    from harness.tasks.recognition import _EvalSet

__all__ = ["FACEBENCH_RULE", "INSIGHTFACE_RULE", "SET_LABELS", "SET_ORDER", "SuiteSets", "attach", "expand",
           "insightface_verification", "mirror", "ordered", "printed_lines", "set_label"]

#: insightface's verification targets, in the order its tables list them; other names follow by name
SET_ORDER = ("lfw", "cfp_ff", "cfp_fp", "agedb_30", "calfw", "cplfw", "vgg2_fp")
#: how papers and insightface's model zoo head the columns
SET_LABELS = {"lfw": "LFW", "cfp_ff": "CFP-FF", "cfp_fp": "CFP-FP", "agedb_30": "AgeDB-30", "calfw": "CALFW",
              "cplfw": "CPLFW", "vgg2_fp": "VGG2-FP"}
#: insightface's ``--nfolds`` default, used whatever folds the dataset declares
INSIGHTFACE_FOLDS = 10
#: the FAR of insightface's VAL (``calculate_val(..., 1e-3, ...)``)
VAL_FAR = 1e-3
#: where :func:`expand` leaves the sets for :func:`attach`
KEY = "bin_suite"

INSIGHTFACE_RULE = (
    "insightface recognition/arcface_torch/eval/verification.py: each image and its horizontal mirror "
    "embedded, the two embeddings summed and L2-normalised; squared Euclidean distance; "
    f"{INSIGHTFACE_FOLDS} contiguous folds in file order (KFold({INSIGHTFACE_FOLDS}, shuffle=False)); "
    "threshold: the first best of arange(0, 4, 0.01) on the other folds, 'same' when distance < threshold; "
    "mean and population std of the test-fold accuracies (Accuracy-Flip). Accuracy: the same without the "
    "mirror (the script's acc1, whose computation insightface has commented out: it prints 0.00000 there). "
    "VAL@FAR=1e-3: threshold interpolated on arange(0, 4, 0.001). "
    "XNorm: mean L2 norm of the raw embeddings, mirrors included")
FACEBENCH_RULE = (
    "facebench's stated protocol (the run's Protocol box): the model's own flip rule and score (cosine "
    "similarity, or minus the Euclidean distance for models published that way), the dataset's folds, "
    "threshold over all midpoints between distinct scores on the other folds, TAR@FAR strict (largest TAR "
    "with FAR <= target)")


def set_label(name: str) -> str:
    """``cfp_fp`` -> ``CFP-FP``; an unknown set keeps its file name."""
    return SET_LABELS.get(name, name)


def ordered(members: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, path) pairs in :data:`SET_ORDER`, the other names after them alphabetically."""
    rank = {n: i for i, n in enumerate(SET_ORDER)}
    return sorted(members, key=lambda m: (rank.get(m[0], len(rank)), m[0]))


@dataclass
class SuiteSets:
    """The sets :func:`expand` made of suite entries.

    :param source: the ``--eval`` entries that were suites, as given.
    :param names: each member's path -> its set name.
    """

    source: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)


def expand(ctx: "TaskContext", spec: "RunSpec") -> "RunSpec":
    """``spec`` with every suite ``--eval`` entry replaced by one entry per set (others unchanged).

    Only entries whose path is a folder are opened here; the dataset then says
    whether it is a suite (:class:`~harness.types.VerificationSuite`).
    """
    from harness.config import DataRef
    from harness.errors import DataError
    from harness.tasks._data import open_dataset
    from harness.types import VerificationSuite

    sets = SuiteSets()
    refs: list[DataRef] = []
    for ref in spec.eval:
        ds = open_dataset(ctx, spec, ref) if ref.path and Path(ref.path).is_dir() else None
        if not isinstance(ds, VerificationSuite):
            refs.append(ref)
            continue
        members = ordered([(str(n), str(p)) for n, p in ds.suite_members()])
        if not members:
            raise DataError(f"{ref}: the folder holds no verification set")
        sets.source.append(str(ref))
        for name, path in members:
            member = DataRef(ref.name, path)
            if member not in refs:
                refs.append(member)
            sets.names[path] = name
    if not sets.source:
        return spec
    ctx.extra[KEY] = sets
    ctx.log(f"verification suite: {len(sets.names)} set(s) — {', '.join(sets.names.values())}")
    return dataclasses.replace(spec, eval=tuple(refs))


def mirror(crops: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each crop flipped left-right (insightface's ``flip(axis=2)`` of a CHW image)."""
    return [np.ascontiguousarray(np.asarray(c)[:, ::-1]) for c in crops]


def _undefined(reason: str) -> dict[str, Any]:
    return {"defined": False, "reason": reason}


def insightface_verification(emb1: np.ndarray, emb2: np.ndarray, flip1: np.ndarray, flip2: np.ndarray,
                             issame: np.ndarray, n_folds: int = INSIGHTFACE_FOLDS) -> dict[str, Any]:
    """insightface's numbers for one set from the raw embeddings of each pair's two images
    (``emb1``/``emb2``, verification.py's ``embeddings[0::2]`` / ``[1::2]``) and of their mirrors.

    :returns: ``accuracy_flip`` ± ``accuracy_flip_std`` (what insightface reports), per-fold
        accuracies and thresholds, ``accuracy`` ± std without the mirror (the ``acc1`` insightface
        no longer computes), ``val`` ± ``val_std``
        and mean ``far`` at FAR 1e-3 (``None`` with ``val_note`` when a test fold lacks a class),
        ``xnorm``; ``{"defined": False, "reason": ...}`` when there are fewer pairs than folds.
    """
    from harness.metrics._checks import MetricInputError
    from harness.metrics.lfw import kfold_accuracy, val_at_far

    y = np.asarray(issame, bool)
    if len(y) < n_folds:
        return _undefined(f"{len(y)} pair(s): insightface's {n_folds} folds need at least {n_folds}")
    raw = np.concatenate([emb1, emb2, flip1, flip2]).astype(np.float64)
    xnorm = float(np.mean(np.linalg.norm(raw, axis=1)))
    flipped = kfold_accuracy(emb1, emb2, y, n_folds, "insightface", flip1=flip1, flip2=flip2)
    plain = kfold_accuracy(emb1, emb2, y, n_folds, "insightface")
    out: dict[str, Any] = {
        "defined": True,
        "folds": n_folds,
        "accuracy_flip": flipped.mean, "accuracy_flip_std": flipped.std,
        "fold_accuracies": [float(a) for a in flipped.accuracies],
        "thresholds": [float(t) for t in flipped.thresholds],
        "accuracy": plain.mean, "accuracy_std": plain.std,
        "xnorm": xnorm,
        "val_far_target": VAL_FAR,
    }
    try:
        val = val_at_far(emb1, emb2, y, VAL_FAR, n_folds, "insightface", flip1=flip1, flip2=flip2)
        out.update(val=val.val, val_std=val.val_std, far=val.far)
    except MetricInputError as exc:
        out.update(val=None, val_std=None, far=None, val_note=str(exc))
    return out


def printed_lines(name: str, rec: dict[str, Any]) -> list[str]:
    """The lines insightface's ``verification.py`` prints for one set and one model — with the
    no-mirror ``Accuracy`` computed (insightface prints its commented-out ``acc1`` as 0.00000)."""
    if not rec.get("defined"):
        return [f"[{name}]not evaluated: {rec.get('reason', '')}"]
    return [f"[{name}]XNorm: {rec['xnorm']:f}",
            f"[{name}]Accuracy: {rec['accuracy']:1.5f}+-{rec['accuracy_std']:1.5f}",
            f"[{name}]Accuracy-Flip: {rec['accuracy_flip']:1.5f}+-{rec['accuracy_flip_std']:1.5f}"]


def _facebench(res: dict[str, Any], i: int) -> dict[str, Any]:
    """The facebench numbers of evaluation set ``i`` as the task recorded them."""
    if i == 0:
        metrics, protocol = res.get("metrics") or [], res.get("protocol") or {}
    else:
        other = res["sections"]["other_evals"][i - 1]
        metrics, protocol = other.get("metrics") or [], other.get("protocol") or {}
    by_name = {m.get("name"): m for m in metrics}
    acc = by_name.get("accuracy") or {}
    return {
        "accuracy": acc.get("value"), "accuracy_std": acc.get("std"),
        "tar_at_far_1e-3": (by_name.get("tar_at_far_1e-3") or {}).get("value"),
        "eer": (by_name.get("eer") or {}).get("value"),
        "flip_test": protocol.get("flip_test"), "distance": protocol.get("distance"),
        "threshold_rule": protocol.get("threshold_rule"), "alignment": protocol.get("alignment"),
        "input_size": protocol.get("input_size"),
    }


def _embed_mirrors(embed_plain: Callable[[list], np.ndarray], crops: Sequence[np.ndarray],
                   chunk: int = 2048) -> np.ndarray:
    """Embeddings of the mirrored crops, mirrored a chunk at a time (bounded memory)."""
    parts = [np.asarray(embed_plain(mirror(crops[s:s + chunk])), np.float32) for s in range(0, len(crops), chunk)]
    return np.concatenate(parts)


def attach(ctx: "TaskContext", res: dict[str, Any], evals: Sequence["_EvalSet"], *,
           embed_plain: Callable[[list], np.ndarray], plain: Sequence[np.ndarray] | None = None,
           model: str = "", model_flip: str | None = None) -> None:
    """Add ``sections.bin_suite`` to ``res`` when the run's ``--eval`` held a suite (else nothing).

    :param evals: the task's evaluation sets, in ``res``'s order.
    :param embed_plain: crops -> the model's embeddings, without any flip fusion by the task.
    :param plain: those embeddings of each set's crops when already computed (else embedded here).
    :param model: the recognizer or backbone, for the table.
    :param model_flip: the flip fusion the model itself applies inside ``embed_plain``, if any.
    """
    sets: SuiteSets | None = ctx.extra.get(KEY)
    if sets is None:
        return
    rows, printed = [], []
    for i, ev in enumerate(evals):
        name = sets.names.get(str(ev.ref.path))
        if name is None:
            continue
        emb = np.asarray(plain[i] if plain is not None else embed_plain(ev.crops), np.float32)
        flipped = _embed_mirrors(embed_plain, ev.crops)
        a, b = ev.rows()
        rec = insightface_verification(emb[a], emb[b], flipped[a], flipped[b], ev.pairs.issame)
        lines = printed_lines(name, rec)
        for line in lines:
            ctx.log(line)
        printed += lines
        rows.append({
            "name": name, "label": set_label(name), "path": str(ev.ref.path),
            "pairs": int(len(ev.pairs)), "genuine": int(np.count_nonzero(ev.pairs.issame)),
            "images": int(len(ev.uniq)), "insightface": rec, "facebench": _facebench(res, i),
        })
    res["sections"][KEY] = {
        "model": model, "source": list(sets.source), "sets": rows, "printed": printed,
        "embedding": "as the model outputs it" + (f" (its own flip fusion: {model_flip})" if model_flip else ""),
        "conventions": {"insightface": INSIGHTFACE_RULE, "facebench": FACEBENCH_RULE},
    }
