"""The liveness plugins: specs, options, the fit / score / save / load contract."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError, HarnessError
from harness.registry import Registry
from harness.specs import LivenessSpec, OptionError
from harness.synth import print_attack, replay_attack

TRAINABLE = ("lbp_svm", "binary_cnn", "aux_depth")


@pytest.fixture(scope="module")
def registry():
    return Registry()


@pytest.fixture(autouse=True)
def one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _crops(n: int, seed: int = 0, size: int = 48) -> tuple[list, np.ndarray, np.ndarray]:
    """Bona fide: smooth colour images; attacks: print / replay imitations of other ones."""
    import cv2

    r = np.random.default_rng(seed)
    imgs, labels, species = [], [], []
    for i in range(n):
        base = cv2.resize(r.integers(0, 256, (5, 5, 3)).astype(np.uint8), (size, size),
                          interpolation=cv2.INTER_CUBIC)
        if i % 2 == 0:
            imgs.append(base), labels.append(1), species.append("")
        else:
            sp = "print" if i % 4 == 1 else "replay"
            imgs.append((print_attack if sp == "print" else replay_attack)(base, i)), labels.append(0)
            species.append(sp)
    return imgs, np.asarray(labels), np.asarray(species)


def _auc(s: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def test_four_models_listed_with_metadata(registry):
    assert {"lbp_svm", "binary_cnn", "aux_depth", "minifasnet"} <= set(registry.names("liveness"))
    for name in ("lbp_svm", "binary_cnn", "aux_depth", "minifasnet"):
        spec = registry.get("liveness", name)
        assert isinstance(spec, LivenessSpec) and spec.summary and spec.paper
        assert spec.meta["input"] in ("face_crop", "full_image")
        assert spec.trainable == (name in TRAINABLE)
        assert isinstance(spec.factory, str) and spec.factory.startswith("facebench_plugins.liveness.")
    depth = registry.get("liveness", "aux_depth")
    assert "template depth" in depth.meta["depth_labels"] and "3D face alignment" in depth.meta["depth_labels"]
    mf = registry.get("liveness", "minifasnet")
    assert mf.meta["input"] == "full_image" and "BGR" in mf.meta["normalisation"]
    assert [w.sha256 for w in mf.weights] == ["a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
                                            "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990"]


def test_options_are_validated(registry):
    with pytest.raises(OptionError, match="colour_spaces"):
        registry.validate_options("liveness", "lbp_svm", {"colour_spaces": "lab"})
    with pytest.raises(OptionError, match="scales"):
        registry.validate_options("liveness", "lbp_svm", {"scales": "8"})
    with pytest.raises(OptionError, match="size must be a multiple of 8"):
        registry.validate_options("liveness", "binary_cnn", {"size": "50"})
    with pytest.raises(OptionError, match="fusion"):
        registry.validate_options("liveness", "aux_depth", {"fusion": "1.5"})
    with pytest.raises(OptionError, match="models"):
        registry.validate_options("liveness", "minifasnet", {"models": "v3"})
    assert registry.validate_options("liveness", "aux_depth", {"binary_head": "false"}).fusion == 1.0


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("name, opts", [
    ("lbp_svm", {"size": "48", "scales": "8,1;8,2"}),
    ("binary_cnn", {"size": "32", "epochs": "4", "width": "8", "batch_size": "16", "lr": "3e-3"}),
    ("aux_depth", {"size": "32", "epochs": "4", "width": "8", "batch_size": "16", "lr": "3e-3"}),
])
def test_fit_score_save_load(registry, tmp_path, name, opts):
    imgs, y, sp = _crops(64)
    model = registry.build("liveness", name, opts)
    with pytest.raises(HarnessError, match="before fit"):
        model.score(imgs[:2])
    hist = model.fit(imgs, y, species=sp, progress=False)
    assert hist["images"] == 64
    s = model.score(imgs)
    assert s.shape == (64,) and s.dtype == np.float64 and np.all(np.isfinite(s))
    if "loss" in hist:
        assert len(hist["loss"]) == 4 and np.all(np.isfinite(hist["loss"]))
        assert hist["loss"][-1] < hist["loss"][0]
    # higher = bona fide: the model learned the training data
    assert _auc(s, y) > (0.95 if name == "lbp_svm" else 0.75), _auc(s, y)
    path = model.save(tmp_path / f"{name}.ckpt")
    fresh = registry.build("liveness", name, opts).load(path)
    np.testing.assert_allclose(fresh.score(imgs), s, rtol=1e-5, atol=1e-6)
    other = "binary_cnn" if name != "binary_cnn" else "aux_depth"
    with pytest.raises(DataError, match="checkpoint"):
        registry.build("liveness", other, {"size": "32", "width": "8"}).load(path)
    with pytest.raises(DataError, match="both"):
        registry.build("liveness", name, opts).fit(imgs[:4:2], [1, 1], progress=False)


def test_aux_depth_template_and_depth_maps(registry):
    from facebench_plugins.liveness.aux_depth import template_depth

    d = template_depth(28)
    assert d.shape == (28, 28) and d.max() == pytest.approx(1.0, abs=0.05) and d.min() == 0.0
    assert d[0, 0] == 0 and d[-1, -1] == 0 and d[14, 14] > 0.7  # corners flat, centre raised
    np.testing.assert_allclose(d, d[:, ::-1], atol=0.05)  # left-right symmetric
    imgs, y, _ = _crops(32)
    m = registry.build("liveness", "aux_depth", {"size": "32", "epochs": "1", "width": "8"})
    m.fit(imgs, y, progress=False)
    maps = m.depth_maps(imgs[:3])
    assert maps.shape == (3, 8, 8)
    pure = registry.build("liveness", "aux_depth", {"size": "32", "width": "8", "binary_head": "false"})
    assert pure.net.binary is None and pure.options.fusion == 1.0


def test_lbp_features_shape():
    from facebench_plugins.liveness import LbpSvmOptions
    from facebench_plugins.liveness.lbp_svm import lbp_features

    img = _crops(2)[0][0]
    f = lbp_features(img, LbpSvmOptions(size=48))
    # 6 channels x (59 + 59 + 18) bins, each histogram square-rooted (unit L2 norm per histogram)
    assert f.shape == (6 * (59 + 59 + 18),)
    assert np.sum(f[:59] ** 2) == pytest.approx(1.0, abs=1e-5)
    g = lbp_features(img, LbpSvmOptions(size=48, colour_spaces="gray", scales="8,1"))
    assert g.shape == (59,)


def _fitted_lbp_svm(registry, kernel="rbf"):
    imgs, y, sp = _crops(48)
    opts = {"size": "48", "scales": "8,1", "kernel": kernel}
    model = registry.build("liveness", "lbp_svm", opts)
    model.fit(imgs, y, species=sp, progress=False)
    return model, opts, imgs, y


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_lbp_svm_scores_are_sklearns_decision_function(registry, kernel):
    """The arrays the checkpoint stores score exactly as the scikit-learn pipeline they came from."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    model, _opts, imgs, y = _fitted_lbp_svm(registry, kernel)
    x = model.features(imgs)
    o = model.options
    ref = make_pipeline(StandardScaler(), SVC(C=o.c, kernel=o.kernel, gamma=o.gamma, class_weight="balanced"))
    ref.fit(x, y)
    np.testing.assert_allclose(model.score(imgs), ref.decision_function(x), rtol=1e-9, atol=1e-9)


