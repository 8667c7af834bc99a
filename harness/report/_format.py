"""How numbers read in a report: one place, so every page agrees.

Rates (accuracy, TAR, FRR, EER, APCER, AP …) read as percentages, FAR-like
rates that go down to 1e-6 in scientific notation, AUC and SSIM with four
decimals, PSNR in dB.  A metric's ``meta["unit"]`` overrides the guess.
``None`` (an undefined value such as TAR at a FAR below 1/N_impostor) reads
"n/a".
"""

from __future__ import annotations

import json
import re
from typing import Any

from harness._values import finite_float

__all__ = [
    "NA",
    "fmt_count",
    "fmt_far",
    "fmt_metric",
    "fmt_number",
    "fmt_percent",
    "fmt_threshold",
    "fmt_value",
    "field_label",
    "fmt_mapping",
    "metric_label",
    "metric_unit",
]

NA = "n/a"

_PERCENT_FIRST = {
    "accuracy", "acc", "tar", "tpir", "eer", "frr", "fnmr", "fnir", "apcer", "bpcer",
    "acer", "hter", "ap", "map", "rank1", "rank5", "recall", "precision", "top1", "top5",
}
_SCI_FIRST = {"far", "fmr", "fpir"}
_FOUR_DECIMALS = {"auc", "ssim", "roc_auc"}

_LABELS = {
    "lfw_accuracy": "LFW accuracy",
    "accuracy": "Accuracy",
    "eer": "EER",
    "auc": "AUC",
    "acer": "ACER",
    "hter": "HTER",
    "apcer": "APCER",
    "bpcer": "BPCER",
    "psnr": "PSNR",
    "ssim": "SSIM",
    "rank1": "Rank-1",
}


_finite = finite_float


def metric_unit(name: str, meta: dict[str, Any] | None = None) -> str:
    """``percent``, ``sci``, ``db``, ``fixed4`` or ``general`` for a metric name."""
    unit = str((meta or {}).get("unit", "")).strip().lower()
    if unit in ("%", "percent"):
        return "percent"
    if unit == "db":
        return "db"
    if unit:
        return "general"
    low = name.lower()
    first = re.split(r"[_@\-]", low, maxsplit=1)[0]
    if low.startswith("psnr"):
        return "db"
    if first in _FOUR_DECIMALS or low in _FOUR_DECIMALS:
        return "fixed4"
    if first in _SCI_FIRST:
        return "sci"
    if first in _PERCENT_FIRST or low.endswith(("_accuracy", "_acc")) or low.startswith("ap_") \
            or re.fullmatch(r"rank\d+", first):
        return "percent"
    return "general"


def fmt_percent(value: Any, digits: int = 2) -> str:
    f = _finite(value)
    return NA if f is None else f"{f * 100:.{digits}f}%"


def fmt_far(value: Any) -> str:
    """A false-accept-like rate: ``1e-3`` style below 1 %, percent above."""
    f = _finite(value)
    if f is None:
        return NA
    if f == 0:
        return "0"
    if abs(f) < 0.01:
        mant, exp = f"{f:.1e}".split("e")
        mant = mant.rstrip("0").rstrip(".")
        return f"{mant}e{int(exp)}"
    return fmt_percent(f)


def fmt_threshold(value: Any) -> str:
    f = _finite(value)
    if f is None:
        return NA
    return f"{f:.4f}" if abs(f) < 1000 else f"{f:.4g}"


def fmt_number(value: Any, digits: int = 4) -> str:
    """A general number: integers as integers, else ``digits`` significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    f = _finite(value)
    if f is None:
        return NA
    if f.is_integer() and abs(f) < 1e15:
        return f"{int(f):,}"
    return f"{f:.{digits}g}"


def fmt_count(value: Any) -> str:
    f = _finite(value)
    return NA if f is None else f"{int(round(f)):,}"


def fmt_metric(name: str, value: Any, meta: dict[str, Any] | None = None) -> str:
    """Format a metric value the way every page shows it."""
    unit = metric_unit(name, meta)
    f = _finite(value)
    if f is None:
        return NA
    if unit == "percent":
        return fmt_percent(f)
    if unit == "sci":
        return fmt_far(f)
    if unit == "db":
        return f"{f:.2f} dB"
    if unit == "fixed4":
        return f"{f:.4f}"
    text = fmt_number(f)
    suffix = str((meta or {}).get("unit", "")).strip()
    return f"{text} {suffix}" if suffix and suffix.lower() not in ("%", "percent") else text


def fmt_spread(name: str, value: Any, meta: dict[str, Any] | None = None) -> str:
    """A ± spread (std) in the metric's unit, without the percent sign."""
    f = _finite(value)
    if f is None:
        return ""
    unit = metric_unit(name, meta)
    if unit == "percent":
        return f"{f * 100:.2f}"
    if unit == "fixed4":
        return f"{f:.4f}"
    return f"{f:.3g}"


