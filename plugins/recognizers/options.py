"""Options of the built-in recognizers (``-o <recognizer>.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no framework here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from harness.align import TEMPLATES
from harness.specs import WeightsSpec, check_range

__all__ = [
    "CPU_BATCH",
    "DlibResnetOptions",
    "GPU_BATCH",
    "ONNX_DEFAULTS",
    "OnnxOptions",
    "SFACE_PREPROCESSING",
    "SFACE_WEIGHTS",
    "SfaceOptions",
    "provider_names",
]


@dataclass(frozen=True)
class DlibResnetOptions:
    """Options of ``dlib_resnet``.

    :param alignment: ``dlib_chip`` (default): dlib's own 150×150 chip from
        the 5-point shape predictor run on each detected box
        (``embed_faces``); ``arcface_112``: embed five-point similarity crops
        made by :func:`harness.align.align` (resized to 150×150).
    :param padding: chip padding passed to ``dlib.get_face_chip`` (dlib: 0.25).
    :param jitters: ``num_jitters`` of ``compute_face_descriptor`` (dlib: 0; 100 gives
        dlib's published 99.38 % but is 100× slower).
    :param weights: path to ``dlib_face_recognition_resnet_model_v1.dat`` (overrides the search).
    :param shape_predictor: path to ``shape_predictor_5_face_landmarks.dat``.
    """

    alignment: str = "dlib_chip"
    padding: float = 0.25
    jitters: int = 0
    weights: str = ""
    shape_predictor: str = ""

    def __post_init__(self) -> None:
        if self.alignment not in ("dlib_chip", "arcface_112"):
            raise ValueError(f"alignment must be 'dlib_chip' or 'arcface_112', got {self.alignment!r}")
        check_range("dlib_resnet.jitters", self.jitters, 0, 1000, integer=True)
        if not 0 <= self.padding <= 1:
            raise ValueError(f"padding must be in [0, 1], got {self.padding}")


# -- onnx and sface (runner: facebench_plugins.recognizers.onnx; pixel pipeline: _onnx_spec module doc)
#: images per onnxruntime call when ``batch_size=0``: on the CPU, and on a GPU provider.  On the
#: CPU one face per call was fastest per face for SFace (benchmarks/bench_recognizers.py: batch 1
#: < 2 < 4 < 8 < 64 ms/face, one thread): a face's activations stay in cache; per-call overhead is µs.
CPU_BATCH = 1
GPU_BATCH = 64
_MAX_SIDE = 4096
_MAX_BATCH = 4096
_MAX_THREADS = 1024
#: short provider names accepted by ``providers=`` (full onnxruntime names work too)
_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


def _show(value: Any) -> str:
    """``repr`` capped so a huge value never floods a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def provider_names(providers: str) -> tuple[str, ...]:
    """``"auto"`` -> ``()`` (decided at load time); ``"cuda,cpu"`` -> full onnxruntime names.

    :raises ValueError: an unknown provider name.
    """
    if providers.strip().lower() == "auto":
        return ()
    out = []
    for part in (p.strip() for p in providers.split(",")):
        if not part:
            continue
        if part.lower() in _PROVIDERS:
            out.append(_PROVIDERS[part.lower()])
        elif part.endswith("ExecutionProvider") and part.isidentifier():
            out.append(part)
        else:
            raise ValueError(
                f"providers={_show(providers)}: unknown provider {_show(part)}; expected 'auto' or a "
                f"comma list of {', '.join(sorted(_PROVIDERS))} (or full onnxruntime names)"
            )
    if not out:
        raise ValueError("providers is empty; expected 'auto' or e.g. 'cuda,cpu'")
    return tuple(out)


def _check_runtime(opts: Any, name: str, *, allow_auto_flip: bool = False) -> None:
    """batch_size, threads, providers: shared by both options classes."""
    if isinstance(opts.batch_size, bool) or not 0 <= opts.batch_size <= _MAX_BATCH:
        raise ValueError(f"{name}.batch_size={_show(opts.batch_size)}: expected an integer in [0, {_MAX_BATCH}] "
                         f"(0: {CPU_BATCH} on the CPU, {GPU_BATCH} on a GPU provider)")
    if isinstance(opts.threads, bool) or not 0 <= opts.threads <= _MAX_THREADS:
        raise ValueError(
            f"{name}.threads={_show(opts.threads)}: expected an integer in [0, {_MAX_THREADS}] "
            "(0: onnxruntime's default)"
        )
    try:
        provider_names(opts.providers)
    except ValueError as exc:
        raise ValueError(f"{name}.{exc}") from None
    flips = ("auto", "none", "sum", "concat") if allow_auto_flip else ("none", "sum", "concat")
    if opts.flip not in flips:
        raise ValueError(f"{name}.flip={_show(opts.flip)}: expected {', '.join(flips[:-1])} or {flips[-1]}")


def _channels(values: tuple[float, ...], where: str, positive: bool) -> tuple[float, float, float]:
    vals = tuple(float(v) for v in values)
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise ValueError(f"{where}={_show(values)}: expected one number or three (one per channel)")
    if positive and not all(v > 0 for v in vals):
        raise ValueError(f"{where}={_show(values)}: values must be > 0")
    return vals  # type: ignore[return-value]


#: what an ``onnx`` option left unset (``None``; ``flip``: ``"auto"``) becomes when the model's
#: facebench metadata does not state it: insightface's convention
ONNX_DEFAULTS: Mapping[str, Any] = {
    "color": "rgb",
    "scale": 1.0,
    "mean": (127.5, 127.5, 127.5),
    "std": (127.5, 127.5, 127.5),
    "layout": "nchw",
    "alignment": "arcface_112",
    "flip": "none",
}


@dataclass(frozen=True)
class OnnxOptions:
    """Options of ``onnx`` (``-o onnx.key=value``).

    Every preprocessing option is unset by default (``None``; ``flip``:
    ``auto``), meaning "what the model's facebench metadata states (a file
    written by ``harness export``), else the default in brackets".  A value
    you give always wins, also one equal to that default.

    :param model: path of the ``.onnx`` file (required).
    :param input_size: (height, width) of the crop fed; unset reads it from
        the graph (an error when the graph's height/width are dynamic).
    :param color: channel order the graph takes: ``rgb`` or ``bgr`` [rgb].
    :param scale: multiplies the 0..255 pixel values first [1].
    :param mean: subtracted per channel after ``scale`` (one number or three,
        in the order fed) [127.5].
    :param std: divides per channel after ``mean`` [127.5].  The defaults give
        insightface's (x - 127.5) / 127.5.
    :param layout: ``nchw`` or ``nhwc`` tensor layout [nchw].
    :param alignment: five-point template the crops are aligned to
        (:data:`harness.align.TEMPLATES`) [arcface_112].
    :param flip: flip fusion: ``none``, ``sum`` or ``concat``; ``auto``: the
        metadata's, else none.
    :param batch_size: images per onnxruntime call (a fixed-batch graph uses
        its own); 0 (default): :data:`GPU_BATCH` when the first provider is a
        GPU, :data:`CPU_BATCH` on the CPU (one face per call keeps its
        activations in cache: faster per face there than a batch).
    :param threads: onnxruntime intra-op threads (0: its default).
    :param providers: ``auto`` (CUDA when available, else CPU) or a comma
        list such as ``cuda,cpu``.
    :param rewrite: with the ``onnx`` package installed, rewrite the graph at
        load time for speed, computing the same values: a fixed batch of 1
        made symbolic, weights held among the graph inputs made constants,
        PRelu as elementwise Mul/Max (checked against the file's outputs;
        used only if equal).
    """

    model: str = ""
    input_size: tuple[int, int] | None = None
    color: Literal["rgb", "bgr"] | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    layout: Literal["nchw", "nhwc"] | None = None
    alignment: str | None = None
    # "none" is a value here, so unset is spelled "auto" (the option parser reads "none" as None)
    flip: Literal["auto", "none", "sum", "concat"] = "auto"
    batch_size: int = 0
    threads: int = 0
    providers: str = "auto"
    rewrite: bool = True

    def __post_init__(self) -> None:
        if self.model and not Path(self.model).expanduser().is_file():  # knowable before any work
            raise ValueError(
                f"onnx.model={_show(self.model)}: no such file; pass the path of a .onnx face-embedding graph"
            )
        if self.input_size is not None:
            size = tuple(self.input_size)
            if len(size) == 1:
                size = (size[0], size[0])
            if len(size) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) and 8 <= v <= _MAX_SIDE for v in size
            ):
                raise ValueError(
                    f"onnx.input_size={_show(self.input_size)}: expected height,width with each side "
                    f"in [8, {_MAX_SIDE}] (or leave it unset to read it from the graph)"
                )
            object.__setattr__(self, "input_size", size)
        if self.color not in (None, "rgb", "bgr"):
            raise ValueError(f"onnx.color={_show(self.color)}: expected rgb or bgr")
        if self.layout not in (None, "nchw", "nhwc"):
            raise ValueError(f"onnx.layout={_show(self.layout)}: expected nchw or nhwc")
        if self.scale is not None and not (
            isinstance(self.scale, (int, float)) and not isinstance(self.scale, bool) and 0 < float(self.scale) < 1e6
        ):
            raise ValueError(f"onnx.scale={_show(self.scale)}: expected a number > 0")
        for key in ("mean", "std"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, _channels(getattr(self, key), f"onnx.{key}", positive=key == "std"))
        if self.alignment is not None and self.alignment not in TEMPLATES:
            raise ValueError(
                f"onnx.alignment={_show(self.alignment)}: expected one of {', '.join(sorted(TEMPLATES))}"
            )
        _check_runtime(self, "onnx", allow_auto_flip=True)

    def unset(self) -> tuple[str, ...]:
        """The preprocessing options left to the model's metadata or :data:`ONNX_DEFAULTS`."""
        return tuple(k for k in ONNX_DEFAULTS if getattr(self, k) is None or (k == "flip" and self.flip == "auto"))

    def resolved(self) -> "OnnxOptions":
        """These options with every unset one at its :data:`ONNX_DEFAULTS` value."""
        return dataclasses.replace(self, **{k: ONNX_DEFAULTS[k] for k in self.unset()})


