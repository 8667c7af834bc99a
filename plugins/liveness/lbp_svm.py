"""``lbp_svm``: colour-texture LBP histograms + an SVM.

After Boulkenafet, Komulainen & Hadid (ICIP 2015): a face crop is converted
to YCbCr and HSV; on every channel, local binary patterns are computed at
several (P, R) scales and histogrammed (P = 8: the 59 non-rotation-invariant
uniform codes; other P: the P + 2 rotation-invariant uniform codes); the
normalised histograms are concatenated, square-rooted (Hellinger), scaled
per feature and classified by an RBF SVM with balanced class weights.  The
score is the SVM decision value (positive = bona fide).
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.errors import DataError, HarnessError

from facebench_plugins.liveness import LbpSvmOptions

__all__ = ["LbpSvm", "build", "lbp_features"]

_FORMAT = "facebench-lbp_svm-1"


def _scales(text: str) -> list[tuple[int, float]]:
    out = []
    for pair in text.split(";"):
        p, r = pair.split(",")
        out.append((int(float(p)), float(r)))
    return out


def _channels(rgb: np.ndarray, spaces: Sequence[str]) -> list[np.ndarray]:
    import cv2

    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    out: list[np.ndarray] = []
    for s in spaces:
        if s == "ycbcr":
            ycrcb = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)
            out += [ycrcb[:, :, 0], ycrcb[:, :, 2], ycrcb[:, :, 1]]
        elif s == "hsv":
            hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
            out += [hsv[:, :, 0], hsv[:, :, 1], hsv[:, :, 2]]
        elif s == "rgb":
            out += [rgb[:, :, 0], rgb[:, :, 1], rgb[:, :, 2]]
        elif s == "gray":
            out.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    return [np.ascontiguousarray(c) for c in out]


def lbp_features(image: np.ndarray, options: LbpSvmOptions | None = None) -> np.ndarray:
    """The feature vector of one RGB uint8 face crop."""
    import cv2
    from skimage.feature import local_binary_pattern

    o = options or LbpSvmOptions()
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise HarnessError(f"lbp_svm: expected an (H, W, 3) uint8 RGB face crop, got {a.shape} {a.dtype}")
    if a.shape[:2] != (o.size, o.size):
        interp = cv2.INTER_AREA if a.shape[0] > o.size else cv2.INTER_LINEAR
        a = cv2.resize(np.ascontiguousarray(a), (o.size, o.size), interpolation=interp)
    spaces = [s.strip() for s in o.colour_spaces.split(",") if s.strip()]
    feats = []
    for ch in _channels(a, spaces):
        for p, r in _scales(o.scales):
            if p == 8:
                codes = local_binary_pattern(ch, p, r, method="nri_uniform")
                bins = p * (p - 1) + 3
            else:
                codes = local_binary_pattern(ch, p, r, method="uniform")
                bins = p + 2
            hist = np.bincount(codes.astype(np.int64).ravel(), minlength=bins)[:bins].astype(np.float64)
            feats.append(np.sqrt(hist / max(hist.sum(), 1.0)))
    return np.concatenate(feats).astype(np.float32)


class LbpSvm:
    """Colour-texture LBP + SVM; ``fit`` then ``score``."""

    kind = "lbp_svm"

    def __init__(self, options: LbpSvmOptions | None = None) -> None:
        self.options = options or LbpSvmOptions()
        self.model: Any = None
        self.history: dict[str, Any] = {}

    def features(self, images: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        it: Any = range(len(images))
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc="lbp features", unit="img", leave=False)
        return np.stack([lbp_features(images[i], self.options) for i in it]) if len(images) else np.zeros((0, 0))

    def fit(self, images: Sequence[np.ndarray], labels: Any, species: Any = None, progress: bool = True) -> dict:
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        y = np.asarray(labels).reshape(-1)
        if y.size != len(images):
            raise DataError(f"fit: {len(images)} images but {y.size} labels")
        if not np.isin(y, (0, 1)).all() or y.min() == y.max():
            raise DataError("fit: labels must be 1 (bona fide) / 0 (attack), with both classes present")
        t0 = time.perf_counter()
        x = self.features(images, progress)
        t1 = time.perf_counter()
        o = self.options
        gamma: Any = o.gamma if o.gamma in ("scale", "auto") else float(o.gamma)
        svm = SVC(C=o.c, kernel=o.kernel, gamma=gamma, class_weight="balanced")
        self.model = make_pipeline(StandardScaler(), svm).fit(x, y.astype(np.int64))
        t2 = time.perf_counter()
        self.history = {"images": int(y.size), "features": int(x.shape[1]),
                        "support_vectors": int(svm.n_support_.sum()), "feature_s": round(t1 - t0, 2),
                        "svm_s": round(t2 - t1, 2), "wall_s": round(t2 - t0, 2),
                        "train_accuracy": float((self.model.predict(x) == y).mean())}
        return self.history

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """SVM decision values (N,); positive = bona fide."""
        if self.model is None:
            raise HarnessError("lbp_svm: score() before fit() or load(); train it or load a checkpoint")
        if not len(images):
            return np.zeros(0, np.float64)
        return np.asarray(self.model.decision_function(self.features(images)), np.float64).reshape(-1)

    def save(self, path: str | Path) -> Path:
        from harness.results import atomic_write_bytes

        if self.model is None:
            raise HarnessError("lbp_svm: nothing to save before fit()")
        blob = pickle.dumps({"format": _FORMAT, "options": self.options, "model": self.model, "history": self.history})
        return atomic_write_bytes(Path(path), blob)

    def load(self, path: str | Path) -> "LbpSvm":
        """Load a checkpoint written by :meth:`save` (a pickle: load only files you made)."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"lbp_svm checkpoint {p} does not exist")
        try:
            ck = pickle.loads(p.read_bytes())
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
            raise DataError(f"{p}: not an lbp_svm checkpoint ({exc})") from None
        if not isinstance(ck, dict) or ck.get("format") != _FORMAT:
            raise DataError(f"{p}: not an lbp_svm checkpoint (format {ck.get('format') if isinstance(ck, dict) else '?'})")
        if ck["options"] != self.options:
            raise DataError(f"{p}: saved with options {ck['options']}, but this lbp_svm has {self.options}")
        self.model, self.history = ck["model"], dict(ck.get("history") or {})
        return self


def build(options: LbpSvmOptions | None = None, **_: Any) -> LbpSvm:
    return LbpSvm(options)
