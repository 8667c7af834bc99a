"""Reproducibility manifest: what shaped a recognition result's embeddings.

Every recognizer or backbone evaluation records, in ``results.json`` under
``sections.manifest``:

``alignment`` and ``input_size``   the template the crops were aligned to and their size
``color``                          channel order fed to the model (``rgb`` / ``bgr``)
``normalisation``                  ``{"scale", "mean", "std"}`` (x * scale - mean) / std, or the model's own rule
``flip``                           flip fusion: ``none``, ``sum`` or ``concat``
``batch_size``                     images per model call, and ``precision`` (float32, bf16 autocast …)
``runtimes``                       onnxruntime, OpenCV, torch, dlib and TensorFlow versions (``None``: not installed)
``model_sha256``                   sha256 of the model file (``model_sha256_of`` says of what)
``landmarker``                     with ``--landmarker`` only: its name, point scheme, "points from
                                   landmarker X in detector Y's box" and how its points became the five

and ``fingerprint``: a short sha256 of all of them except the versions of
runtimes the model does not run on (``compared_runtimes``: its own framework's
and OpenCV's, which makes the crops).  Two results with different fingerprints
are never the same result: the grid page marks runs of one combination whose
fingerprints differ, and names the fields that differ.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from typing import TYPE_CHECKING, Any, Mapping

from harness.specs import FRAMEWORKS

if TYPE_CHECKING:
    from harness.specs import RecognizerSpec

__all__ = ["FIELDS", "backbone_manifest", "fingerprint", "recognizer_manifest", "runtime_versions",
           "state_dict_sha256", "with_landmarker"]

#: the fields the fingerprint covers (with the compared runtimes' versions)
FIELDS = ("alignment", "input_size", "color", "normalisation", "flip", "batch_size", "precision",
          "model_sha256")

#: runtime -> distributions that install it, first found wins
_RUNTIME_DISTS: Mapping[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
               "opencv-contrib-python"),
    "torch": ("torch",),
    "dlib": ("dlib", "dlib-bin"),
    "tensorflow": ("tensorflow-cpu", "tensorflow"),
}
#: the module a framework imports (:data:`harness.specs.FRAMEWORKS`) -> the runtime above
_MODULE_RUNTIME = {"onnxruntime": "onnxruntime", "cv2": "opencv", "torch": "torch", "dlib": "dlib",
                   "tensorflow": "tensorflow"}


def framework_runtime(framework: str) -> str:
    """The runtime a model of ``framework`` (a spec's framework name) runs on."""
    module = (FRAMEWORKS.get(framework) or (None, None))[0]
    return _MODULE_RUNTIME.get(module or "", framework)


def runtime_versions() -> dict[str, str | None]:
    """Installed versions of onnxruntime, OpenCV, torch, dlib and TensorFlow, read from package metadata."""
    out: dict[str, str | None] = {}
    for runtime, dists in _RUNTIME_DISTS.items():
        out[runtime] = None
        for dist in dists:
            try:
                out[runtime] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def fingerprint(manifest: Mapping[str, Any]) -> str:
    """12 hex digits of sha256 over :data:`FIELDS` and the compared runtimes' versions."""
    runtimes = manifest.get("runtimes") or {}
    key = {f: manifest.get(f) for f in FIELDS}
    if manifest.get("landmarker"):  # only where one placed the points: other fingerprints stay as they were
        key["landmarker"] = manifest["landmarker"]
    key["runtimes"] = {r: runtimes.get(r) for r in sorted(manifest.get("compared_runtimes") or ())}
    blob = json.dumps(key, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _finish(m: dict[str, Any], framework: str) -> dict[str, Any]:
    m["runtimes"] = runtime_versions()
    m["compared_runtimes"] = sorted({framework_runtime(framework), "opencv"})
    m["fingerprint"] = fingerprint(m)
    return m


def with_landmarker(manifest: dict[str, Any], use: Any) -> dict[str, Any]:
    """``manifest`` naming the ``--landmarker`` that placed the alignment points (``use``, a
    :class:`harness.tasks._landmark_points.LandmarkerUse`; None: the detector did, nothing
    changes), its fingerprint recomputed to cover it.  Updated in place and returned."""
    if use is not None:
        manifest["landmarker"] = use.manifest()
        manifest["fingerprint"] = fingerprint(manifest)
    return manifest


def _norm(scale: Any, mean: Any, std: Any) -> dict[str, Any]:
    return {"scale": float(scale), "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def recognizer_manifest(rec: Any, rspec: "RecognizerSpec", *, template: str, input_size: Any,
                        task_batch: int) -> dict[str, Any]:
    """The manifest of a pretrained recognizer as the run used it.

    Read from the built object's ``describe()`` (preprocessing, model file
    and its sha256, runtime) where it has one, else from its spec.

    :param template: the alignment the crops were made with.
    :param task_batch: images the task hands ``embed`` per call.
    """
    d = rec.describe() if callable(getattr(rec, "describe", None)) else {}
    meta = rspec.meta
    if "scale" in d:
        norm: Any = _norm(d["scale"], d["mean"], d["std"])
        if meta.get("in_graph_normalisation"):
            norm["in_graph"] = meta["in_graph_normalisation"]
    else:
        norm = d.get("normalisation") or meta.get("normalisation") or "not stated by the recognizer"
    sha = d.get("sha256")
    of = "the model file" if sha else ""
    if not sha and rspec.weights and rspec.weights[0].sha256:
        sha, of = rspec.weights[0].sha256.lower(), f"{rspec.weights[0].filename} (checked when loaded)"
    batch = d.get("batch_size")
    m = {
        "model": rspec.name,
        "alignment": template,
        "input_size": [int(v) for v in input_size],
        "color": d.get("color", "rgb"),
        "normalisation": norm,
        "flip": d.get("flip") or (getattr(rec, "flip", None) or "none"),
        "batch_size": min(int(batch), task_batch) if batch else task_batch,
        "precision": d.get("precision", "float32"),
        "model_sha256": sha,
        "model_sha256_of": of or "not stated (the recognizer names no weights file)",
    }
    if d.get("batching"):
        m["batching"] = d["batching"]
    return _finish(m, rspec.framework)


def state_dict_sha256(model: Any) -> str:
    """sha256 over a torch module's state dict: each tensor's name, dtype, shape and bytes, in key order."""
    import torch

    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def backbone_manifest(engine: Any, model: Any, run_spec: Any, *, flip: str | None, device: str,
                      batch_size: int) -> dict[str, Any]:
    """The manifest of a backbone embedded through ``engine`` (weights as evaluated)."""
    opts = getattr(engine, "options", None)
    resolve = getattr(engine, "resolve_device", None)
    dev = str(resolve(device)) if callable(resolve) else device
    label = getattr(engine, "precision_label", None)  # the engine's own account, when it gives one
    amp = (dev.startswith("cuda") and getattr(opts, "amp", False)) or (
        dev == "cpu" and getattr(opts, "cpu_bf16", False))
    precision = label(device) if callable(label) else "autocast (bf16/fp16)" if amp else "float32"
    m = {
        "model": run_spec.name,
        "alignment": run_spec.alignment,
        "input_size": [int(v) for v in run_spec.input_size],
        "color": "rgb",
        "normalisation": _norm(1.0, run_spec.mean, run_spec.std),
        "flip": flip or "none",
        "batch_size": int(batch_size),
        "precision": precision,
        **_weights_hash(engine, model),
        "device": dev,
    }
    return _finish(m, getattr(engine, "framework", "torch"))


def _weights_hash(engine: Any, model: Any) -> dict[str, Any]:
    """The evaluated weights' sha256: the engine's own hash when it offers one, else a torch state dict's."""
    if callable(getattr(engine, "weights_sha256", None)):
        return {"model_sha256": engine.weights_sha256(model),
                "model_sha256_of": "the weights as evaluated (the engine's weights_sha256)"}
    return {"model_sha256": state_dict_sha256(model),
            "model_sha256_of": "the weights as evaluated (state dict: name, dtype, shape, bytes of each tensor)"}