def fmt_value(value: Any) -> str:
    """Any protocol/provenance value as short text."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return fmt_number(value)
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, int) for v in value):
            return f"{value[0]}×{value[1]}"
        return ", ".join(fmt_value(v) for v in value) or "—"
    if isinstance(value, dict):
        return fmt_mapping(value)
    return str(value)


def fmt_mapping(value: dict, depth: int = 0) -> str:
    """A mapping as readable text, ``Easy 1,234 · Medium 2,345``; nested mappings in
    parentheses; beyond two levels (rare) the rest as JSON."""
    if not value:
        return "—"
    if depth > 1:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    parts = []
    for k, v in value.items():
        text = f"({fmt_mapping(v, depth + 1)})" if isinstance(v, dict) else fmt_value(v)
        parts.append(f"{field_label(k)} {text}")
    return " · ".join(parts)


def metric_label(name: str) -> str:
    """``tar_at_far_1e-4`` → ``TAR @ FAR 1e-4``; known names get their usual spelling."""
    if name in _LABELS:
        return _LABELS[name]
    m = re.fullmatch(r"tar_at_far_(.+)", name)
    if m:
        return f"TAR @ FAR {m.group(1)}"
    m = re.fullmatch(r"(frr|far)_at_(.+)", name)
    if m:
        return f"{m.group(1).upper()} @ {m.group(2).replace('_', ' ')}"
    m = re.fullmatch(r"rank(\d+)(_.*)?", name)
    if m:
        rest = (m.group(2) or "").replace("_", " ")
        return f"Rank-{m.group(1)}" + re.sub(r"\bfpir\b", "FPIR", rest)
        m = re.fullmatch(r"ap_(easy|medium|hard)", name)
    if m:
        return f"AP {m.group(1)}"
    if name in _FIELD_LABELS:
        return _FIELD_LABELS[name]
    words = name.replace("_", " ")
    upper = {"tar", "far", "frr", "eer", "auc", "ap", "lfw", "psnr", "ssim", "roc", "det", "cmc",
             "tpir", "fpir", "fnir", "apcer", "bpcer", "acer", "hter", "fps", "ms"}
    return " ".join(w.upper() if w in upper else w for w in words.split()).strip() or name


#: stored keys whose generated label would read wrong
_FIELD_LABELS = {
    "wall_s": "Wall time (s)",
    "img_per_s": "Images/s",
    "images_per_s": "Images/s",
    "ms_per_image": "Time per image (ms)",
    "ms_p90": "Time per image, 90th percentile (ms)",
    "iou": "IoU",
    "ap": "AP",
    "ap_rule": "AP rule",
    "epoch_evals": "Epoch evaluations",
    "lr": "Learning rate",
    "faces_counted": "Faces counted",
    "val_accuracy": "Validation accuracy",
    "resumed_from_step": "Resumed from step",
    "num_classes": "Classes",
    "input_size": "Input size",
    "cv_folds": "Cross-validation folds",
    "tar_rule": "TAR@FAR rule",
    "eval_folds": "Evaluation folds",
    "stopped_by": "Stopped by",
}
_ACRONYMS = {"tar", "far", "frr", "eer", "auc", "ap", "lfw", "psnr", "ssim", "roc", "det", "cmc", "tpir", "fpir",
             "fnir", "apcer", "bpcer", "acer", "hter", "nme", "cpu", "gpu", "iou", "amp", "id", "ijb", "pad",
             "dev", "sgd", "json", "url", "fp", "tp", "bf16", "fp16", "onnx", "ced"}


def field_label(key: str) -> str:
    """A stored key as a human label: ``wall_s`` → ``Wall time (s)``,
    ``img_per_s`` → ``Images/s``, ``iou`` → ``IoU``, ``batch_size`` → ``Batch size``."""
    key = str(key)
    if key in _FIELD_LABELS:
        return _FIELD_LABELS[key]
    unit = ""
    for suffix, text in (("_per_s", "/s"), ("_ms", " (ms)"), ("_s", " (s)"), ("_bytes", " (bytes)")):
        if key.endswith(suffix) and len(key) > len(suffix):
            key, unit = key[: -len(suffix)], text
            break
    words = [w.upper() if w in _ACRONYMS else w for w in key.split("_") if w]
    if not words:
        return key
    if words[0] == words[0].lower():
        words[0] = words[0].capitalize()
    return " ".join(words) + unit
