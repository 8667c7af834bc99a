"""The meshface protocol end to end on real LFW pairs (a small balanced subset of fold 0)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.config import DataRef, RunSpec, TrainSettings
from harness.hookspecs import hookimpl
from harness.results import RunStore
from harness.tasks import TaskContext

pytest.importorskip("cv2")
pytest.importorskip("dlib")


def _ctx(tmp_path: Path, registry, **extra) -> TaskContext:
    store = RunStore(tmp_path / "reports")
    run = store.create("inpaint-test", "0" * 10)
    return TaskContext(registry=registry, run_dir=run, cache_dir=tmp_path / "cache", progress=False,
                       log=lambda m: None, extra=extra)


def _spec(lfw_home: Path, inpainter: str, options=None, train=()) -> RunSpec:
    return RunSpec(task="inpainting", components={"inpainter": inpainter, "recognizer": "dlib_resnet"},
                   train=tuple(train), eval=(DataRef("lfw", str(lfw_home)),), options=options or {},
                   training=TrainSettings(max_steps=2, batch_size=4), seed=0, eval_folds=(0,))


def test_subset_pairs_is_balanced_and_keeps_order(lfw_home, fresh_registry):
    from harness.tasks.inpainting import subset_pairs

    pairs = fresh_registry.build("dataset", "lfw", {}, path=str(lfw_home)).verification().subset([0])
    sub, keep = subset_pairs(pairs, 20)
    assert len(sub) == 20 and sub.issame.sum() == 10
    assert np.all(np.diff(keep) > 0)
    assert np.array_equal(sub.pairs, pairs.pairs[keep])


def test_meshface_telea_on_lfw_pairs(tmp_path, lfw_home, fresh_registry):
    from harness.tasks.inpainting import run

    ctx = _ctx(tmp_path, fresh_registry, max_pairs=24)
    res = run(_spec(lfw_home, "telea"), ctx)
    by = {m["name"]: m for m in res["metrics"]}
    for name in ("accuracy_restored", "accuracy_meshed", "accuracy_clean", "psnr_restored", "ssim_restored",
                 "psnr_meshed", "ssim_meshed", "mask_iou", "eer_restored", "tar_at_far_1e-3_meshed"):
        assert name in by, name
    # the mesh really degrades the crops, and Telea repairs part of it
    assert by["psnr_meshed"]["value"] < 30
    assert by["psnr_restored"]["value"] > by["psnr_meshed"]["value"]
    assert by["ssim_restored"]["value"] > by["ssim_meshed"]["value"]
    assert 0.1 < by["mask_iou"]["value"] <= 1
    assert by["accuracy_clean"]["value"] >= 0.85  # dlib on clean LFW pairs
    ip = res["sections"]["inpainting"]
    assert ip["verification"]["recognizer"] == "dlib_resnet"
    assert set(ip["verification"]) >= {"clean", "meshed", "restored"}
    assert len(ip["samples"]) == 4
    for rel in ip["samples"]:
        assert (ctx.run_dir.path / rel).is_file()
    p = res["protocol"]
    assert p["name"] == "meshface" and p["pairs"] == 24 and "estimated" in p["mask"]
    z = ctx.run_dir.load_arrays("scores")
    assert len(z["score_restored"]) == 24
    json.dumps(res)  # JSON-ready


def test_meshes_are_the_same_for_every_model(tmp_path, lfw_home, fresh_registry):
    """The protocol meshes by pair index: two inpainters see identical meshed crops."""
    from harness.tasks.inpainting import run

    out = {}
    for name, opts in (("telea", {"telea": {"mask": "oracle"}}), ("navier_stokes", {})):
        ctx = _ctx(tmp_path / name, fresh_registry, max_pairs=12)
        out[name] = (run(_spec(lfw_home, name, opts), ctx), ctx)
    za = out["telea"][1].run_dir.load_arrays("scores")
    zb = out["navier_stokes"][1].run_dir.load_arrays("scores")
    np.testing.assert_array_equal(za["psnr_meshed"], zb["psnr_meshed"])
    np.testing.assert_array_equal(za["score_meshed"], zb["score_meshed"])
    assert "oracle" in out["telea"][0]["protocol"]["mask"]
    by = {m["name"]: m["value"] for m in out["telea"][0]["metrics"]}
    assert "mask_iou" not in by  # oracle: nothing estimated


def test_train_excludes_evaluated_identities(tmp_path, lfw_home, fresh_registry):
    """--train imagefolder=lfw_funneled: identities of the evaluated pairs are dropped, weights saved."""
    pytest.importorskip("torch")
    from harness.tasks.inpainting import run

    ctx = _ctx(tmp_path, fresh_registry, max_pairs=10, max_train_images=12)
    spec = _spec(lfw_home, "multitask_convnet", {"multitask_convnet": {"batch_size": 2, "patch": 64}},
                 train=(DataRef("imagefolder", str(lfw_home / "lfw_funneled")),))
    res = run(spec, ctx)
    tr = res["sections"]["training"]
    assert tr["dropped_eval_identity_images"] > 0
    assert tr["images"] == 12 and tr["steps"] == 2
    assert Path(tr["checkpoint"]).is_file()
    assert res["sections"]["inpainting"]["untrained"] is False


def test_fold_groups_and_training_plan():
    from harness.tasks.inpainting import fold_groups, plan_training

    assert fold_groups(range(10), 2) == [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9)]
    assert fold_groups([3, 1, 2], 2) == [(1, 2), (3,)]
    assert fold_groups([4], 2) == [(4,)]
    by_fold = {0: {"ann", "bob"}, 1: {"cid"}, 2: {"dee"}}
    groups, mode = plan_training(by_fold, ["eve"] * 5 + ["ann"], floor=5)  # 5 images outside: one model
    assert groups == [(0, 1, 2)] and mode.startswith("one model")
    groups, mode = plan_training(by_fold, ["eve"] * 4 + ["ann"], floor=5)  # 4 outside: cross-fit
    assert groups == [(0, 1), (2,)] and mode.startswith("cross-fitted: 2 models")
    groups, _ = plan_training({0: {"ann"}}, ["ann"], floor=5)  # one fold cannot be cross-fitted
    assert groups == [(0,)]


def _net_opts():
    return {"multitask_convnet": {"batch_size": 2, "patch": 64, "width": 8, "device": "cpu"}}


def test_cross_fit_never_restores_a_pair_with_a_model_that_saw_its_people(tmp_path, lfw_home, fresh_registry,
                                                                         monkeypatch):
    """Training on LFW while its identities run out: one model per fold group, each disjoint from its folds."""
    torch = pytest.importorskip("torch")
    from harness.tasks import inpainting
    from harness.tasks.inpainting import fold_identities, run

    monkeypatch.setattr(inpainting, "MIN_TRAIN_IMAGES", 10**9)  # as if the evaluated folds used every identity
    ctx = _ctx(tmp_path, fresh_registry, max_pairs=8, max_train_images=6)
    spec = dataclasses_replace(_spec(lfw_home, "multitask_convnet", _net_opts(),
                                     train=(DataRef("mesh", str(lfw_home)),)), eval_folds=(0, 1))
    res = run(spec, ctx)
    tr = res["sections"]["training"]
    assert tr["mode"].startswith("cross-fitted: 2 models")
    assert "folds [0]" in tr["models"] and "folds [1]" in tr["models"]
    pairs, _, _ = inpainting._load_pairs(ctx, spec)
    by_fold = fold_identities(pairs)
    for fold in (0, 1):
        ckpt = torch.load(ctx.run_dir.checkpoint_dir / f"multitask_convnet-folds{fold}.pt", weights_only=True)
        seen = set(ckpt["train_identities"])
        assert seen and not (seen & by_fold[fold])
    ip = res["sections"]["inpainting"]
    assert "checked" in ip["identity_check"] and ip["models"].count(" -> folds") == 2
    assert res["protocol"]["pairs"] == 8 and res["protocol"]["folds"] == 2


def test_weights_are_assigned_to_folds_by_their_training_identities(tmp_path, lfw_home, fresh_registry):
    pytest.importorskip("torch")
    from harness.errors import ConfigError
    from harness.tasks import inpainting
    from harness.tasks.inpainting import fold_identities, run

    ctx = _ctx(tmp_path / "a", fresh_registry, max_pairs=8)
    spec = dataclasses_replace(_spec(lfw_home, "multitask_convnet", _net_opts()), eval_folds=(0, 1))
    by_fold = fold_identities(inpainting._load_pairs(ctx, spec)[0])
    paths = {}
    for name, seen in (("saw0", by_fold[0]), ("saw1", by_fold[1]), ("blank", None)):
        net = fresh_registry.build("inpainter", "multitask_convnet", _net_opts()["multitask_convnet"])
        net.train_identities = None if seen is None else frozenset(seen)
        paths[name] = str(net.save(tmp_path / f"{name}.pt"))

    def with_weights(w: str):
        return dataclasses_replace(spec, options={"multitask_convnet": {**_net_opts()["multitask_convnet"],
                                                                        "weights": w}})

    res = run(with_weights(f"{paths['saw0']},{paths['saw1']}"), ctx)
    ip = res["sections"]["inpainting"]
    # fold 0 goes to the checkpoint that saw fold 1's people, fold 1 to the one that saw fold 0's
    assert f"{paths['saw1']} -> folds [0]" in ip["models"] and f"{paths['saw0']} -> folds [1]" in ip["models"]
    with pytest.raises(ConfigError, match="fold 0"):
        run(with_weights(paths["saw0"]), _ctx(tmp_path / "b", fresh_registry, max_pairs=8))
    res = run(with_weights(paths["blank"]), _ctx(tmp_path / "c", fresh_registry, max_pairs=8))
    assert "unchecked" in res["sections"]["inpainting"]["identity_check"]
    with pytest.raises(ConfigError, match="record no training identities"):
        run(with_weights(f"{paths['blank']},{paths['saw0']}"), _ctx(tmp_path / "d", fresh_registry, max_pairs=8))


def dataclasses_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_a_backbone_with_real_weights_can_be_the_verifier(tmp_path, lfw_home, fresh_registry):
    """--backbone mobilefacenet -o mobilefacenet.weights=casia: its own alignment (112x96), cosine scores."""
    pytest.importorskip("torch")
    from tests.conftest import need_data

    need_data("weights/mobilefacenet/068.ckpt")
    from harness.tasks.inpainting import run

    ctx = _ctx(tmp_path, fresh_registry, max_pairs=40)
    spec = dataclasses_replace(_spec(lfw_home, "telea"), components={"inpainter": "telea", "backbone": "mobilefacenet"},
                               options={"mobilefacenet": {"weights": "casia"}})
    res = run(spec, ctx)
    p = res["protocol"]
    assert (p["recognizer"], p["recognizer_kind"], p["recognizer_weights"]) == ("mobilefacenet", "backbone", "casia")
    assert p["alignment"] == "sphereface_112x96" and p["input_size"] == [112, 96] and p["distance"] == "cosine"
    by = {m["name"]: m["value"] for m in res["metrics"]}
    assert by["accuracy_clean"] >= 0.9  # the real CASIA MobileFaceNet on clean LFW pairs
    assert by["psnr_restored"] > by["psnr_meshed"]
    z = ctx.run_dir.load_arrays("scores")
    assert np.all(np.abs(z["score_clean"]) <= 1 + 1e-6)  # cosine


def test_a_damaged_embedding_cache_is_recomputed(tmp_path):
    from types import SimpleNamespace

    from harness.tasks.inpainting import _embed_cached

    class Rec:
        calls = 0

        def embed(self, crops):
            Rec.calls += 1
            return np.stack([np.full(3, float(c.mean())) for c in crops]).astype(np.float32)

    ctx = SimpleNamespace(cache_dir=str(tmp_path), progress=False)
    crops = [np.full((4, 4, 3), v, np.uint8) for v in (1, 2, 3)]
    (tmp_path / "inpaint-emb-k.npz").write_bytes(b"PK\x03\x04 not a zip")
    emb = _embed_cached(ctx, "k", Rec(), crops, "test")
    assert Rec.calls == 1 and emb[:, 0].tolist() == [1.0, 2.0, 3.0]
    again = _embed_cached(ctx, "k", Rec(), crops, "test")  # now a good cache: no second call
    assert Rec.calls == 1 and np.array_equal(again, emb)


# ------------------------------------------------ --engine for the backbone verifier
def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def test_the_backbone_verifier_embeds_with_the_chosen_engine(tmp_path, lfw_home, fresh_registry):
    """--engine tf --backbone mobilefacenet -o mobilefacenet.weights=casia: the verifier runs on the tf
    engine (recognition's rule), and its embeddings and scores equal the torch engine's to the
    weight-transfer tolerance (1e-4: max |difference| <= 1e-4 x max(1, largest |value|), and of the
    unit-normalised embeddings); accuracies, EER and TAR within one pair's worth."""
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    from tests.conftest import need_data

    need_data("weights/mobilefacenet/068.ckpt")
    from harness.tasks.inpainting import run

    base = dataclasses_replace(_spec(lfw_home, "telea"), components={"inpainter": "telea", "backbone": "mobilefacenet"},
                               options={"mobilefacenet": {"weights": "casia"}})
    out = {}
    for engine in ("torch", "tf"):  # one cache folder: the engines must not share embeddings
        ctx = _ctx(tmp_path, fresh_registry, max_pairs=16)
        res = run(dataclasses_replace(base, engine=None if engine == "torch" else engine), ctx)
        out[engine] = (res, ctx.run_dir.load_arrays("scores"))
    for engine, runtime in (("torch", "torch"), ("tf", "tensorflow")):
        res = out[engine][0]
        assert res["protocol"]["recognizer_engine"] == engine
        manifest = res["sections"]["manifest"]
        assert manifest["engine"] == engine and runtime in manifest["compared_runtimes"]
        assert manifest["flip"] == "concat" and manifest["input_size"] == [112, 96]
    embeddings = [np.load(p)["emb"] for p in sorted((tmp_path / "cache").glob("inpaint-emb-*-clean.npz"))]
    assert len(embeddings) == 2  # computed once per engine
    a, b = embeddings
    assert a.shape == b.shape and a.shape[1] == 256  # 128-d, flip-concatenated
    assert np.abs(a - b).max() <= 1e-4 * max(1.0, float(np.abs(a).max()))
    assert np.abs(_unit(a) - _unit(b)).max() <= 1e-4
    (rt, zt), (rf, zf) = out["torch"], out["tf"]
    for c in ("clean", "meshed", "restored"):
        assert np.abs(zt[f"score_{c}"] - zf[f"score_{c}"]).max() <= 1e-4, c
    one_pair = 1.0 / len(zt["score_clean"])
    mt, mf = ({m["name"]: m["value"] for m in r["metrics"]} for r in (rt, rf))
    assert set(mt) == set(mf)
    for name in ("accuracy_clean", "accuracy_meshed", "accuracy_restored", "eer_clean", "eer_restored",
                 "tar_at_far_1e-3_clean", "tar_at_far_1e-3_restored"):
        if mt[name] is None or mf[name] is None:  # undefined (too few impostor pairs for the FAR): for both
            assert mt[name] is mf[name] is None, name
        else:
            assert abs(mt[name] - mf[name]) <= one_pair + 1e-9, name
    for name in ("psnr_restored", "ssim_restored", "psnr_meshed", "ssim_meshed"):
        assert mt[name] == mf[name], name  # the crops do not depend on the engine


def test_engine_and_its_options_reach_the_inpainting_run(tmp_path, fresh_registry):
    """`harness run --engine tf -o tf.threads=1 --backbone mobilefacenet -o mobilefacenet.weights=casia
    --inpainter telea --eval lfw=…`: the meshface run carries the engine (it names the run, so a tf and
    a torch verifier are two runs) and the engine's options."""
    from harness.config import RunConfig

    def expand(engine):
        cfg = RunConfig(inpainters=("telea",), backbones=("mobilefacenet",), engine=engine,
                        options={"mobilefacenet": {"weights": "casia"}, **({"tf": {"threads": 1}} if engine else {})},
                        eval=(DataRef("lfw", str(tmp_path)),))
        (spec,) = cfg.expand(fresh_registry)
        return spec

    tf, torch = expand("tf"), expand(None)
    assert tf.task == torch.task == "inpainting"
    assert (tf.engine, torch.engine) == ("tf", None) and tf.options["tf"] == {"threads": 1}
    assert tf.config_hash() != torch.config_hash()


class _OtherFrameworkEngine:
    """An engine of another framework that adapts nothing (no ``adapt``)."""

    def embed(self, model, images, **kw):  # pragma: no cover - never reached
        raise AssertionError("a torch backbone must not reach this engine")


class _EnginePlugin:
    __name__ = "fixture_engine"

    @staticmethod
    @hookimpl
    def register_engines():
        from harness.specs import EngineSpec

        return [EngineSpec(name="cvonly", summary="an OpenCV-only engine (test)", framework="opencv",
                           factory=lambda *a, **k: _OtherFrameworkEngine())]


def test_an_engine_that_cannot_take_the_backbone_is_one_config_error(tmp_path):
    from harness.errors import ConfigError
    from harness.registry import Registry, reset_registry
    from harness.tasks.inpainting import run

    reg = Registry(plugins=[_EnginePlugin])
    reset_registry(reg)
    try:
        spec = dataclasses_replace(_spec(tmp_path, "telea"), components={"inpainter": "telea",
                                   "backbone": "mobilefacenet"}, options={"mobilefacenet": {"weights": "casia"}},
                                   engine="cvonly")
        with pytest.raises(ConfigError) as info:
            run(spec, _ctx(tmp_path, reg, max_pairs=4))
    finally:
        reset_registry(None)
    msg = str(info.value)
    assert "\n" not in msg and "engine 'cvonly' runs opencv models and cannot take backbone 'mobilefacenet'" in msg
    assert "drop --engine" in msg