#: SFace's preprocessing, fixed: the graph subtracts 127.5 and multiplies by
#: 1/128 itself, so it is fed raw 0..255 values.  OpenCV's
#: ``FaceRecognizerSF.feature`` builds its blob with ``swapRB=true`` from a
#: BGR crop, i.e. the graph receives RGB (checked by the tests against cv2).
SFACE_PREPROCESSING: Mapping[str, Any] = {
    "input_size": (112, 112),
    "color": "rgb",
    "scale": 1.0,
    "mean": (0.0, 0.0, 0.0),
    "std": (1.0, 1.0, 1.0),
    "layout": "nchw",
    "alignment": "arcface_112",
}

SFACE_WEIGHTS = WeightsSpec(
    filename="face_recognition_sface_2021dec.onnx",
    sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
    env="FACEBENCH_SFACE",
    data_path="weights/sface/face_recognition_sface_2021dec.onnx",
    license="Apache-2.0",
    source="OpenCV Zoo models/face_recognition_sface (Zhong et al. 2021)",
)


@dataclass(frozen=True)
class SfaceOptions:
    """Options of ``sface``: runtime only; the preprocessing is fixed (:data:`SFACE_PREPROCESSING`).

    :param weights: path of ``face_recognition_sface_2021dec.onnx`` (overrides the search).
    :param flip: flip fusion: ``none`` (OpenCV Zoo's evaluation), ``sum`` or ``concat``.
    :param batch_size: images per onnxruntime call (0: as ``onnx``'s default).
    :param threads: onnxruntime intra-op threads (0: its default).
    :param providers: ``auto`` (CUDA when available, else CPU) or e.g. ``cpu``.
    :param rewrite: rewrite the published graph at load time (needs the
        ``onnx`` package): its fixed batch of 1 made symbolic, its weights
        constants, PRelu as elementwise ops (same values; see ``onnx``).
        ``false``: the file as published, one image per call.
    """

    weights: str = ""
    flip: Literal["none", "sum", "concat"] = "none"
    batch_size: int = 0
    threads: int = 0
    providers: str = "auto"
    rewrite: bool = True

    def __post_init__(self) -> None:
        _check_runtime(self, "sface")
