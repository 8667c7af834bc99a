"""Face-embedding ONNX graphs through onnxruntime: the ``onnx`` and ``sface`` recognizers.

:class:`OnnxRecognizer` takes aligned RGB uint8 crops (of its ``alignment``
template; other sizes are resized to ``input_size``), applies the stated
preprocessing (see :mod:`facebench_plugins.recognizers.options`) and runs
the graph in batches.

Batching follows the graph's first input dimension:

* symbolic: ``batch_size`` images per call (by default 1 on the CPU, 64
  on a GPU provider);
* fixed at 1: with the ``onnx`` package (and ``rewrite=true``) the batch
  dimension is made symbolic at load time, kept only if a batch of two
  gives the outputs of two single calls; else one image per call, said once;
* fixed at k > 1: chunks of k, the last padded.

Whatever the batch, with ``rewrite=true`` (and the ``onnx`` package) the
graph is rewritten at load time for speed (:func:`rewrite_graph`): weights
the graph lists among its inputs become constants (onnxruntime cannot fold
BatchNorm into the convolutions otherwise) and PRelu becomes elementwise ops
giving the same floats (onnxruntime's PRelu kernel is slow).  The rewritten
graph is used only when it reproduces the file's outputs on a probe batch;
``describe()["rewritten_at_load"]`` says what changed.

A model written by ``harness export`` states its preprocessing in
``facebench.*`` metadata; :func:`with_model_metadata` applies it to every
option left unset (an option given always wins, whatever its value), and
``describe()`` lists those the metadata changed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from harness.errors import ConfigError, DataError
from harness.tasks._faces import resize_crop
from harness.weights import locate_weights, sha256_file

from facebench_plugins.recognizers.options import (
    CPU_BATCH,
    GPU_BATCH,
    ONNX_DEFAULTS,
    SFACE_PREPROCESSING,
    SFACE_WEIGHTS,
    OnnxOptions,
    SfaceOptions,
    provider_names,
)

__all__ = ["OnnxRecognizer", "build", "build_sface", "rewrite_for_batching", "with_model_metadata"]

log = logging.getLogger(__name__)

#: the rewritten graph must reproduce single-image outputs to this (max abs, relative to scale)
_REWRITE_TOL = 1e-4


def _close(got: np.ndarray, ref: np.ndarray) -> bool:
    """``got`` equals ``ref`` to :data:`_REWRITE_TOL` (relative to the outputs' scale)."""
    return got.shape == ref.shape and bool(np.allclose(
        got, ref, rtol=_REWRITE_TOL, atol=_REWRITE_TOL * max(1.0, float(np.abs(ref).max()))))


def _dim(d: Any) -> int | None:
    """A fixed positive dimension, or None for a symbolic / unknown one."""
    return d if isinstance(d, int) and d > 0 else None


def rewrite_for_batching(model: bytes) -> bytes | None:
    """The graph with a symbolic batch dimension and its weights as constants.

    Drops the initializers from the graph inputs (ONNX IR >= 4 treats them as
    constants then), sets a fixed first dimension of every graph input and
    output to the symbol ``batch`` and clears stored intermediate shapes.

    :returns: the new serialized model, or ``None`` when the ``onnx`` package
        is missing or the model cannot be parsed or has IR < 4.
    """
    out = rewrite_graph(model, batch=True, prelu=False)
    return None if out is None else out[0]


def rewrite_graph(model: bytes, *, batch: bool = True, prelu: bool = True) -> tuple[bytes, tuple[str, ...]] | None:
    """The graph made fast for onnxruntime, computing the same values.

    * weights listed among the graph inputs become constants (onnxruntime can
      then fold BatchNorm into the convolutions) and, with ``batch``, a fixed
      first dimension of the inputs/outputs becomes the symbol ``batch``;
    * with ``prelu``, each PRelu whose slope is a constant is written with
      elementwise ops that give the same floats (:func:`_prelu_nodes`):
      onnxruntime's PRelu kernel is about 10x slower than a Mul or a Max.

    :returns: (serialized model, what was changed), or ``None`` when the
        ``onnx`` package is missing, the model cannot be parsed, has IR < 4,
        or nothing changed.
    """
    try:
        import onnx
    except ImportError:
        return None
    try:
        m = onnx.load_from_string(model)
    except Exception:  # noqa: BLE001 - not parseable: the caller reports it via onnxruntime
        return None
    if m.ir_version < 4:
        return None
    g = m.graph
    changed = []
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) < len(g.input):
        changed.append(f"{len(g.input) - len(inputs)} weights moved from the graph inputs to constants")
        del g.input[:]
        g.input.extend(inputs)
    fixed = [v for v in (*g.input, *g.output) if batch and len(v.type.tensor_type.shape.dim)
             and v.type.tensor_type.shape.dim[0].HasField("dim_value")]
    for value in fixed:
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_param = "batch"
    if fixed:
        changed.append("fixed batch made symbolic")
    n = _replace_prelu(g) if prelu else 0
    if n:
        changed.append(f"{n} PRelu as elementwise Mul/Max (same values)")
    if not changed:
        return None
    del g.value_info[:]
    return m.SerializeToString(), tuple(changed)


