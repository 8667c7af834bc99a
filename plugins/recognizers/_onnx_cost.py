"""Size of an ONNX graph for one image: parameters and multiply-accumulates (MACs).

Counted from the graph alone, never run: the first input dimension is fixed
to 1 and every tensor's shape inferred with ``onnx.shape_inference``; then

* Conv: ``N x Cout x Ho x Wo x (Cin / groups) x kh x kw`` MACs,
* Gemm / MatMul: ``M x N x K`` (times any leading batch dimensions),

the convention of facebench's torch profile (``plugins/backbones/_profile``)
and of the papers (normalisation, activations, pooling and additions are not
counted).  Parameters are the floating-point initializer elements (shape
tensors are not), counting a tensor that ``Identity`` nodes fan out to
several layers once per use, as the torch module it was exported from holds
it.  Constant-node tensors give shapes (a layer's weight held in a Constant
is counted in MACs, not in params).  FLOPs = 2 x MACs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harness.errors import DataError

__all__ = ["graph_compute"]

#: TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16: the initializer types that hold weights
_FLOAT_TYPES = (1, 10, 11, 16)

#: what :func:`graph_compute` counted, for the run's model card
METHOD = ("ONNX graph, shapes from onnx.shape_inference at batch 1: Conv + Gemm/MatMul "
          "multiply-accumulates, 2 FLOP each; params = floating-point initializer elements")


def _shapes(model, hw: tuple[int, int] | None, layout: str
            ) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]], object]:
    """(initializer shapes, every known tensor shape, the inferred graph) at batch 1 (and ``hw``)."""
    from onnx import shape_inference

    g = model.graph
    inits = {i.name: tuple(i.dims) for i in g.initializer}
    for inp in g.input:
        dims = inp.type.tensor_type.shape.dim
        if inp.name not in inits and len(dims):
            dims[0].Clear()
            dims[0].dim_value = 1
            if hw is not None and len(dims) == 4:  # a graph with dynamic height/width: the size fed
                for axis, value in zip((2, 3) if layout == "nchw" else (1, 2), hw):
                    dims[axis].Clear()
                    dims[axis].dim_value = int(value)
    del g.value_info[:]
    for out in g.output:
        dims = out.type.tensor_type.shape.dim
        if len(dims):
            dims[0].Clear()
    inferred = shape_inference.infer_shapes(model).graph
    shapes = dict(inits)
    for v in (*inferred.value_info, *inferred.input, *inferred.output):
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = tuple(d.dim_value for d in dims)
    for node in inferred.node:  # Constant nodes hold weights too (the TorchScript exporter emits some)
        if node.op_type == "Constant" and node.attribute and node.attribute[0].t.dims:
            shapes[node.output[0]] = tuple(node.attribute[0].t.dims)
    return inits, shapes, inferred


def graph_compute(model: str | os.PathLike | bytes, input_hw: tuple[int, int] | None = None,
                  layout: str = "nchw") -> dict[str, int]:
    """``{"params": ..., "macs": ...}`` of one image through the graph (a path or serialized bytes).

    :param input_hw: (height, width) fed, for a graph whose height/width are dynamic.
    :param layout: ``nchw`` or ``nhwc``: where ``input_hw`` goes.

    :raises DataError: the graph cannot be parsed, or a Conv/Gemm/MatMul
        shape cannot be inferred (e.g. a dynamic height and width).
    """
    import onnx

    try:
        m = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(os.fspath(model))
        inits, shapes, inferred = _shapes(m, input_hw, layout)
    except Exception as exc:  # noqa: BLE001 - onnx raises several types; one line for the user
        where = "the graph" if isinstance(model, bytes) else Path(model).name
        raise DataError(f"{where}: cannot count its compute ({str(exc).splitlines()[0][:160]})") from None
    macs = 0
    for node in inferred.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        try:
            if node.op_type == "Conv":
                w, y = shapes[node.input[1]], shapes[node.output[0]]
                macs += int(np.prod(y)) * int(np.prod(w[1:]))
            else:
                a, y = shapes[node.input[0]], shapes[node.output[0]]
                trans_a = any(at.name == "transA" and at.i for at in node.attribute)
                macs += int(np.prod(y)) * int(a[-2] if trans_a else a[-1])
        except KeyError as exc:
            raise DataError(f"{node.op_type} node {node.name or node.output[0]!r}: shape of {exc} unknown "
                            "(dynamic height/width?); cannot count its MACs") from None
    weights = {i.name for i in m.graph.initializer if i.data_type in _FLOAT_TYPES}  # not shape tensors
    # the exporter stores equal tensors once and fans them out through Identity nodes: count each use
    shared = [n.output[0] for n in inferred.node if n.op_type == "Identity" and n.input[0] in weights]
    params = sum(int(np.prod(inits[w])) for w in weights) + sum(int(np.prod(shapes[o])) for o in shared)
    return {"params": int(params), "macs": int(macs)}
