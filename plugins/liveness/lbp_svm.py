"""``lbp_svm``: colour-texture LBP histograms + an SVM.

After Boulkenafet, Komulainen & Hadid (ICIP 2015): a face crop is converted
to YCbCr and HSV; on every channel, local binary patterns are computed at
several (P, R) scales and histogrammed (P = 8: the 59 non-rotation-invariant
uniform codes; other P: the P + 2 rotation-invariant uniform codes); the
normalised histograms are concatenated, square-rooted (Hellinger), scaled
per feature and classified by an RBF SVM with balanced class weights.  The
score is the SVM decision value (positive = bona fide).

A checkpoint is an ``.npz`` of plain float64 arrays (scaler mean and scale,
support vectors, dual coefficients, intercept) plus a JSON header, read back
with ``allow_pickle=False``: loading one never runs code, unlike a pickle of
the scikit-learn pipeline.  Scores come from :class:`SvmArrays` both right
after ``fit`` and after ``load``, so the two agree exactly.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.errors import DataError, HarnessError

from facebench_plugins.liveness import LbpSvmOptions

__all__ = ["LbpSvm", "SvmArrays", "build", "lbp_features"]

_FORMAT = "facebench-lbp_svm-2"
_ARRAYS = ("mean", "scale", "support_vectors", "dual_coef")


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


@dataclass(frozen=True)
class SvmArrays:
    """A fitted ``StandardScaler`` + binary ``SVC`` as arrays; ``decision`` is the SVC's
    ``decision_function`` (sum of dual coefficients x kernel, plus the intercept)."""

    mean: np.ndarray  # (F,)
    scale: np.ndarray  # (F,)
    support_vectors: np.ndarray  # (S, F), in scaled units
    dual_coef: np.ndarray  # (S,)
    intercept: float
    kernel: str  # "rbf" or "linear"
    gamma: float  # resolved RBF gamma ("scale" / "auto" already applied)

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> "SvmArrays":
        scaler, svm = pipeline[0], pipeline[-1]
        return cls(np.asarray(scaler.mean_, np.float64), np.asarray(scaler.scale_, np.float64),
                   np.asarray(svm.support_vectors_, np.float64), np.asarray(svm.dual_coef_, np.float64)[0],
                   float(svm.intercept_[0]), str(svm.kernel), float(svm._gamma))

    def decision(self, features: np.ndarray) -> np.ndarray:
        x = np.array(features, dtype=np.result_type(features, np.float32))  # float32 stays float32,
        x -= self.mean.astype(x.dtype)  # as StandardScaler.transform does, so the scores
        x /= self.scale.astype(x.dtype)  # match scikit-learn's to rounding
        x = x.astype(np.float64)
        dot = x @ self.support_vectors.T
        if self.kernel == "rbf":
            sq = (x * x).sum(1)[:, None] + (self.support_vectors ** 2).sum(1)[None, :] - 2.0 * dot
            dot = np.exp(-self.gamma * np.maximum(sq, 0.0))
        return dot @ self.dual_coef + self.intercept


def _checked_arrays(arrays: dict[str, np.ndarray], meta: dict, where: str) -> SvmArrays:
    """Rebuild :class:`SvmArrays` from a checkpoint, refusing anything inconsistent."""
    if any(a.dtype != np.float64 for a in arrays.values()) or not all(
            np.isfinite(a).all() for a in arrays.values()):
        raise DataError(f"{where}: checkpoint arrays must be finite float64; the file is corrupt")
    mean, scale, sv, coef = (arrays[k] for k in _ARRAYS)
    f = mean.shape[0] if mean.ndim == 1 else -1
    if scale.shape != (f,) or sv.ndim != 2 or sv.shape[1] != f or coef.shape != (sv.shape[0],):
        raise DataError(f"{where}: checkpoint arrays have inconsistent shapes {[arrays[k].shape for k in _ARRAYS]}")
    kernel, gamma, intercept = meta.get("kernel"), meta.get("gamma"), meta.get("intercept")
    if kernel not in ("rbf", "linear") or not all(
            isinstance(v, (int, float)) and np.isfinite(v) for v in (gamma, intercept)):
        raise DataError(f"{where}: checkpoint has kernel {str(kernel)[:20]!r}, gamma {str(gamma)[:20]!r}, "
                        f"intercept {str(intercept)[:20]!r}; expected rbf/linear and finite numbers")
    return SvmArrays(mean, scale, sv, coef, float(intercept), kernel, float(gamma))


def _read_checkpoint(p: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON header, arrays) of an lbp_svm ``.npz``; nothing in it can run code."""
    expected = f"expected an lbp_svm checkpoint ({_FORMAT}: an .npz written by LbpSvm.save)"
    try:
        with np.load(p, allow_pickle=False) as z:
            if set(z.files) != {"meta", *_ARRAYS}:
                raise DataError(f"{p}: holds arrays {sorted(z.files)[:10]}; {expected}")
            arrays = {k: z[k] for k in _ARRAYS}
            meta = json.loads(str(z["meta"][()]))
    except DataError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        # a pickle (an old checkpoint, or a crafted one) lands here: np.load refuses it unread
        raise DataError(f"{p}: not an lbp_svm checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
                        f"{expected} — refusing to read it; re-train to create one") from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        fmt = meta.get("format") if isinstance(meta, dict) else None
        raise DataError(f"{p}: checkpoint format {str(fmt)[:40]!r}; {expected}")
    return meta, arrays


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
        pipeline = make_pipeline(StandardScaler(), svm).fit(x, y.astype(np.int64))
        self.model = SvmArrays.from_pipeline(pipeline)
        t2 = time.perf_counter()
        self.history = {"images": int(y.size), "features": int(x.shape[1]),
                        "support_vectors": int(svm.n_support_.sum()), "feature_s": round(t1 - t0, 2),
                        "svm_s": round(t2 - t1, 2), "wall_s": round(t2 - t0, 2),
                        "train_accuracy": float((pipeline.predict(x) == y).mean())}
        return self.history

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """SVM decision values (N,); positive = bona fide."""
        if self.model is None:
            raise HarnessError("lbp_svm: score() before fit() or load(); train it or load a checkpoint")
        if not len(images):
            return np.zeros(0, np.float64)
        return self.model.decision(self.features(images)).reshape(-1)

    def save(self, path: str | Path) -> Path:
        """Write the model as an ``.npz`` of arrays + a JSON header (see the module doc)."""
        from harness.results import atomic_write_bytes

        if self.model is None:
            raise HarnessError("lbp_svm: nothing to save before fit()")
        m: SvmArrays = self.model
        meta = {"format": _FORMAT, "options": dataclasses.asdict(self.options), "history": self.history,
                "kernel": m.kernel, "gamma": m.gamma, "intercept": m.intercept}
        buf = io.BytesIO()
        np.savez(buf, meta=np.asarray(json.dumps(meta)), mean=m.mean, scale=m.scale,
                 support_vectors=m.support_vectors, dual_coef=m.dual_coef)
        return atomic_write_bytes(Path(path), buf.getvalue())

    def load(self, path: str | Path) -> "LbpSvm":
        """Load a checkpoint written by :meth:`save`; anything else (a pickle included) is refused unread."""
        p = Path(path)
        if not p.is_file():
            raise DataError(f"lbp_svm checkpoint {p} does not exist")
        meta, arrays = _read_checkpoint(p)
        if meta.get("options") != dataclasses.asdict(self.options):
            raise DataError(f"{p}: saved with options {str(meta.get('options'))[:300]}, but this lbp_svm has "
                            f"{dataclasses.asdict(self.options)}")
        self.model = _checked_arrays(arrays, meta, str(p))
        self.history = dict(meta.get("history") or {})
        return self


def build(options: LbpSvmOptions | None = None, **_: Any) -> LbpSvm:
    return LbpSvm(options)