def _prelu_nodes(x: str, slope: str, y: str, base: str, values: np.ndarray) -> list:
    """Nodes computing ``y = PRelu(x, slope)`` with the same floats.

    Slopes in [0, 1]: ``Max(x, x * slope)`` (for x > 0, x * slope <= x; for
    x < 0, x * slope >= x; rounding is monotone so the float comparison
    agrees).  Otherwise ``Relu(x) + (x - Relu(x)) * slope``: x - Relu(x) is
    exactly min(x, 0), and adding the exact zero of the other branch changes
    nothing.
    """
    from onnx import helper

    if values.size and float(values.min()) >= 0.0 and float(values.max()) <= 1.0:
        return [helper.make_node("Mul", [x, slope], [f"{base}/xs"], name=f"{base}/mul"),
                helper.make_node("Max", [x, f"{base}/xs"], [y], name=f"{base}/max")]
    return [helper.make_node("Relu", [x], [f"{base}/pos"], name=f"{base}/relu"),
            helper.make_node("Sub", [x, f"{base}/pos"], [f"{base}/neg"], name=f"{base}/sub"),
            helper.make_node("Mul", [f"{base}/neg", slope], [f"{base}/negs"], name=f"{base}/mul"),
            helper.make_node("Add", [f"{base}/pos", f"{base}/negs"], [y], name=f"{base}/add")]


def _replace_prelu(g: Any) -> int:
    """Replace, in place, every PRelu of graph ``g`` whose slope is an initializer; returns how many."""
    from onnx import numpy_helper

    inits = {i.name: i for i in g.initializer}
    nodes, n = [], 0
    for node in g.node:
        if node.op_type == "PRelu" and len(node.input) == 2 and node.input[1] in inits:
            values = numpy_helper.to_array(inits[node.input[1]])
            nodes += _prelu_nodes(node.input[0], node.input[1], node.output[0],
                                  f"facebench_prelu_{n}", values)
            n += 1
        else:
            nodes.append(node)
    if n:
        del g.node[:]
        g.node.extend(nodes)
    return n


