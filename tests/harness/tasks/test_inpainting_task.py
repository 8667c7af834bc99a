"""The meshface protocol end to end on real LFW pairs (a small balanced subset of fold 0)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.config import DataRef, RunSpec, TrainSettings
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
