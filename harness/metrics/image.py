"""Image quality against a clean reference: PSNR and SSIM.

Thin wrappers over scikit-image (imported when called), with input checks
and one fixed convention: images are (H, W) or (H, W, C) arrays; for colour
images SSIM is averaged over channels (``channel_axis=-1``); ``data_range``
defaults to 255 for uint8 input and must be given for float input.
"""

from __future__ import annotations

import numpy as np

from harness.metrics._checks import MetricInputError

__all__ = ["psnr", "ssim"]


def _pair(reference: object, test: object, data_range: float | None):
    a = np.asarray(reference)
    b = np.asarray(test)
    if a.shape != b.shape:
        raise MetricInputError(f"reference and test differ in shape ({a.shape} vs {b.shape}); expected equal shapes")
    if a.ndim not in (2, 3):
        raise MetricInputError(f"reference: has shape {a.shape}; expected (H, W) or (H, W, C)")
    for name, x in (("reference", a), ("test", b)):
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise MetricInputError(f"{name}: contains NaN or infinite pixels")
    if data_range is None:
        if a.dtype == np.uint8 and b.dtype == np.uint8:
            data_range = 255.0
        else:
            raise MetricInputError(
                f"data_range: needed for {a.dtype}/{b.dtype} images (e.g. 1.0 for [0, 1] floats, 255 for 8-bit)"
            )
    if not (float(data_range) > 0):
        raise MetricInputError(f"data_range: {data_range!r}; expected a positive number")
    return a, b, float(data_range)


def psnr(reference: object, test: object, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images)."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b, dr = _pair(reference, test, data_range)
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(a, b, data_range=dr))


def ssim(reference: object, test: object, data_range: float | None = None, **kwargs) -> float:
    """Structural similarity (scikit-image defaults: 7x7 uniform window);
    ``kwargs`` go to ``skimage.metrics.structural_similarity``."""
    from skimage.metrics import structural_similarity

    a, b, dr = _pair(reference, test, data_range)
    if min(a.shape[:2]) < 7 and "win_size" not in kwargs:
        raise MetricInputError(f"reference: {a.shape[:2]} is smaller than SSIM's 7x7 window; pass win_size")
    channel_axis = -1 if a.ndim == 3 else None
    return float(structural_similarity(a, b, data_range=dr, channel_axis=channel_axis, **kwargs))