class OnnxRecognizer:
    """An ONNX face-embedding graph with stated preprocessing; see the module docstring."""

    distance = "cosine"
    #: options whose value came from the model's facebench metadata (see :func:`with_model_metadata`)
    from_metadata: tuple[str, ...] = ()

    def __init__(self, options: OnnxOptions, *, model_path: Path, name: str = "onnx") -> None:
        options = options.resolved()
        self.options = options
        self.name = name
        #: the alignment template ``embed`` expects its crops in
        self.alignment = options.alignment
        self.flip = None if options.flip == "none" else options.flip
        self.model_path = Path(model_path)
        self.sha256 = sha256_file(self.model_path)
        original = self.model_path.read_bytes()
        self._session = self._open(original)
        #: images per call: the option, or by the provider (``batch_size=0``)
        self.batch_size = options.batch_size or (
            CPU_BATCH if self._session.get_providers()[0] == "CPUExecutionProvider" else GPU_BATCH)
        inp = self._session.get_inputs()
        if len(inp) != 1:
            raise DataError(
                f"{name}: {self.model_path} has {len(inp)} inputs ({', '.join(i.name for i in inp[:4])}); "
                "a face-embedding graph takes one image tensor"
            )
        self._input = inp[0]
        if self._input.type != "tensor(float)":
            raise DataError(f"{name}: {self.model_path} takes {self._input.type}; only float32 input is supported")
        self.input_size = self._resolve_size(self._input.shape)
        self._output = self._session.get_outputs()[0]
        self._fixed_batch = _dim(self._input.shape[0]) if self._input.shape else None
        self.batching = "dynamic"
        #: what the load-time rewrite changed (:func:`rewrite_graph`), empty when the file runs as it is
        self.rewritten: tuple[str, ...] = ()
        if options.rewrite:
            self._try_rewrite(original)
        if self._fixed_batch is not None:
            self._describe_fixed_batch()
        self.embedding_size = int(self.embed_raw(self._probe(1)).shape[1]) * (2 if self.flip == "concat" else 1)

    # ----------------------------------------------------------------- loading
    def _open(self, model: bytes) -> "ort.InferenceSession":
        o = self.options
        so = ort.SessionOptions()
        if o.threads:
            so.intra_op_num_threads = o.threads
        so.log_severity_level = 3  # errors only: the rewrite handles the initializer warnings
        available = ort.get_available_providers()
        wanted = provider_names(o.providers)
        if not wanted:
            wanted = tuple(p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available)
        missing = [p for p in wanted if p not in available]
        if missing:
            raise ConfigError(
                f"{self.name}.providers={o.providers}: {', '.join(missing)} not available in this "
                f"onnxruntime (available: {', '.join(available)}); use providers=auto or cpu"
            )
        try:
            return ort.InferenceSession(model, so, providers=list(wanted))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise DataError(
                f"{self._option_name()}={self.model_path}: not a loadable ONNX model ({first}); "
                "pass the path of a .onnx face-embedding graph"
            ) from None

    def _option_name(self) -> str:
        return f"{self.name}.model" if self.name == "onnx" else f"{self.name}.weights"

    def _resolve_size(self, shape: list) -> tuple[int, int]:
        o = self.options
        if len(shape) != 4:
            raise DataError(f"{self.name}: {self.model_path} input has shape {shape}; expected 4 dimensions")
        c, h, w = (shape[1], shape[2], shape[3]) if o.layout == "nchw" else (shape[3], shape[1], shape[2])
        if _dim(c) is not None and c != 3:
            other = "nhwc" if o.layout == "nchw" else "nchw"
            raise ConfigError(
                f"{self.name}.layout={o.layout}: the graph's input {shape} has {c} channels there; "
                f"try -o {self.name}.layout={other}"
            )
        graph = (_dim(h), _dim(w))
        if o.input_size is not None:
            if None not in graph and tuple(graph) != tuple(o.input_size):
                raise ConfigError(
                    f"{self.name}.input_size={o.input_size[0]},{o.input_size[1]} but the graph takes "
                    f"{graph[0]}x{graph[1]}; leave input_size unset to read it from the graph"
                )
            return tuple(o.input_size)  # type: ignore[return-value]
        if None in graph:
            raise ConfigError(
                f"{self.name}: the graph's height/width are dynamic ({shape}); set "
                f"-o {self.name}.input_size=H,W (e.g. 112,112)"
            )
        return (int(graph[0]), int(graph[1]))

    def _probe(self, n: int) -> np.ndarray:
        h, w = self.input_size
        return np.random.default_rng(0).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)

    def _reference_outputs(self, x: np.ndarray) -> np.ndarray:
        """Outputs of the graph as loaded: in chunks of its fixed batch, or in one call."""
        k = self._fixed_batch or len(x)
        return np.concatenate([self._run_on(self._session, x[i:i + k]) for i in range(0, len(x), k)])

    def _try_rewrite(self, original: bytes) -> None:
        """Swap in :func:`rewrite_graph`'s graph when it gives the loaded graph's outputs.

        A fixed batch of 1 is made symbolic too; when that changes the outputs
        (a batch baked into a Reshape), the rewrite is tried again without it.
        """
        x = self._tensor(self._probe(max(2, self._fixed_batch or 2)))
        ref = self._reference_outputs(x)
        for batch in dict.fromkeys((self._fixed_batch == 1, False)):
            out = rewrite_graph(original, batch=batch)
            if out is None:
                continue
            try:
                cand = self._open(out[0])
                free = batch or self._fixed_batch is None  # any batch size: check a pair and a single
                step = len(x) if free else self._fixed_batch
                parts = [(x[i:i + step], ref[i:i + step]) for i in range(0, len(x), step)]
                parts += [(x[:1], ref[:1])] if free else []
                same = all(_close(self._run_on(cand, part), want) for part, want in parts)
            except Exception:  # noqa: BLE001 - any failure keeps the graph as loaded
                same = False
            if same:
                self._session, self.rewritten = cand, out[1]
                if batch:
                    self._fixed_batch = None
                    self.batching = "dynamic (fixed batch 1 made symbolic at load; checked equal to single calls)"
                return
            log.info("%s: a load-time rewrite of %s (%s) changed its outputs; not used",
                     self.name, self.model_path.name, "; ".join(out[1]))

    def _describe_fixed_batch(self) -> None:
        if self._fixed_batch == 1:
            self.batching = "one image per call (the graph has a fixed batch of 1)"
            log.warning(
                "%s: %s has a fixed batch of 1: feeding one image at a time%s", self.name, self.model_path.name,
                "" if self.options.rewrite else " (rewrite=false)",
            )
        else:
            self.batching = f"fixed batch of {self._fixed_batch} (last chunk padded)"

    # --------------------------------------------------------------- inference
    def _tensor(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB -> the graph's float32 input."""
        o = self.options
        x = crops[..., ::-1] if o.color == "bgr" else crops
        x = (x.astype(np.float32) * np.float32(o.scale) - np.asarray(o.mean, np.float32)) / np.asarray(
            o.std, np.float32
        )
        if o.layout == "nchw":
            x = x.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _run_on(self, session: "ort.InferenceSession", x: np.ndarray) -> np.ndarray:
        out = session.run([self._output.name], {self._input.name: x})[0]
        return np.asarray(out, np.float32).reshape(len(x), -1)

    def embed_raw(self, crops: np.ndarray) -> np.ndarray:
        """Graph outputs (N, D) of (N, H, W, 3) uint8 RGB crops of ``input_size``, no flip."""
        chunk = self._fixed_batch or self.batch_size
        out = []
        for s in range(0, len(crops), chunk):
            x = self._tensor(crops[s:s + chunk])
            n = len(x)
            if self._fixed_batch and n < chunk:
                x = np.concatenate([x, np.zeros((chunk - n, *x.shape[1:]), np.float32)])
            out.append(self._run_on(self._session, x)[:n])
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings (N, D) float32 of aligned RGB uint8 crops (resized to ``input_size`` if needed)."""
        if len(images) == 0:
            return np.zeros((0, self.embedding_size), np.float32)
        crops = np.stack([resize_crop(_rgb(im, self.name), self.input_size) for im in images])
        if self.flip is None:
            return self.embed_raw(crops)
        both = self.embed_raw(np.concatenate([crops, crops[:, :, ::-1]]))
        a, b = both[: len(crops)], both[len(crops):]
        return a + b if self.flip == "sum" else np.concatenate([a, b], axis=1)

    def describe(self) -> dict[str, Any]:
        """Everything that shapes an embedding, for the run's results."""
        o = self.options
        return {
            "model": str(self.model_path), "sha256": self.sha256,
            "input": {"name": self._input.name, "shape": list(self._input.shape)},
            "output": {"name": self._output.name, "shape": list(self._output.shape)},
            "input_size": list(self.input_size), "alignment": o.alignment, "color": o.color,
            "scale": o.scale, "mean": list(o.mean), "std": list(o.std), "layout": o.layout,
            "flip": o.flip, "embedding_size": self.embedding_size, "batch_size": self.batch_size,
            "batching": self.batching, "rewritten_at_load": list(self.rewritten),
            "threads": o.threads or "onnxruntime default",
            "providers": list(self._session.get_providers()), "precision": "float32",
            "onnxruntime": ort.__version__,
            "from_model_metadata": list(self.from_metadata),
        }

    def compute(self) -> dict[str, Any]:
        """Params and FLOPs of one image through the model file's graph (:mod:`._onnx_cost`)."""
        from facebench_plugins.recognizers._onnx_cost import METHOD, graph_compute

        try:
            size = graph_compute(self.model_path, self.input_size, self.options.layout)
        except ImportError:
            return {"params": None, "flops": None, "reason": "counting an ONNX graph needs the onnx package"}
        except DataError as exc:
            return {"params": None, "flops": None, "reason": str(exc)}
        return {"params": size["params"], "flops": 2 * size["macs"], "method": METHOD}


def _rgb(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{name}: expected (H, W, 3) uint8 RGB crops, got {image.dtype} {image.shape}")
    return image


def build(options: OnnxOptions | None = None) -> OnnxRecognizer:
    """Factory named by the ``onnx`` spec."""
    o = options or OnnxOptions()
    if not o.model:
        raise ConfigError("the onnx recognizer needs a model file: add -o onnx.model=PATH/TO/model.onnx")
    path = Path(o.model).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"onnx.model={o.model[:200]}: no such file; pass the path of a .onnx face-embedding graph"
        )
    o, taken = with_model_metadata(o, path)
    rec = OnnxRecognizer(o, model_path=path)
    rec.from_metadata = taken
    return rec


#: the options ``harness export`` writes into ``metadata_props`` as ``facebench.<name>``
_METADATA_OPTIONS = ("input_size", "color", "scale", "mean", "std", "layout", "alignment", "flip")


def _facebench_props(path: Path) -> dict[str, str]:
    """The model's ``facebench.*`` metadata (empty without the ``onnx`` package or such metadata)."""
    try:
        import onnx
    except ImportError:
        return {}
    try:
        props = {p.key: p.value for p in onnx.load(os.fspath(path), load_external_data=False).metadata_props}
    except Exception:  # noqa: BLE001 - not parseable: OnnxRecognizer reports it via onnxruntime
        return {}
    return props if "facebench.version" in props else {}


def _metadata_value(key: str, raw: str) -> Any:
    if key in ("input_size", "mean", "std"):
        return tuple((int if key == "input_size" else float)(v) for v in raw.split(","))
    return float(raw) if key == "scale" else raw


def with_model_metadata(o: OnnxOptions, path: Path) -> tuple[OnnxOptions, tuple[str, ...]]:
    """``o`` resolved: each unset option from the model's facebench metadata, else its default.

    Unset means ``None`` (``flip``: ``auto``): an option given on the command
    line always wins, also one equal to the default (``-o onnx.flip=none``
    on a model exported with flip concat embeds without flipping).  Graphs
    without facebench metadata get :data:`~facebench_plugins.recognizers.options.ONNX_DEFAULTS`.

    :returns: the resolved options and the names of the options whose value
        the metadata changed from the default.
    :raises DataError: the model's facebench metadata holds an unusable value.
    """
    props = _facebench_props(path)
    unset = set(o.unset()) | ({"input_size"} if o.input_size is None else set())
    changes: dict[str, Any] = {}
    try:
        for key in _METADATA_OPTIONS:
            raw = props.get(f"facebench.{key}")
            if raw is not None and key in unset:
                changes[key] = _metadata_value(key, raw)
        taken = dataclasses.replace(o, **changes)
    except (TypeError, ValueError) as exc:
        raise DataError(f"onnx.model={path}: its facebench metadata is not usable ({exc}); "
                        "re-export it with `harness export` or set the preprocessing options") from None
    defaults = {**ONNX_DEFAULTS, "input_size": None}
    return taken.resolved(), tuple(k for k in changes if getattr(taken, k) != defaults[k])


def build_sface(options: SfaceOptions | None = None) -> OnnxRecognizer:
    """Factory named by the ``sface`` spec: OpenCV Zoo's graph, its preprocessing fixed."""
    s = options or SfaceOptions()
    path = locate_weights(SFACE_WEIGHTS, s.weights or None)
    o = OnnxOptions(
        **SFACE_PREPROCESSING, model=os.fspath(path), flip=s.flip, batch_size=s.batch_size,
        threads=s.threads, providers=s.providers, rewrite=s.rewrite,
    )
    return OnnxRecognizer(o, model_path=path, name="sface")
