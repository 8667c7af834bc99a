"""A run's datasets as every task opens them, and ``--skip-bad``.

``--skip-bad`` (``skip_bad: true`` in a run config; ``-o NAME.skip_bad=true``
for one dataset) is one mechanism for every dataset and task:

* the dataset is built with its own ``skip_bad`` option turned on where it
  has one (malformed lines, missing files, unreadable records);
* every image the run will use is decoded once before work starts; an image
  that raises :class:`~harness.errors.DataError` is left out — from a
  training set the item itself, from verification pairs every pair using it;
* what was left out is counted and listed (:class:`Skipped`), written to
  ``results.json`` (``sections.skipped``, ``protocol.pairs_dropped``) and
  shown in the run report.

Without it, the first unreadable image stops the run with a one-line
``DataError`` naming the file and the flag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from harness.errors import ConfigError, DataError
from harness.tasks._faces import progress_iter

if TYPE_CHECKING:
    from harness.config import DataRef, RunSpec
    from harness.tasks import TaskContext
    from harness.types import ImageSet, PairSet

__all__ = ["MAX_LISTED", "Skipped", "load_pairs", "open_dataset", "readable", "readable_keys", "skip_bad_wanted",
           "train_images"]

#: at most this many skipped items are listed in results.json (all are counted)
MAX_LISTED = 200


@dataclass
class Skipped:
    """Items left out under ``--skip-bad``.

    :param items: ``{"dataset", "item", "reason"}`` per item left out.
    :param pairs_dropped: verification pairs dropped because they use one.
    """

    items: list[dict[str, str]] = field(default_factory=list)
    pairs_dropped: int = 0

    def add(self, dataset: Any, item: Any, reason: Any) -> None:
        self.items.append({"dataset": str(dataset), "item": str(item), "reason": str(reason)})

    def merge(self, other: "Skipped") -> "Skipped":
        return Skipped(self.items + other.items, self.pairs_dropped + other.pairs_dropped)

    def section(self) -> dict[str, Any]:
        """The ``sections.skipped`` entry of ``results.json``."""
        return {"count": len(self.items), "pairs_dropped": int(self.pairs_dropped),
                "listed": min(len(self.items), MAX_LISTED), "items": self.items[:MAX_LISTED],
                "rule": "--skip-bad: unreadable images left out; verification pairs using one dropped"}


def _dataset_has_option(ctx: "TaskContext", ref: "DataRef", key: str) -> bool:
    return key in ctx.registry.get("dataset", ref.name).option_fields()


def skip_bad_wanted(ctx: "TaskContext", spec: "RunSpec", ref: "DataRef") -> bool:
    """``--skip-bad`` for the run, or ``-o NAME.skip_bad=true`` for this dataset."""
    if spec.skip_bad:
        return True
    if not _dataset_has_option(ctx, ref, "skip_bad"):
        return False
    opts = ctx.registry.get("dataset", ref.name).make_options(spec.options.get(ref.name))
    return bool(opts.skip_bad)


def open_dataset(ctx: "TaskContext", spec: "RunSpec", ref: "DataRef") -> Any:
    """The built dataset ``ref`` with the run's options (``skip_bad`` passed on where it has the option)."""
    options = dict(spec.options.get(ref.name) or {})
    if spec.skip_bad and _dataset_has_option(ctx, ref, "skip_bad"):
        options["skip_bad"] = True
    return ctx.registry.build("dataset", ref.name, options, path=ref.path)


def readable_keys(loader: Callable[[str], Any], keys: Sequence[str], where: Any, skipped: Skipped,
                  progress: bool = True) -> np.ndarray:
    """(N,) bool: which ``loader(key)`` decode; the others are added to ``skipped``."""
    ok = np.ones(len(keys), bool)
    for j in progress_iter(range(len(keys)), "check images (--skip-bad)", progress):
        try:
            loader(keys[j])
        except DataError as exc:
            ok[j] = False
            skipped.add(where, keys[j], exc)
    return ok


def readable(images: "ImageSet", indices: np.ndarray, where: Any, skipped: Skipped,
             progress: bool = True) -> np.ndarray:
    """(N,) bool: which of ``images[indices]`` decode; the others are added to ``skipped``."""
    return readable_keys(images.loader, [images.keys[int(i)] for i in indices], where, skipped, progress)


def _dataset_skips(images: "ImageSet", where: Any, skipped: Skipped) -> int:
    """Items the dataset itself left out under its ``skip_bad`` option (listed in ``info["skipped"]``)."""
    own = list(images.info.get("skipped") or [])
    for reason in own:
        skipped.add(where, "(left out when the dataset was opened)", reason)
    return len(own)


def load_pairs(ctx: "TaskContext", spec: "RunSpec", ref: "DataRef") -> tuple["PairSet", np.ndarray, Skipped]:
    """The pairs of ``ref`` on ``--eval-folds``, each one's index in the full pair list, and what
    ``--skip-bad`` left out (pairs using an unreadable image are dropped)."""
    from harness.types import PairSet

    full = open_dataset(ctx, spec, ref).verification()
    index = np.arange(len(full))
    if spec.eval_folds:
        present = sorted(set(full.folds.tolist()))
        bad = [f for f in spec.eval_folds if f not in present]
        if bad:
            raise ConfigError(f"--eval-folds {bad} not in {ref.name}'s folds {present}")
        index = np.flatnonzero(np.isin(full.folds, spec.eval_folds))
    skipped = Skipped()
    if skip_bad_wanted(ctx, spec, ref):
        skipped.pairs_dropped += _dataset_skips(full.images, ref, skipped)
        uniq = np.unique(full.pairs[index].ravel())
        ok = readable(full.images, uniq, ref, skipped, ctx.progress)
        unreadable = uniq[~ok]
        keep = ~np.isin(full.pairs[index], unreadable).any(axis=1)
        skipped.pairs_dropped += int((~keep).sum())
        index = index[keep]
        if len(index) == 0:
            raise DataError(f"{ref}: every pair uses an unreadable image ({len(skipped.items)} skipped); "
                            "nothing is left to evaluate")
    protocol = full.protocol
    if skipped.pairs_dropped:
        protocol = f"{protocol}; {skipped.pairs_dropped} pair(s) dropped by --skip-bad"
    pairs = PairSet(full.images, full.pairs[index], full.issame[index], full.folds[index], protocol)
    return pairs, index, skipped


def train_images(ctx: "TaskContext", spec: "RunSpec", ref: "DataRef") -> tuple["ImageSet", Skipped]:
    """The training images of ``ref``; under ``--skip-bad`` without the unreadable ones."""
    import dataclasses

    images = open_dataset(ctx, spec, ref).train_set()
    skipped = Skipped()
    if not skip_bad_wanted(ctx, spec, ref):
        return images, skipped
    _dataset_skips(images, ref, skipped)
    ok = readable(images, np.arange(len(images)), ref, skipped, ctx.progress)
    if ok.all():
        return images, skipped
    if not ok.any():
        raise DataError(f"training data {ref}: no readable image ({len(skipped.items)} skipped)")
    keys = [images.keys[i] for i in np.flatnonzero(ok)]
    return dataclasses.replace(images, keys=keys, labels=images.labels[ok]), skipped
