"""Data records that plugins and tasks exchange (numpy only).

Images are always ``numpy.ndarray`` of shape (H, W, 3), dtype uint8, **RGB**.

* A dataset plugin's built object offers one or more of
  :meth:`train_set`, :meth:`verification`, :meth:`detection`, ... (see
  :class:`Dataset`).
* A detector's ``detect(image)`` returns :class:`Detections`.

Every built object's contract is a :class:`typing.Protocol` here
(:class:`Detector`, :class:`Landmarker`, :class:`Recognizer`, :class:`LivenessModel`,
:class:`Inpainter`, :class:`Engine`, and the dataset views
:class:`TrainData`, :class:`VerificationData`, :class:`DetectionData`,
:class:`LivenessData`, :class:`LandmarkData`).  Optional capabilities are Protocols of their own
(:class:`SelfAligningRecognizer`, :class:`BoxInitialisedLandmarker`, :class:`FaceScoringLiveness`,
:class:`MaskEstimatingInpainter`, :class:`RestoringWithMasks`, and a detection dataset's
:class:`ScoredDetectionData`): a task asks ``isinstance(obj, Capability)``, never a
component's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, NoReturn, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = [
    "AdaptingEngine", "BoxInitialisedLandmarker", "ConfiguredRecognizer", "CostReporting",
    "Dataset", "DetectionData", "DetectionSample", "DetectionSet", "Detections",
    "Detector", "Engine", "FaceScoringLiveness", "IdentityGuidedInpainter", "ImageSet", "Inpainter",
    "LandmarkData", "LandmarkSample", "LandmarkSet", "Landmarker",
    "LivenessData", "LivenessModel", "MaskEstimatingInpainter", "PairSet", "Recognizer", "RestoringWithMasks",
    "RunLogger", "ScoredDetectionData", "SelfAligningRecognizer", "TrainData", "TrainableInpainter",
    "VerificationData", "VerificationSuite",
    "crop_template", "own_alignment",
]


@dataclass
class Detections:
    """Faces found in one image.

    :param boxes: (N, 4) float32, x1, y1, x2, y2 in pixels.
    :param scores: (N,) float32 confidence.
    :param landmarks: (N, 5, 2) float32 — left eye, right eye, nose, left and
        right mouth corner (image left/right) — or ``None``.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if len(self.boxes) != len(self.scores):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.scores)} scores")
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 5, 2)
            if len(self.landmarks) != len(self.boxes):
                raise ValueError(f"{len(self.boxes)} boxes but {len(self.landmarks)} landmark sets")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls, with_landmarks: bool = True) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros((0,)), np.zeros((0, 5, 2)) if with_landmarks else None)


