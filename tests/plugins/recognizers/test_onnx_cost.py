"""Params and MACs counted from an ONNX graph, against references.

* hand-built graphs whose counts follow from the layer shapes written out in
  the test (plain, strided, grouped and depthwise Conv; Gemm with transA;
  MatMul with leading batch dimensions; a weight fanned out by Identity);
* a network exported by facebench's torch exporter against facebench's torch
  profile (``plugins/backbones/_profile``, forward hooks): equal MACs;
* the recognizers' ``compute()`` (the ``CostReporting`` contract): the ONNX
  graph's count, dlib's stated n/a.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from harness.errors import DataError  # noqa: E402


def _model(nodes, inits, x_dims, y_name="y", ir=8):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)]
    out = helper.make_tensor_value_info(y_name, TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in inits.items()]
    m = helper.make_model(helper.make_graph(nodes, "g", inputs, [out], inits),
                          opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = ir
    return m.SerializeToString()


def _conv_out(size, k, stride, pad):
    return (size + 2 * pad - k) // stride + 1


@pytest.mark.parametrize(
    "cin,cout,k,stride,pad,groups",
    [(3, 8, 3, 1, 1, 1), (3, 8, 3, 2, 1, 1), (8, 16, 1, 1, 0, 1), (8, 8, 3, 1, 1, 8), (8, 12, 3, 2, 0, 4)],
    ids=["3x3", "3x3-stride2", "1x1", "depthwise", "grouped-stride2-nopad"],
)
def test_conv_macs_follow_the_shapes(cin, cout, k, stride, pad, groups):
    from facebench_plugins.recognizers._onnx_cost import graph_compute

    h, w = 17, 12
    node = helper.make_node("Conv", ["x", "W", "B"], ["y"], kernel_shape=[k, k], strides=[stride, stride],
                            pads=[pad] * 4, group=groups)
    data = _model([node], {"W": (cout, cin // groups, k, k), "B": (cout,)}, ["N", cin, h, w])
    ho, wo = _conv_out(h, k, stride, pad), _conv_out(w, k, stride, pad)
    expected_macs = cout * ho * wo * (cin // groups) * k * k
    got = graph_compute(data)
    assert got == {"params": cout * (cin // groups) * k * k + cout, "macs": expected_macs}


def test_gemm_transa_matmul_batch_dims_and_identity_fanout():
    from facebench_plugins.recognizers._onnx_cost import graph_compute

    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),               # (6, 1)
        helper.make_node("Gemm", ["xt", "A"], ["g"], transA=1),                  # (1, 6) @ (6, 5) -> (1, 5)
        helper.make_node("Identity", ["A2"], ["A2b"]),                           # one stored tensor, two uses
        helper.make_node("MatMul", ["g", "A2"], ["m1"]),                         # (1, 5) @ (5, 4)
        helper.make_node("MatMul", ["g", "A2b"], ["m2"]),
        helper.make_node("Add", ["m1", "m2"], ["m"]),
        helper.make_node("Reshape", ["m", "shape"], ["r"]),                      # (1, 2, 2)
        helper.make_node("MatMul", ["r", "B3"], ["y"]),                          # (1, 2, 2) @ (2, 3) -> (1, 2, 3)
    ]
    shape = numpy_helper.from_array(np.array([1, 2, 2], np.int64), "shape")
    data = onnx.load_from_string(_model(nodes, {"A": (6, 5), "A2": (5, 4), "B3": (2, 3)}, ["N", 6]))
    data.graph.initializer.append(shape)
    got = graph_compute(data.SerializeToString())
    assert got["macs"] == 1 * 5 * 6 + 2 * (1 * 4 * 5) + (1 * 2 * 3) * 2
    # the int64 shape tensor is no parameter; the Identity fan-out counts once per use
    assert got["params"] == 6 * 5 + 5 * 4 + 2 * 3 + 5 * 4


def test_dynamic_height_width_needs_the_size_fed():
    from facebench_plugins.recognizers._onnx_cost import graph_compute

    node = helper.make_node("Conv", ["x", "W"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)
    data = _model([node], {"W": (4, 3, 3, 3)}, ["N", 3, "H", "W"])
    with pytest.raises(DataError, match="dynamic height/width"):
        graph_compute(data)
    assert graph_compute(data, (10, 6))["macs"] == 4 * 10 * 6 * 27
    nhwc = _model([helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
                   helper.make_node("Conv", ["t", "W"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)],
                  {"W": (4, 3, 3, 3)}, ["N", "H", "W", 3])
    assert graph_compute(nhwc, (10, 6), "nhwc")["macs"] == 4 * 10 * 6 * 27


def test_not_a_graph_is_one_line():
    from facebench_plugins.recognizers._onnx_cost import graph_compute

    with pytest.raises(DataError, match="cannot count its compute"):
        graph_compute(b"not an onnx file")


def test_exported_torch_network_has_the_torch_profile_macs():
    """The same network counted two independent ways: ONNX nodes vs torch forward hooks."""
    torch = pytest.importorskip("torch")
    from harness.registry import Registry

    from facebench_plugins.backbones._profile import profile
    from facebench_plugins.engines._export import export_onnx
    from facebench_plugins.recognizers._onnx_cost import graph_compute

    torch.manual_seed(0)
    model = Registry().build("backbone", "mobilefacenet").eval()
    size = (112, 112)
    data = export_onnx(model, input_size=size, metadata={"version": "test"})
    prof = profile(model, size)
    got = graph_compute(data)
    assert got["macs"] == prof.macs
    # BatchNorm is folded into the convolutions by the export: fewer stored parameters, none more
    assert 0.97 * prof.params <= got["params"] <= prof.params


def test_onnx_recognizer_reports_its_graph(tmp_path):
    from harness.registry import Registry
    from harness.types import CostReporting

    from tests.plugins.recognizers.test_onnx_recognizer import D, H, W, _graph

    _graph(tmp_path / "m.onnx")
    rec = Registry().build("recognizer", "onnx", {"model": str(tmp_path / "m.onnx"), "threads": "1"})
    assert isinstance(rec, CostReporting)
    c = rec.compute()
    assert c["params"] == 3 * H * W * D and c["flops"] == 2 * 3 * H * W * D and "ONNX graph" in c["method"]


def test_dlib_states_why_it_is_not_counted():
    pytest.importorskip("dlib")
    from harness.types import CostReporting

    from facebench_plugins.recognizers.dlib_resnet import DlibResnetRecognizer

    rec = DlibResnetRecognizer.__new__(DlibResnetRecognizer)  # compute() needs no weights
    assert isinstance(rec, CostReporting)
    c = rec.compute()
    assert c["params"] is None and c["flops"] is None and "dlib" in c["reason"]
