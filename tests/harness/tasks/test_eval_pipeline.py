"""The parallel evaluation pipeline (harness/tasks/_pipeline.py) gives the serial path's numbers.

Real LFW photos, the cheap Haar detector and real recognizers: crops, fallback
flags, detection-store rows and embeddings must be *equal* (not close) whether
the images are worked on in this process or in a pool of spawned workers, with
the embedding on the main process or in the workers; a whole run gives the
same metrics and scores with ``--workers 0`` and ``--workers 2``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError, DataError
from tests.conftest import need_data

pytest.importorskip("cv2")


def _lfw(registry):
    return registry.build("dataset", "lfw", {}, path=str(need_data("lfw_home"))).verification().images


def _same(a, b) -> None:
    assert len(a.crops) == len(b.crops)
    for x, y in zip(a.crops, b.crops):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.fallback, b.fallback)
    np.testing.assert_array_equal(a.faces_per_image, b.faces_per_image)
    assert a.detector == b.detector and a.alignment == b.alignment
    if a.embeddings is not None or b.embeddings is not None:
        np.testing.assert_array_equal(a.embeddings, b.embeddings)


def _store(folder: Path) -> dict:
    (path,) = folder.glob("faces-*.npz")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def test_pool_equals_in_process_with_embedding_in_workers_or_on_main(tmp_path, fresh_registry):
    """sface (ONNX, template crops) after Haar on 20 LFW photos, three ways."""
    from harness.tasks._faces import face_crops
    from harness.tasks._pipeline import Recipe

    images = _lfw(fresh_registry)
    idx = np.arange(0, 200, 10)
    rec = fresh_registry.build("recognizer", "sface", {})
    kw = dict(registry=fresh_registry, detector="haar", template="arcface_112", size=(112, 112), recognizer=rec,
              progress=False, embed=True)
    serial = face_crops(images, idx, workers=0, cache_dir=tmp_path / "a", **kw)
    assert serial.stages["workers"] == 0 and serial.stages["embed_on"] == "main"
    recipe = Recipe.of(fresh_registry, "recognizer", "sface", {})
    in_workers = face_crops(images, idx, workers=2, cache_dir=tmp_path / "b", recognizer_recipe=recipe, **kw)
    assert in_workers.stages["workers"] == 2 and in_workers.stages["embed_on"] == "workers"
    _same(serial, in_workers)
    # no recipe: the workers decode, detect and align; this process embeds in batches
    on_main = face_crops(images, idx, workers=2, cache_dir=tmp_path / "c", **kw, batch=8)
    assert on_main.stages["embed_on"] == "main" and on_main.stages["workers"] == 2
    _same(serial, on_main)
    assert serial.embeddings.shape == (20, 128) and np.isfinite(serial.embeddings).all()
    # the pool writes the serial path's detection store, row for row
    a, b = _store(tmp_path / "a"), _store(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    # and reads it back: nothing is detected again, by either path
    again = face_crops(images, idx, workers=2, cache_dir=tmp_path / "a", **kw)
    assert again.stages["detected"] == 0 and again.stages["from_store"] == 20
    _same(serial, again)


def test_a_self_aligning_recognizer_is_rebuilt_in_each_worker(tmp_path, fresh_registry):
    """dlib_hog + dlib_resnet (dlib's own chips, built inside spawned workers) equal the serial path."""
    pytest.importorskip("dlib")
    from harness.tasks._faces import face_crops
    from harness.tasks._pipeline import Recipe

    images = _lfw(fresh_registry)
    idx = np.arange(0, 60, 10)
    rec = fresh_registry.build("recognizer", "dlib_resnet", {})
    kw = dict(registry=fresh_registry, detector="dlib_hog", template=rec.alignment, size=(150, 150),
              recognizer=rec, progress=False, embed=True, cache_dir=None)
    serial = face_crops(images, idx, workers=0, **kw)
    pool = face_crops(images, idx, workers=2, recognizer_recipe=Recipe.of(fresh_registry, "recognizer",
                                                                          "dlib_resnet", {}), **kw)
    assert pool.stages["embed_on"] == "workers" and serial.alignment.startswith("dlib_chip")
    _same(serial, pool)


def _bad_folder(tmp_path: Path) -> list[str]:
    good = sorted((need_data("lfw_home") / "lfw_funneled").glob("A*/*.jpg"))[:3]
    folder = tmp_path / "imgs"
    folder.mkdir()
    keys = []
    for i, src in enumerate(good):
        dst = folder / f"{i}.jpg"
        dst.write_bytes(src.read_bytes())
        keys.append(str(dst))
    bad = folder / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    keys.insert(2, str(bad))
    return keys


def test_an_unreadable_image_in_a_worker_is_the_serial_one_line_data_error(tmp_path, fresh_registry):
    from facebench_plugins.datasets._common import FileLoader
    from harness.tasks._faces import face_crops
    from harness.types import ImageSet

    keys = _bad_folder(tmp_path)
    images = ImageSet(keys=keys, labels=np.zeros(len(keys), np.int64), loader=FileLoader(), identities=("x",))
    kw = dict(registry=fresh_registry, detector="haar", template="arcface_112", size=(112, 112), progress=False)
    messages = []
    for workers in (0, 2):
        with pytest.raises(DataError) as err:
            face_crops(images, np.arange(len(keys)), workers=workers, **kw)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "broken.jpg" in messages[0] and "\n" not in messages[0]


class _DiesOnLoad:
    """A loader that kills the process it runs in (a crash in native code, say)."""

    def __call__(self, key: str) -> np.ndarray:
        import os

        os._exit(3)


def test_a_worker_that_dies_ends_the_run_with_one_line(fresh_registry):
    from harness.errors import HarnessError
    from harness.tasks._faces import face_crops
    from harness.types import ImageSet

    images = ImageSet(keys=[f"/nowhere/{i}.jpg" for i in range(4)], labels=np.zeros(4, np.int64),
                      loader=_DiesOnLoad(), identities=("x",))
    with pytest.raises(HarnessError, match="worker process of the evaluation pipeline died.*--workers 0"):
        face_crops(images, np.arange(4), registry=fresh_registry, detector="haar", template="arcface_112",
                   size=(112, 112), progress=False, workers=2)


def test_pieces_that_cannot_travel_keep_the_work_in_process(fresh_registry):
    from harness.tasks._faces import face_crops
    from harness.types import ImageSet

    rng = np.random.default_rng(0)
    pics = [rng.integers(0, 255, (90, 90, 3), np.uint8) for _ in range(3)]
    images = ImageSet(keys=["0", "1", "2"], labels=np.zeros(3, np.int64), loader=lambda k: pics[int(k)],
                      identities=("x",), info={"source": "mem", "format": "test"})
    out = face_crops(images, np.arange(3), registry=fresh_registry, detector="haar", template="arcface_112",
                     size=(112, 112), progress=False, workers=2)
    assert out.stages["workers"] == 0 and "loader" in out.stages["why_in_process"]
    assert len(out.crops) == 3 and out.fallback.all()  # noise: no face, flagged centre crops


def test_a_loader_holding_many_images_is_not_copied_to_every_worker(fresh_registry, monkeypatch):
    from facebench_plugins.datasets._common import BytesLoader
    from harness.tasks import _pipeline as P
    from harness.tasks._faces import face_crops
    from harness.types import ImageSet

    blob = (need_data("lfw_home") / "lfw_funneled" / "Abel_Pacheco" / "Abel_Pacheco_0001.jpg").read_bytes()
    loader = BytesLoader("mem.rec", [blob + bytes([i]) for i in range(3)])  # distinct: pickle stores each
    images = ImageSet(keys=[f"mem.rec#{i}" for i in range(3)], labels=np.zeros(3, np.int64), loader=loader,
                      identities=("x",), aligned="arcface_112", info={"source": "mem.rec"})
    monkeypatch.setattr(P, "MAX_JOB_BYTES", 2 * len(blob))  # three images exceed it
    out = face_crops(images, np.arange(3), registry=fresh_registry, detector=None, template="arcface_112",
                     size=(112, 112), progress=False, workers=2)
    assert out.stages["workers"] == 0 and "MiB, copied to every worker" in out.stages["why_in_process"]
    assert len(out.crops) == 3 and out.crops[0].shape == (112, 112, 3)


def test_worker_count(monkeypatch):
    from harness.tasks import _pipeline as P

    monkeypatch.setattr(P, "usable_cores", lambda: 8)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert P.resolve_workers(None, P.AUTO_MIN_IMAGES - 1) == 0  # small sets stay in-process
    assert P.resolve_workers(None, 10_000) == 8
    assert P.resolve_workers(None, 10_000, share=4) == 2  # torchrun ranks of a node share the cores
    assert P.resolve_workers(None, 10_000, share=8) == 0  # one core each: in-process
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert P.resolve_workers(None, 10_000) == 4
    assert P.resolve_workers(3, 5) == 3 and P.resolve_workers(0, 10_000) == 0
    with pytest.raises(ConfigError, match="workers=-1"):
        P.resolve_workers(-1, 10)
    monkeypatch.undo()
    import os

    assert P.usable_cores() == len(os.sched_getaffinity(0))  # the affinity mask, not the machine's count


def test_embedding_goes_where_the_cores_are():
    from harness.tasks._pipeline import embed_where

    class OnGpu:
        device = "cuda:0"

    recipe = object()
    assert embed_where(2, object(), recipe, "auto") == "workers"
    assert embed_where(2, object(), recipe, "cuda") == "main"
    assert embed_where(2, OnGpu(), recipe, "auto") == "main"
    assert embed_where(0, object(), recipe, "cpu") == "main"
    assert embed_where(2, object(), None, "cpu") == "main"


def test_stage_section_sums_sets_and_adds_outside_time():
    from harness.tasks._pipeline import note_stage, stage_section

    a = {"workers": 2, "embed_on": "workers", "images": 10, "detected": 4, "from_store": 6, "wall_s": 2.0,
         "seconds": {"decode": 0.5, "detect": 1.0, "align": 0.25, "embed": 2.0}}
    b = {"workers": 2, "embed_on": "workers", "images": 30, "detected": 30, "from_store": 0, "wall_s": 4.0,
         "seconds": {"decode": 1.5, "detect": 3.0, "align": 0.75, "embed": 6.0}}
    out = stage_section([a, None, b], score_s=2.0)
    assert out["images"] == 40 and out["detected"] == 34 and out["from_store"] == 6
    assert out["seconds"] == {"decode": 2.0, "detect": 4.0, "align": 1.0, "embed": 8.0, "score": 2.0}
    assert out["wall_s"] == 8.0 and out["img_per_s"] == 5.0
    note_stage([None, a], "embed", 1.0)  # the first set that has stages takes it
    assert a["seconds"]["embed"] == 3.0 and a["wall_s"] == 3.0 and a["img_per_s"] == round(10 / 3, 2)
    assert stage_section([None, None]) is None


def _pairs_file(tmp_path: Path) -> Path:
    """Two folds of 10 genuine + 10 impostor pairs from the official pairs.txt (fold 1 and 2)."""
    lines = (need_data("lfw_home") / "pairs.txt").read_text().splitlines()[1:]
    chosen = []
    for fold in (0, 1):
        base = fold * 600
        chosen += lines[base:base + 10] + lines[base + 300:base + 310]
    path = tmp_path / "pairs.txt"
    path.write_text("2\t10\n" + "\n".join(chosen) + "\n")
    return path


def test_a_run_with_workers_has_the_serial_runs_metrics(tmp_path, monkeypatch):
    """haar + sface on 40 real LFW pairs: --workers 0 and --workers 2 write the same metrics,
    scores and protocol; each records its stages (the pool's also in the run page)."""
    from harness.cli import main

    monkeypatch.setenv("FACEBENCH_PROGRESS", "0")
    lfw = need_data("lfw_home")
    pairs = _pairs_file(tmp_path)
    out = {}
    for workers in (0, 2):
        reports = tmp_path / f"r{workers}"
        code = main(["run", "--recognizer", "sface", "--detector", "haar", "--eval", f"lfw={lfw}",
                     "-o", f"lfw.pairs={pairs}", "--workers", str(workers), "--reports", str(reports)])
        assert code == 0
        (run,) = reports.glob("runs/*/results.json")
        out[workers] = (json.loads(run.read_text()), np.load(run.parent / "scores.npz"), run.parent)
    (serial, s_scores, _), (pool, p_scores, p_dir) = out[0], out[2]
    assert serial["config_hash"] == pool["config_hash"]  # --workers does not change what is computed
    assert serial["protocol"] == pool["protocol"] and serial["protocol"]["pairs"] == 40
    assert [(m["name"], m["value"]) for m in serial["metrics"]] == [(m["name"], m["value"]) for m in pool["metrics"]]
    for k in s_scores.files:
        np.testing.assert_array_equal(s_scores[k], p_scores[k])
    sp, pp = serial["sections"]["pipeline"], pool["sections"]["pipeline"]
    assert sp["workers"] == 0 and pp["workers"] == 2 and pp["embed_on"] == "workers"
    assert set(pp["seconds"]) >= {"decode", "detect", "align", "embed", "score"} and pp["img_per_s"] > 0
    page = (p_dir / "index.html").read_text()
    assert "Evaluation pipeline" in page and "2 worker processes" in page