class _Payload:
    """Unpickling this runs ``exec``: it creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import builtins

        return builtins.exec, (f"open({self.marker!r}, 'w').close()",)


def test_lbp_svm_refuses_a_malicious_pickle_without_running_it(registry, tmp_path):
    import pickle

    marker = tmp_path / "pwned"
    evil = tmp_path / "lbp_svm.pkl"
    evil.write_bytes(pickle.dumps({"format": "facebench-lbp_svm-1", "model": _Payload(marker)}))
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))  # the payload does run when unpickled
    assert (tmp_path / "control").exists()
    with pytest.raises(DataError, match="not an lbp_svm checkpoint.*refusing to read it"):
        registry.build("liveness", "lbp_svm", {"size": "48", "scales": "8,1"}).load(evil)
    assert not marker.exists()


def test_lbp_svm_refuses_unknown_npz_content(registry, tmp_path):
    import io

    from harness.results import atomic_write_bytes

    model, opts, imgs, _y = _fitted_lbp_svm(registry)
    good = model.save(tmp_path / "good.ckpt")
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}

    def write(name, **change):
        buf = io.BytesIO()
        np.savez(buf, **{**arrays, **change})
        return atomic_write_bytes(tmp_path / name, buf.getvalue())

    fresh = registry.build("liveness", "lbp_svm", opts)
    np.testing.assert_array_equal(fresh.load(good).score(imgs), model.score(imgs))
    marker = tmp_path / "pwned"
    obj = np.empty(1, object)
    obj[0] = _Payload(marker)
    with pytest.raises(DataError, match="refusing to read it"):  # an object array is a pickle inside
        fresh.load(write("obj.ckpt", mean=obj))
    assert not marker.exists()
    with pytest.raises(DataError, match="holds arrays"):
        fresh.load(write("extra.ckpt", extra=np.zeros(2)))
    with pytest.raises(DataError, match="inconsistent shapes"):
        fresh.load(write("shape.ckpt", scale=np.ones(3)))
    with pytest.raises(DataError, match="finite float64"):
        fresh.load(write("nan.ckpt", mean=np.full_like(arrays["mean"], np.nan)))
    with pytest.raises(DataError, match="saved with options"):
        registry.build("liveness", "lbp_svm", {"size": "32", "scales": "8,1"}).load(good)
