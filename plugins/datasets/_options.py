"""Options of the built-in datasets (plain dataclasses; imported by the specs).

Kept separate from the implementations so ``harness list`` reads them
without importing OpenCV, scipy or the readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from harness.specs import check_range

__all__ = [
    "AttOptions",
    "BinOptions",
    "FddbOptions",
    "ImageFolderOptions",
    "LfwOptions",
    "RecOptions",
    "SyntheticOptions",
    "TfrecordOptions",
    "VideoOptions",
    "WiderOptions",
]

#: Upper bound of counts (identities, images, pairs): beyond any real set, below what exhausts memory.
MAX_COUNT = 1_000_000


def _bounds(opts: object, name: str, limits: Mapping[str, tuple[int, int]]) -> None:
    """Check the integer options of ``opts`` against ``{field: (low, high)}``."""
    for key, (low, high) in limits.items():
        check_range(f"{name}.{key}", getattr(opts, key), low, high, integer=True)


@dataclass(frozen=True)
class SyntheticOptions:
    """Procedural identities: how many, how many images each, the pair folds."""

    seed: int = 0
    train_identities: int = 40
    test_identities: int = 20
    images_per_identity: int = 16
    size: int = 112
    pairs_per_fold: int = 60
    folds: int = 10

    def __post_init__(self) -> None:
        _bounds(self, "synthetic", {
            "seed": (0, 2**32 - 1), "train_identities": (1, 100_000), "test_identities": (1, 100_000),
            "images_per_identity": (1, 10_000), "size": (8, 1024), "pairs_per_fold": (1, 100_000),
            "folds": (1, 100)})


@dataclass(frozen=True)
class ImageFolderOptions:
    """``root/<identity>/<image>``; labels follow the sorted folder names.

    :param min_images: skip identities with fewer images.
    :param aligned: alignment template the images are already cropped to
        (e.g. ``arcface_112``); empty = raw photos that need detection.
    :param skip_bad: decode every image when the set is opened and leave out
        the ones that fail (counted in ``info["skipped"]``); off, a corrupt
        image raises when it is loaded.
    """

    min_images: int = 1
    aligned: str = ""
    skip_bad: bool = False

    def __post_init__(self) -> None:
        _bounds(self, "imagefolder", {"min_images": (1, MAX_COUNT)})


@dataclass(frozen=True)
class LfwOptions:
    """LFW identity folders + ``pairs.txt`` (or scikit-learn's ``lfw_home``).

    :param pairs: the pairs file; default ``pairs.txt`` in the dataset folder.
    :param images: the identity folders; default ``lfw_funneled``,
        ``lfw-deepfunneled`` or ``lfw`` in the dataset folder (with
        ``pairs=`` of one's own, else beside that pairs file).
    :param skip_bad: drop malformed pair lines and pairs whose images are missing.
    """

    pairs: str = ""
    images: str = ""
    skip_bad: bool = False


@dataclass(frozen=True)
class BinOptions:
    """insightface verification ``.bin`` (loaded with a restricted unpickler).

    :param folds: consecutive folds the pairs are split into (insightface's
        ``KFold(10, shuffle=False)``); 1 for a single-fold file.
    :param aligned: the template the crops are aligned to.
    :param protocol: the protocol name stated in reports; default derived.
    """

    folds: int = 10
    aligned: str = "arcface_112"
    protocol: str = ""

    def __post_init__(self) -> None:
        _bounds(self, "bin", {"folds": (1, 100)})


@dataclass(frozen=True)
class RecOptions:
    """MXNet RecordIO ``train.rec`` / ``train.idx`` (insightface layout or plain).

    :param aligned: the template the stored images are aligned to.
    :param skip_bad: drop unreadable records instead of failing.
    """

    aligned: str = "arcface_112"
    skip_bad: bool = False


@dataclass(frozen=True)
class TfrecordOptions:
    """TFRecord of ``tf.train.Example`` with ``image/encoded`` and ``image/class/label``."""

    aligned: str = "arcface_112"
    skip_bad: bool = False


@dataclass(frozen=True)
class AttOptions:
    """AT&T / ORL faces: ``s1..s40/1..10.pgm``.

    Like ``synthetic``, one dataset gives disjoint identities for training
    and for verification, so ``--train att=… --eval att=…`` never tests on a
    person it trained on.

    :param train_subjects: subjects ``train_set()`` returns (default s1-s30).
    :param test_subjects: subjects the verification pairs are drawn from (s31-s40).
    :param folds: verification folds generated over the test subjects.
    :param pairs_per_fold: genuine (and as many impostor) pairs per fold.
    :param seed: seed of the generated pairs.
    """

    train_subjects: str = "1-30"
    test_subjects: str = "31-40"
    folds: int = 10
    pairs_per_fold: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        _bounds(self, "att", {"folds": (1, 100), "pairs_per_fold": (1, 100_000), "seed": (0, 2**32 - 1)})


@dataclass(frozen=True)
class WiderOptions:
    """WIDER FACE validation ground truth (``.mat``) over the images present.

    :param difficulty: keep-list whose faces count; the others are flagged ignore.
    :param images: image folder; default ``images_416`` (the stretched subset)
        or ``images`` (``<event>/<file>.jpg``) inside the dataset folder.
    :param stretched: side the images were stretched to (boxes scaled by
        side/W, side/H); 0 = read it from a folder named ``images_<side>``.
    """

    difficulty: Literal["easy", "medium", "hard"] = "hard"
    images: str = ""
    stretched: int = 0

    def __post_init__(self) -> None:
        _bounds(self, "wider", {"stretched": (0, 16_384)})


@dataclass(frozen=True)
class FddbOptions:
    """FDDB ellipse annotations (``FDDB-folds``), converted to boxes.

    :param images: folder holding ``2002/08/11/big/img_591.jpg`` (originalPics).
    :param folds: which folds, e.g. ``1-10``.
    """

    images: str = ""
    folds: str = "1-10"


@dataclass(frozen=True)
class VideoOptions:
    """Frames of one video as an identity's images.

    :param every: keep every N-th frame.
    :param identity: the identity name; default the file stem.
    :param max_frames: stop after this many kept frames (0 = all).
    """

    every: int = 1
    identity: str = ""
    max_frames: int = 0

    def __post_init__(self) -> None:
        _bounds(self, "video", {"every": (1, MAX_COUNT), "max_frames": (0, MAX_COUNT)})


@dataclass(frozen=True)
class SpoofOptions:
    """Options of the ``spoof`` dataset.

    :param threshold_rule: how the decision threshold is fixed on the dev
        split: ``eer`` (APCER = BPCER, the default) or ``bpcer20`` /
        ``bpcer10`` / ``bpcer100`` (the highest threshold with BPCER <= 1/N).
    :param video_every: use every N-th frame of a video.
    :param video_frames: at most this many frames per video (0 = all).
    :param aligned: alignment template the images are already cropped to
        (e.g. ``arcface_112``); empty = raw photos that need detection.
    """

    threshold_rule: Literal["eer", "bpcer20", "bpcer10", "bpcer100"] = "eer"
    video_every: int = 10
    video_frames: int = 10
    aligned: str = ""

    def __post_init__(self) -> None:
        _bounds(self, "spoof", {"video_every": (1, MAX_COUNT), "video_frames": (0, MAX_COUNT)})