@dataclass
class ImageSet:
    """Labelled face images, loaded lazily.

    :param keys: one stable string per image (its path, or record index).
    :param labels: (N,) int64 identity index, -1 when unknown.
    :param loader: ``loader(key) -> RGB uint8 image``.
    :param identities: label -> identity name.
    :param aligned: name of the alignment template the images are already
        cropped to (``"arcface_112"``), or ``None`` for raw photos that need
        detection and alignment.
    :param synthetic: generated rather than real faces (stated in reports).
    """

    keys: Sequence[str]
    labels: np.ndarray
    loader: Callable[[str], np.ndarray]
    identities: Sequence[str] = ()
    aligned: str | None = None
    synthetic: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.keys) != len(self.labels):
            raise ValueError(f"{len(self.keys)} keys but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.keys)

    def load(self, i: int) -> np.ndarray:
        return self.loader(self.keys[i])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0


@dataclass
class PairSet:
    """Verification pairs over an :class:`ImageSet` (the LFW View 2 shape).

    :param pairs: (P, 2) int indices into ``images``.
    :param issame: (P,) bool, True for genuine pairs.
    :param folds: (P,) int fold id (0-based), e.g. 10 folds of 600 for LFW.
    :param protocol: a human name, e.g. ``"LFW View 2 (6,000 pairs, 10 folds)"``.
    """

    images: ImageSet
    pairs: np.ndarray
    issame: np.ndarray
    folds: np.ndarray
    protocol: str = ""

    def __post_init__(self) -> None:
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        self.issame = np.asarray(self.issame, dtype=bool).reshape(-1)
        self.folds = np.asarray(self.folds, dtype=np.int64).reshape(-1)
        if not (len(self.pairs) == len(self.issame) == len(self.folds)):
            raise ValueError("pairs, issame and folds must have the same length")

    def __len__(self) -> int:
        return len(self.pairs)

    def subset(self, folds: Sequence[int]) -> "PairSet":
        """Only the pairs of the given folds (e.g. one LFW fold in CI)."""
        keep = np.isin(self.folds, np.asarray(list(folds)))
        return PairSet(self.images, self.pairs[keep], self.issame[keep], self.folds[keep], self.protocol)


@dataclass
class DetectionSample:
    """One image with ground-truth boxes (x1, y1, x2, y2) and flags."""

    key: str
    boxes: np.ndarray
    ignore: np.ndarray | None = None  # (N,) bool, True = not counted (WIDER keep-lists)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class DetectionSet:
    samples: Sequence[DetectionSample]
    loader: Callable[[str], np.ndarray]
    protocol: str = ""


@dataclass
class LandmarkSample:
    """One annotated face: ``points`` (P, 2) x, y in pixels, ``box`` (4,) x1, y1, x2, y2."""

    key: str
    points: np.ndarray
    box: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)
        self.box = np.asarray(self.box, dtype=np.float64).reshape(4)


@dataclass
class LandmarkSet:
    """Faces with ground-truth landmarks of one ``scheme`` (``harness.metrics.landmarks.SCHEMES``).

    :param box_rule: how each sample's box was made (stated in the protocol).
    """

    samples: Sequence[LandmarkSample]
    loader: Callable[[str], np.ndarray]
    scheme: str
    protocol: str = ""
    box_rule: str = ""


class Dataset:
    """What a dataset plugin's factory returns.  Implement the views the
    layout supports; the others raise with a clear message."""

    name = "dataset"

    def _missing(self, what: str) -> NoReturn:
        from harness.errors import DataError

        raise DataError(f"dataset {self.name!r} has no {what} data")

    def train_set(self) -> ImageSet:
        """Labelled images to train on."""
        self._missing("training")

    def verification(self) -> PairSet:
        """Verification pairs with folds."""
        self._missing("verification")

    def detection(self) -> DetectionSet:
        """Images with ground-truth face boxes."""
        self._missing("detection")

    def landmarks(self) -> LandmarkSet:
        """Faces with ground-truth landmarks."""
        self._missing("landmark")


# ------------------------------------------------------------------ contracts
@runtime_checkable
class Detector(Protocol):
    """A built detector: ``detect(RGB uint8 image) -> Detections``."""

    def detect(self, image: np.ndarray) -> Detections: ...


