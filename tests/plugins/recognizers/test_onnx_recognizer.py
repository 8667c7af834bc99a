"""The ``onnx`` recognizer on small graphs whose output is known in numpy.

Each graph computes ``flatten(x) @ W`` (a Gemm), so the embedding of a crop is
the stated preprocessing followed by one matrix product, and every option
(colour order, scale/mean/std, layout, input size, flip fusion, batching) can
be checked against an independent numpy reference.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from harness.errors import ConfigError, DataError  # noqa: E402
from harness.specs import OptionError  # noqa: E402

H, W, D = 8, 10, 16


def _graph(path, *, layout="nchw", batch=None, hw=(H, W), weights_as_inputs=False, reshape_batch1=False,
           seed=0):
    """Write ``flatten(x) @ Wm`` as an ONNX file; returns Wm (C*H*W, D)."""
    h, w = hw
    dims = [batch or "N", 3, h or "H", w or "W"] if layout == "nchw" else [batch or "N", h or "H", w or "W", 3]
    wm = np.random.default_rng(seed).normal(size=(3 * H * W, D)).astype(np.float32)
    init = [numpy_helper.from_array(wm, "Wm")]
    if reshape_batch1:  # a batch of 1 baked into a Reshape: cannot be batched
        init.append(numpy_helper.from_array(np.array([1, -1], np.int64), "shape"))
        first = helper.make_node("Reshape", ["x", "shape"], ["flat"])
    else:
        first = helper.make_node("Flatten", ["x"], ["flat"], axis=1)
    nodes = [first, helper.make_node("Gemm", ["flat", "Wm"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)]
    if weights_as_inputs:
        inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in init]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch or "N", D])
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, [out], init),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return wm


def _crops(n, seed=1, hw=(H, W)):
    return list(np.random.default_rng(seed).integers(0, 256, size=(n, *hw, 3), dtype=np.uint8))


def _reference(crops, wm, *, color="rgb", scale=1.0, mean=(127.5,) * 3, std=(127.5,) * 3, layout="nchw"):
    """The documented pipeline written out channel by channel."""
    rows = []
    for crop in crops:
        rgb = crop.astype(np.float64)
        order = [0, 1, 2] if color == "rgb" else [2, 1, 0]
        planes = [(rgb[:, :, src] * scale - mean[k]) / std[k] for k, src in enumerate(order)]
        x = np.stack(planes, axis=0 if layout == "nchw" else 2)
        rows.append(x.reshape(-1) @ wm.astype(np.float64))
    return np.array(rows)


@pytest.fixture(scope="module")
def registry():
    from harness.registry import Registry

    return Registry()


def _build(registry, path, **opts):
    values = {"model": str(path), "threads": "1", **{k: str(v) for k, v in opts.items()}}
    return registry.build("recognizer", "onnx", values)


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"color": "bgr"},
        {"scale": 0.00392156862745098, "mean": "0.485,0.456,0.406", "std": "0.229,0.224,0.225"},
        {"mean": "0", "std": "1", "color": "bgr"},
        {"layout": "nhwc", "mean": "120,110,100", "std": "60"},
    ],
    ids=["insightface-default", "bgr", "imagenet", "raw-bgr", "nhwc"],
)
def test_preprocessing_matches_reference(registry, tmp_path, opts):
    wm = _graph(tmp_path / "m.onnx", layout=opts.get("layout", "nchw"))
    rec = _build(registry, tmp_path / "m.onnx", **opts)
    crops = _crops(5)
    kw = {"color": opts.get("color", "rgb"), "scale": float(opts.get("scale", 1.0)),
          "layout": opts.get("layout", "nchw")}
    for key in ("mean", "std"):
        if key in opts:
            vals = [float(v) for v in str(opts[key]).split(",")]
            kw[key] = vals * 3 if len(vals) == 1 else vals
    np.testing.assert_allclose(rec.embed(crops), _reference(crops, wm, **kw), rtol=1e-4, atol=1e-3)


def test_input_size_is_read_from_the_graph_and_other_sizes_are_resized(registry, tmp_path):
    wm = _graph(tmp_path / "m.onnx")
    rec = _build(registry, tmp_path / "m.onnx")
    assert rec.input_size == (H, W) and rec.embedding_size == D
    big = _crops(2, hw=(2 * H, 2 * W))
    from harness.tasks._faces import resize_crop

    np.testing.assert_allclose(rec.embed(big), _reference([resize_crop(c, (H, W)) for c in big], wm),
                               rtol=1e-4, atol=1e-3)


def test_dynamic_height_width_needs_input_size(registry, tmp_path):
    _graph(tmp_path / "m.onnx", hw=(None, None))
    with pytest.raises(ConfigError, match=r"onnx\.input_size=H,W"):
        _build(registry, tmp_path / "m.onnx")
    assert _build(registry, tmp_path / "m.onnx", input_size=f"{H},{W}").input_size == (H, W)


def test_input_size_contradicting_the_graph_is_an_error(registry, tmp_path):
    _graph(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match=r"onnx\.input_size=12,12 but the graph takes 8x10"):
        _build(registry, tmp_path / "m.onnx", input_size="12,12")


def test_wrong_layout_names_the_other_one(registry, tmp_path):
    _graph(tmp_path / "m.onnx", layout="nhwc")
    with pytest.raises(ConfigError, match=r"layout=nhwc"):
        _build(registry, tmp_path / "m.onnx")


@pytest.mark.parametrize("flip", ["none", "sum", "concat"])
def test_flip_fusion(registry, tmp_path, flip):
    wm = _graph(tmp_path / "m.onnx")
    rec = _build(registry, tmp_path / "m.onnx", flip=flip)
    crops = _crops(3)
    plain = _reference(crops, wm)
    mirrored = _reference([c[:, ::-1] for c in crops], wm)
    expected = {"none": plain, "sum": plain + mirrored, "concat": np.concatenate([plain, mirrored], 1)}[flip]
    got = rec.embed(crops)
    assert rec.embedding_size == got.shape[1] == expected.shape[1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_fixed_batch_one_is_made_symbolic_and_weights_constant(registry, tmp_path):
    from facebench_plugins.recognizers.onnx import rewrite_for_batching

    path = tmp_path / "b1.onnx"
    wm = _graph(path, batch=1, weights_as_inputs=True)
    new = onnx.load_from_string(rewrite_for_batching(path.read_bytes()))
    assert [i.name for i in new.graph.input] == ["x"]
    assert new.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    rec = _build(registry, path, batch_size=4)
    assert rec.batching.startswith("dynamic (fixed batch 1 made symbolic")
    crops = _crops(7)
    np.testing.assert_allclose(rec.embed(crops), _reference(crops, wm), rtol=1e-4, atol=1e-3)


def test_fixed_batch_one_without_rewrite_is_fed_one_at_a_time_and_says_so_once(registry, tmp_path, caplog):
    path = tmp_path / "b1.onnx"
    wm = _graph(path, batch=1)
    with caplog.at_level(logging.WARNING):
        rec = _build(registry, path, rewrite="false")
        crops = _crops(5)
        got = rec.embed(crops)
        rec.embed(crops)
    msgs = [r.getMessage() for r in caplog.records if "fixed batch of 1" in r.getMessage()]
    assert len(msgs) == 1 and "one image at a time" in msgs[0]
    assert rec.batching == "one image per call (the graph has a fixed batch of 1)"
    np.testing.assert_allclose(got, _reference(crops, wm), rtol=1e-4, atol=1e-3)


def test_unbatchable_fixed_batch_one_falls_back_to_single_calls(registry, tmp_path):
    path = tmp_path / "reshape1.onnx"
    wm = _graph(path, batch=1, reshape_batch1=True)
    rec = _build(registry, path)
    assert rec.batching.startswith("one image per call")
    crops = _crops(4)
    np.testing.assert_allclose(rec.embed(crops), _reference(crops, wm), rtol=1e-4, atol=1e-3)


def test_fixed_batch_above_one_pads_the_last_chunk(registry, tmp_path):
    path = tmp_path / "b4.onnx"
    wm = _graph(path, batch=4)
    rec = _build(registry, path)
    assert rec.batching == "fixed batch of 4 (last chunk padded)"
    crops = _crops(6)
    np.testing.assert_allclose(rec.embed(crops), _reference(crops, wm), rtol=1e-4, atol=1e-3)


def test_describe_states_every_preprocessing_choice(registry, tmp_path):
    from harness.weights import sha256_file

    path = tmp_path / "m.onnx"
    _graph(path)
    d = _build(registry, path, color="bgr", flip="sum", mean="1,2,3", std="4").describe()
    assert d["sha256"] == sha256_file(path)
    assert (d["color"], d["flip"], d["mean"], d["std"], d["layout"]) == ("bgr", "sum", [1, 2, 3], [4, 4, 4], "nchw")
    assert d["input_size"] == [H, W] and d["alignment"] == "arcface_112" and d["scale"] == 1.0
    assert d["providers"] == ["CPUExecutionProvider"] or "CUDAExecutionProvider" in d["providers"]
    assert {"batch_size", "batching", "threads", "embedding_size", "onnxruntime", "precision"} <= set(d)
    spec_opts = registry.get("recognizer", "onnx").describe()["options"]
    assert {"input_size", "color", "scale", "mean", "std", "layout", "alignment", "flip", "batch_size",
            "threads", "providers"} <= set(spec_opts)


def test_missing_model_option_names_it(registry):
    with pytest.raises(ConfigError, match=r"-o onnx\.model=PATH") as info:
        registry.build("recognizer", "onnx", {})
    assert "\n" not in str(info.value)


def test_model_path_that_does_not_exist(registry, tmp_path):
    with pytest.raises(ConfigError, match=r"onnx\.model=.*no such file"):
        registry.build("recognizer", "onnx", {"model": str(tmp_path / "nope.onnx")})


def test_a_file_that_is_not_onnx_is_one_line(registry, tmp_path):
    bad = tmp_path / "weights.onnx"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a graph" * 10)
    with pytest.raises(DataError, match=r"onnx\.model=.*not a loadable ONNX model") as info:
        registry.build("recognizer", "onnx", {"model": str(bad)})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("color", "grey", "expected one of rgb, bgr"),
        ("mean", "1,2", "one number or three"),
        ("std", "0", "must be > 0"),
        ("layout", "chw", "expected one of nchw, nhwc"),
        ("alignment", "dlib_chip", "arcface_112"),
        ("batch_size", "-1", r"batch_size=-1"),
        ("threads", "99999", r"threads=99999"),
        ("providers", "tpu", "unknown provider 'tpu'"),
        ("input_size", "100000,5", "each side in"),
        ("flip", "both", "none, sum, concat"),
    ],
)
def test_bad_options_are_option_errors(registry, key, value, match):
    with pytest.raises(OptionError, match=match):
        registry.get("recognizer", "onnx").make_options({key: value})


def test_unavailable_provider_is_an_error(registry, tmp_path):
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("TensorRT is available here")
    _graph(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="TensorrtExecutionProvider not available"):
        _build(registry, tmp_path / "m.onnx", providers="tensorrt")


def _with_metadata(path, **props):
    model = onnx.load(str(path))
    for key, value in {"version": "test", **props}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"facebench.{key}", str(value)
    onnx.save(model, str(path))


def test_unset_options_come_from_the_model_metadata(registry, tmp_path):
    wm = _graph(tmp_path / "m.onnx")
    _with_metadata(tmp_path / "m.onnx", flip="concat", std="128,128,128", color="bgr", mean="127.5,127.5,127.5")
    rec = _build(registry, tmp_path / "m.onnx")
    assert rec.flip == "concat" and rec.options.color == "bgr" and rec.options.std == (128.0,) * 3
    assert set(rec.describe()["from_model_metadata"]) == {"flip", "std", "color"}  # mean: the default anyway
    crops = _crops(2)
    kw = {"color": "bgr", "std": (128.0,) * 3}
    expected = np.concatenate([_reference(crops, wm, **kw), _reference([c[:, ::-1] for c in crops], wm, **kw)], 1)
    np.testing.assert_allclose(rec.embed(crops), expected, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("given", [{"flip": "none"}, {"std": "127.5"}, {"color": "rgb"},
                                   {"flip": "none", "std": "127.5", "color": "rgb"}],
                         ids=["flip", "std", "color", "all"])
def test_an_option_given_equal_to_its_default_beats_the_metadata(registry, tmp_path, given):
    """The defect of issue 15: a value equal to the default used to be taken for 'unset'."""
    wm = _graph(tmp_path / "m.onnx")
    meta = {"flip": "concat", "std": "128,128,128", "color": "bgr"}
    _with_metadata(tmp_path / "m.onnx", **meta)
    rec = _build(registry, tmp_path / "m.onnx", **given)
    want = {"flip": given.get("flip", "concat"), "color": given.get("color", "bgr"),
            "std": (127.5,) * 3 if "std" in given else (128.0,) * 3}
    assert (rec.options.flip, rec.options.color, rec.options.std) == (want["flip"], want["color"], want["std"])
    assert not set(given) & set(rec.describe()["from_model_metadata"])
    crops = _crops(2)
    kw = {"color": want["color"], "std": want["std"]}
    plain = _reference(crops, wm, **kw)
    expected = plain if want["flip"] == "none" else np.concatenate(
        [plain, _reference([c[:, ::-1] for c in crops], wm, **kw)], 1)
    np.testing.assert_allclose(rec.embed(crops), expected, rtol=1e-4, atol=1e-3)


def test_without_metadata_unset_options_take_the_stated_defaults(registry, tmp_path):
    from facebench_plugins.recognizers.options import ONNX_DEFAULTS

    _graph(tmp_path / "m.onnx")
    rec = _build(registry, tmp_path / "m.onnx")
    assert {k: getattr(rec.options, k) for k in ONNX_DEFAULTS} == dict(ONNX_DEFAULTS)
    assert rec.flip is None and rec.describe()["from_model_metadata"] == []
    spec = registry.get("recognizer", "onnx")
    assert spec.make_options({}).unset() == tuple(ONNX_DEFAULTS)
    assert spec.make_options({"flip": "none", "mean": "127.5"}).unset() == tuple(
        k for k in ONNX_DEFAULTS if k not in ("flip", "mean"))


def _prelu_graph(path, slopes, *, batch=None):
    """``PRelu(flatten(x) @ Wm, slope)`` with a per-output slope: PRelu on both signs."""
    _graph(path, batch=batch)
    model = onnx.load(str(path))
    g = model.graph
    g.node[-1].output[0] = "g"
    g.node.append(helper.make_node("PRelu", ["g", "slope"], ["y"]))
    g.initializer.append(numpy_helper.from_array(np.asarray(slopes, np.float32).reshape(1, D), "slope"))
    onnx.save(model, str(path))


@pytest.mark.parametrize("slopes", [np.linspace(0, 1, D), np.linspace(-0.8, 1.2, D)],
                         ids=["slopes-in-0-1", "negative-and-above-1"])
def test_prelu_is_rewritten_to_the_same_floats(registry, tmp_path, slopes):
    from facebench_plugins.recognizers.onnx import rewrite_graph

    path = tmp_path / "p.onnx"
    _prelu_graph(path, slopes)
    data, changes = rewrite_graph(path.read_bytes())
    assert changes == ("1 PRelu as elementwise Mul/Max (same values)",)
    ops = [n.op_type for n in onnx.load_from_string(data).graph.node]
    assert "PRelu" not in ops and (("Max" in ops) == (slopes.min() >= 0 and slopes.max() <= 1))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    before = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).normal(size=(64, 3, H, W)).astype(np.float32)
    x[0] = 0.0  # exact zeros through both branches
    a, b = before.run(None, {"x": x})[0], after.run(None, {"x": x})[0]
    assert (a < 0).any() and (a > 0).any()
    np.testing.assert_array_equal(a, b)  # bit for bit, not merely close
    rec = _build(registry, path)
    assert rec.describe()["rewritten_at_load"] == list(changes)
    plain = _build(registry, path, rewrite="false")
    assert plain.describe()["rewritten_at_load"] == []
    crops = _crops(5)
    np.testing.assert_array_equal(rec.embed(crops), plain.embed(crops))


def test_a_batch_baked_into_the_graph_still_gets_the_prelu_rewrite(registry, tmp_path):
    path = tmp_path / "b1.onnx"
    _graph(path, batch=1, reshape_batch1=True)
    model = onnx.load(str(path))
    model.graph.node[-1].output[0] = "g"
    model.graph.node.append(helper.make_node("PRelu", ["g", "slope"], ["y"]))
    model.graph.initializer.append(numpy_helper.from_array(np.full((1, D), 0.25, np.float32), "slope"))
    onnx.save(model, str(path))
    rec = _build(registry, path)
    assert rec.batching.startswith("one image per call")  # the symbolic batch changed the outputs: not used
    assert rec.describe()["rewritten_at_load"] == ["1 PRelu as elementwise Mul/Max (same values)"]
