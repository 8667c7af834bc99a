"""``harness export``: the real CASIA MobileFaceNet and a tiny lresnet50 to ONNX, parity on real
LFW crops, the metadata round trip into ``--recognizer onnx``, a dynamic batch, and bad input."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from harness import __version__
from harness.cli import main
from tests.conftest import need_data

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MFN_CKPT = "weights/mobilefacenet/068.ckpt"


def _export(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["export", *args])
    return rc, out.getvalue(), err.getvalue()


def _parity(text: str) -> float:
    m = re.search(r"max \|onnxruntime - torch\| = (\S+)", text)
    assert m, text
    return float(m.group(1))


def _props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _session(path: Path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def registry():
    from harness.registry import get_registry

    return get_registry()


@pytest.fixture(scope="module")
def mfn(tmp_path_factory):
    """The CASIA checkpoint given by path (recognised as the ``casia`` variant by its sha256)."""
    need_data("lfw_home")
    ckpt = need_data(MFN_CKPT)
    out = tmp_path_factory.mktemp("mfn") / "mfn_casia.onnx"
    rc, text, err = _export("mobilefacenet", "--weights", str(ckpt), "--out", str(out))
    assert rc == 0, text + err
    return {"ckpt": ckpt, "out": out, "text": text}


@pytest.fixture(scope="module")
def crops(registry):
    from harness.cli.export import lfw_crops

    need_data("lfw_home")
    return lfw_crops(registry, None, 6, "yunet", "sphereface_112x96", (112, 96))


def test_mobilefacenet_export_passes_parity_and_is_written(mfn):
    assert _parity(mfn["text"]) <= 1e-4
    assert "32 LFW crops" in mfn["text"] and "wrote" in mfn["text"]
    assert mfn["out"].is_file()
    assert not [p for p in mfn["out"].parent.iterdir() if p.name.endswith(".tmp")]


def test_metadata_states_the_preprocessing_and_source(mfn):
    meta = _props(mfn["out"])
    sha = hashlib.sha256(mfn["ckpt"].read_bytes()).hexdigest()
    assert meta["facebench.version"] == __version__ and meta["facebench.backbone"] == "mobilefacenet"
    assert meta["facebench.weights_sha256"] == sha and meta["facebench.weights"].startswith("casia")
    assert (meta["facebench.input_size"], meta["facebench.alignment"], meta["facebench.color"]) == (
        "112,96", "sphereface_112x96", "rgb")
    assert (meta["facebench.mean"], meta["facebench.std"], meta["facebench.scale"]) == (
        "127.5,127.5,127.5", "128.0,128.0,128.0", "1.0")
    flip_size_opset = (meta["facebench.flip"], meta["facebench.embedding_size"], meta["facebench.opset"])
    assert flip_size_opset == ("concat", "128", "17")
    assert "068.ckpt" in meta["facebench.weights"] and "/" not in meta["facebench.options"]
    model = onnx.load(str(mfn["out"]))
    assert model.opset_import[0].version == 17 and model.producer_name == "facebench"


def test_onnx_recognizer_takes_its_defaults_from_the_metadata(registry, mfn):
    rec = registry.build("recognizer", "onnx", {"model": str(mfn["out"])})
    assert rec.input_size == (112, 96) and rec.alignment == "sphereface_112x96" and rec.flip == "concat"
    assert rec.options.std == (128.0, 128.0, 128.0) and rec.embedding_size == 256
    d = rec.describe()
    assert set(d["from_model_metadata"]) == {"input_size", "std", "alignment", "flip"}
    # an option set to something else wins over the metadata
    mine = registry.build("recognizer", "onnx", {"model": str(mfn["out"]), "flip": "sum"})
    assert mine.flip == "sum" and mine.embedding_size == 128 and "flip" not in mine.describe()["from_model_metadata"]


def test_dynamic_batch_one_and_five(mfn):
    s = _session(mfn["out"])
    assert s.get_inputs()[0].shape[0] == "batch"
    x = np.random.default_rng(0).standard_normal((5, 3, 112, 96)).astype(np.float32)
    five = s.run(None, {"input": x})[0]
    one = s.run(None, {"input": x[:1]})[0]
    assert five.shape == (5, 128) and one.shape == (1, 128)
    np.testing.assert_allclose(one[0], five[0], atol=1e-5)


def test_onnx_recognizer_equals_the_torch_backbone_on_real_crops(registry, mfn, crops):
    from harness.tasks.recognition import _effective_backbone

    spec = registry.get("backbone", "mobilefacenet")
    model = registry.build("backbone", "mobilefacenet", {"weights": "casia"})
    eff = _effective_backbone(spec, spec.make_options({"weights": "casia"}))
    import dataclasses

    run_spec = dataclasses.replace(spec, input_size=eff["input_size"], mean=eff["mean"], std=eff["std"])
    ref = registry.build("engine", "torch").embed(model, crops, backbone_spec=run_spec, flip="concat", device="cpu")
    got = registry.build("recognizer", "onnx", {"model": str(mfn["out"]), "threads": 1}).embed(crops)
    assert got.shape == ref.shape == (6, 256)
    assert float(np.abs(got - ref).max()) <= 1e-4


def test_failed_parity_writes_nothing_and_exits_1(tmp_path):
    need_data("lfw_home")
    ckpt = need_data(MFN_CKPT)
    out = tmp_path / "m.onnx"
    rc, text, err = _export("mobilefacenet", "--weights", "casia", "-o", f"mobilefacenet.weights_path={ckpt}",
                            "--out", str(out), "--tolerance", "0", "--parity-images", "4")
    assert rc == 1 and _parity(text) > 0 and "was not written" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ lresnet50
def _ires_name(key: str) -> str:
    """facebench LResNet key -> arcface_torch iresnet key (the inverse of ``iresnet_key``)."""
    top = {"stem.0": "conv1", "stem.1": "bn1", "stem.2": "prelu", "bn": "bn2", "fc": "fc", "features": "features"}
    block = ["bn1", "conv1", "bn2", "prelu", "conv2", "bn3"]
    m = re.fullmatch(r"stages\.(\d+)\.(\d+)\.(body\.(\d)|shortcut)\.(.+)", key)
    if m:
        part = block[int(m.group(4))] if m.group(4) else "downsample"
        return f"layer{int(m.group(1)) + 1}.{m.group(2)}.{part}.{m.group(5)}"
    head, _, rest = key.rpartition(".")
    return f"{top[head]}.{rest}"


@pytest.fixture(scope="module")
def tiny_lresnet(tmp_path_factory, registry):
    """A facebench training checkpoint of lresnet50 at 16x16, 8-d, random init (sizes recorded in it)."""
    from facebench_plugins.engines._checkpoint import CHECKPOINT_FORMAT, atomic_save

    need_data("lfw_home")
    folder = tmp_path_factory.mktemp("lres")
    torch.manual_seed(0)
    model = registry.build("backbone", "lresnet50", {"input_size": "16", "embedding_size": "8"})
    ckpt = folder / "last.pt"
    atomic_save({"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "step": 3,
                 "backbone_spec": {"name": "lresnet50", "input_size": [16, 16], "embedding_size": 8}}, ckpt)
    out = folder / "r50.onnx"
    rc, text, err = _export("lresnet50", "--weights", str(ckpt), "--out", str(out), "--parity-images", "8")
    assert rc == 0, text + err
    return {"model": model, "ckpt": ckpt, "out": out, "text": text, "folder": folder}


def test_lresnet_training_checkpoint_exports_at_its_recorded_size(tiny_lresnet):
    assert _parity(tiny_lresnet["text"]) <= 1e-4
    meta = _props(tiny_lresnet["out"])
    assert (meta["facebench.input_size"], meta["facebench.embedding_size"]) == ("16,16", "8")
    assert meta["facebench.weights_sha256"] == hashlib.sha256(tiny_lresnet["ckpt"].read_bytes()).hexdigest()
    x = np.random.default_rng(1).standard_normal((5, 3, 16, 16)).astype(np.float32)
    with torch.inference_mode():
        ref = tiny_lresnet["model"].eval()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_session(tiny_lresnet["out"]).run(None, {"input": x})[0], ref, atol=1e-4)


def test_arcface_torch_state_dict_goes_through_the_importer(tiny_lresnet):
    from facebench_plugins.backbones._import import iresnet_key

    state = tiny_lresnet["model"].state_dict()
    keys = [k for k in state if not k.endswith("num_batches_tracked")]
    assert all(iresnet_key(_ires_name(k)) == k for k in keys)  # the test's own inverse is right
    foreign = {f"module.{_ires_name(k)}": state[k] for k in keys}
    pth = tiny_lresnet["folder"] / "backbone.pth"
    torch.save({"state_dict": foreign}, pth)
    out = tiny_lresnet["folder"] / "imported.onnx"
    rc, text, err = _export("lresnet50", "--weights", str(pth), "--out", str(out), "--parity-images", "4",
                            "-o", "lresnet50.input_size=16", "-o", "lresnet50.embedding_size=8")
    assert rc == 0, text + err
    x = np.random.default_rng(2).standard_normal((3, 3, 16, 16)).astype(np.float32)
    a = _session(out).run(None, {"input": x})[0]
    b = _session(tiny_lresnet["out"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(a, b, atol=1e-5)


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize("case, needle", [
    ("unknown_backbone", "unknown backbone 'lresnet5'"),
    ("missing_weights", "no such file and not a named weights variant"),
    ("not_a_checkpoint", "is not a PyTorch weights file"),
    ("other_backbone", "is a facebench checkpoint of 'lresnet50', not 'resnet20'"),
    ("out_under_a_file", "not a writable folder"),
    ("out_not_onnx", "expected a file name ending in .onnx"),
    ("stray_option", "does not name the backbone being exported"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, case, needle):
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint\n")
    ours = tmp_path / "ours.pt"
    torch.save({"format": "facebench-torch-checkpoint", "model": {"w": torch.zeros(1)},
                "backbone_spec": {"name": "lresnet50"}}, ours)
    out = tmp_path / "m.onnx"
    args = {
        "unknown_backbone": ["lresnet5", "--weights", str(junk), "--out", str(out)],
        "missing_weights": ["resnet20", "--weights", str(tmp_path / "nope.pt"), "--out", str(out)],
        "not_a_checkpoint": ["resnet20", "--weights", str(junk), "--out", str(out)],
        "other_backbone": ["resnet20", "--weights", str(ours), "--out", str(out)],
        "out_under_a_file": ["resnet20", "--weights", str(ours), "--out", str(junk / "sub" / "m.onnx")],
        "out_not_onnx": ["resnet20", "--weights", str(ours), "--out", str(tmp_path / "m.pt")],
        "stray_option": ["resnet20", "--weights", str(ours), "--out", str(out), "-o", "lresnet50.dropout=0.1"],
    }[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, text, err = _export(*args)
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