@runtime_checkable
class Landmarker(Protocol):
    """A built landmarker: ``predict(RGB uint8 image, boxes (N, 4)) -> (N, P, 2) float32``,
    P and the point order being its spec's ``num_points`` and ``scheme``."""

    def predict(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class BoxInitialisedLandmarker(Landmarker, Protocol):
    """A landmarker that starts from a fixed mean shape placed in the box (cascade regression such as
    dlib's shape predictor): ``mean_shape`` (P, 2) in box units — (x1, y1) at (0, 0), (x2, y2) at
    (1, 1).  A tracker fits it to the previous frame's shape to choose the next box
    (``-o tracking.box=fit``, :mod:`harness.tasks.tracking`)."""

    mean_shape: np.ndarray


@runtime_checkable
class Recognizer(Protocol):
    """A built pretrained recognizer: ``embed(aligned crops) -> (N, D) float32``.

    The crops are aligned to the spec's ``alignment`` template and resized to
    its ``input_size``; D is the spec's ``embedding_size``.
    """

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


@runtime_checkable
class SelfAligningRecognizer(Recognizer, Protocol):
    """A recognizer with an alignment of its own (e.g. a landmark model of its own run
    in the detected box): the task hands it raw images and boxes, not template crops.

    ``own_alignment()`` names that alignment for the report, or returns ``None``
    when the built object's options make it take template crops after all
    (then of the template named by ``alignment``).
    ``align_faces(image, boxes)`` returns one crop per box, as ``embed`` takes them.
    """

    alignment: str

    def own_alignment(self) -> str | None: ...

    def align_faces(self, image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]: ...


def own_alignment(recognizer: Any) -> str | None:
    """The recognizer's own alignment, or ``None`` when the task aligns its crops."""
    if isinstance(recognizer, SelfAligningRecognizer):
        return recognizer.own_alignment()
    return None


@runtime_checkable
class ConfiguredRecognizer(Recognizer, Protocol):
    """A recognizer whose options or model file fix its crop (e.g. a generic ONNX model): the
    built object states ``input_size``, ``alignment`` and ``flip`` (``None``, ``"sum"`` or
    ``"concat"``), which override its spec's, and ``describe()`` reports them as used
    (preprocessing, model hash, runtime) for the run's results."""

    input_size: tuple[int, int]
    alignment: str
    flip: str | None

    def describe(self) -> dict: ...


@runtime_checkable
class CostReporting(Protocol):
    """A built model that states its own size for the run's model card
    (:mod:`harness.tasks._cost`): ``compute()`` returns ``{"params": int, "flops": int,
    "method": str}`` for one forward pass of one image (2 FLOP per multiply-accumulate), or
    ``{"params": None, "flops": None, "reason": str}`` when it cannot be counted."""

    def compute(self) -> dict: ...


def crop_template(recognizer: Any, spec_alignment: str) -> str:
    """The template a recognizer's ``embed`` takes: the built object's own choice when it
    states one (self-aligning or configured), else its spec's (default ``arcface_112``)."""
    if isinstance(recognizer, (SelfAligningRecognizer, ConfiguredRecognizer)):
        return recognizer.alignment
    return spec_alignment or "arcface_112"


@runtime_checkable
class LivenessModel(Protocol):
    """A built liveness model: ``score(face crops) -> (N,)``, higher = more likely live."""

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


@runtime_checkable
class FaceScoringLiveness(LivenessModel, Protocol):
    """A liveness model that scores a face in the full image from its box (its own context crop)."""

    def score_faces(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Inpainter(Protocol):
    """A built inpainter: ``restore(images, masks=None) -> list`` of RGB uint8 images of the
    same sizes; ``needs_mask`` is True when it must be given the true mask (oracle mode)."""

    needs_mask: bool
    #: how it gets the mask, stated in the protocol (e.g. "estimated from the image (blind)")
    mask_mode: str

    def restore(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> list: ...


@runtime_checkable
class TrainableInpainter(Inpainter, Protocol):
    """An inpainter that learns: ``fit`` on clean crops (meshed on the fly), ``save`` / ``load``
    checkpoints that record ``train_identities`` (``None`` when unknown)."""

    train_identities: Any

    def fit(self, clean_images: Sequence[np.ndarray], **kwargs: Any) -> dict: ...

    def save(self, path: Any) -> Any: ...

    def load(self, path: Any) -> Any: ...


@runtime_checkable
class MaskEstimatingInpainter(Inpainter, Protocol):
    """An inpainter that predicts the mesh mask itself (scored by mask IoU)."""

    def estimate_masks(self, images: Sequence[np.ndarray]) -> list: ...


@runtime_checkable
class RestoringWithMasks(Inpainter, Protocol):
    """An inpainter that restores and estimates masks in one pass: ``(restored, masks or None)``."""

    def restore_with_masks(self, images: Sequence[np.ndarray],
                           masks: Sequence[np.ndarray] | None = None) -> tuple[list, list | None]: ...


@runtime_checkable
class IdentityGuidedInpainter(TrainableInpainter, Protocol):
    """A trainable inpainter whose loss may ask a frozen identity network (the spec's
    ``meta["identity_backbone"]``); ``uses_identity`` says whether its options turn that on."""

    uses_identity: bool


@runtime_checkable
class Engine(Protocol):
    """A training engine (one per framework): seeds, trains a backbone with a loss, embeds crops."""

    def seed_everything(self, seed: int) -> None: ...

    def train(self, model: Any, loss: Any, images: ImageSet, **kwargs: Any) -> Any: ...

    def embed(self, model: Any, images: Any, **kwargs: Any) -> np.ndarray: ...


@runtime_checkable
class RunLogger(Protocol):
    """Where a run's progress goes while it trains (TensorBoard event files, an MLflow run).

    ``scalars`` takes finite numbers by tag at a global step (tags such as
    ``train/loss`` or ``eval/val_accuracy``); ``params`` flat ``name -> text``
    settings; ``artifact`` a file (into ``folder`` of the logger's store, where it
    keeps files); ``close`` ends it with the run's status (``finished``, ``failed``
    or ``killed``).  Implementations: :mod:`harness.run_loggers`.
    """

    def scalars(self, step: int, values: Mapping[str, float]) -> None: ...

    def params(self, values: Mapping[str, str]) -> None: ...

    def artifact(self, path: str | Path, folder: str | None = None) -> None: ...

    def close(self, status: str = "finished") -> None: ...


@runtime_checkable
class AdaptingEngine(Protocol):
    """An engine that runs components specified once for every engine (``--engine tf``).

    The task builds a backbone or loss through its spec as always and passes
    it to :meth:`adapt`, which returns the engine's own version of it (same
    architecture, same weights); the engine spec's ``meta["adapts"]`` lists
    the component names per kind it can take, so a grid is checked before
    anything is built.
    """

    def adapt(self, kind: str, name: str, options: Any, component: Any) -> Any: ...


@runtime_checkable
class TrainData(Protocol):
    """A dataset that offers labelled training images."""

    def train_set(self) -> ImageSet: ...


@runtime_checkable
class VerificationData(Protocol):
    """A dataset that offers verification pairs with folds."""

    def verification(self) -> PairSet: ...


@runtime_checkable
class VerificationSuite(Protocol):
    """A dataset whose path holds several named verification sets (a folder of insightface
    ``.bin`` files): ``suite_members()`` lists ``(set name, path)``; each path, opened by the
    same dataset, is one set.  A recognition run evaluates them all (:mod:`harness.tasks.bin_suite`)."""

    def suite_members(self) -> list[tuple[str, str]]: ...


@runtime_checkable
class DetectionData(Protocol):
    """A dataset that offers images with ground-truth boxes."""

    def detection(self) -> DetectionSet: ...


@runtime_checkable
class ScoredDetectionData(Protocol):
    """A detection dataset that names the protocol its ground truth is scored with, so the
    detection task picks the evaluation from the data, never from the dataset's name.

    ``detection_protocol`` is one of the protocols the detection task knows
    (``harness.tasks.detection.PROTOCOLS``):

    * ``"wider"``: WIDER FACE AP at IoU 0.5 on the settings easy / medium / hard.  The dataset
      takes the option ``difficulty`` (``easy`` / ``medium`` / ``hard``); built with it, each
      sample's ``ignore`` flags the faces outside that setting's keep-list.
    * ``"fddb"``: the FDDB discrete ROC (Jain & Learned-Miller 2010).  Each sample's
      ``info["ellipses"]`` holds its (M, 5) ground-truth ellipses ``major radius, minor radius,
      angle (radians), centre x, centre y``; ``boxes`` are their bounding boxes.
    """

    detection_protocol: str

    def detection(self) -> DetectionSet: ...


@runtime_checkable
class LivenessData(Protocol):
    """A dataset that offers live / attack images (a record with ``images``, ``labels``, ``split``)."""

    def liveness(self) -> Any: ...


@runtime_checkable
class LandmarkData(Protocol):
    """A dataset that offers faces with ground-truth landmarks."""

    def landmarks(self) -> LandmarkSet: ...
