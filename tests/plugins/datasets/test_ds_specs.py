"""The dataset specs: names, the synthetic spec's contract, a light __init__."""

from __future__ import annotations

import subprocess
import sys

from harness.specs import DatasetSpec

EXPECTED = {"att", "bin", "fddb", "imagefolder", "lfw", "mesh", "rec", "synthetic", "tfrecord", "video", "wider"}


def test_all_layouts_registered(fresh_registry):
    assert EXPECTED <= set(fresh_registry.names("dataset"))
    for spec in fresh_registry.specs("dataset"):
        if spec.name in EXPECTED:
            assert spec.factory == f"facebench_plugins.datasets.{spec.name}:build"


def test_synthetic_spec(fresh_registry):
    spec = fresh_registry.get("dataset", "synthetic")
    assert isinstance(spec, DatasetSpec) and spec.synthetic and spec.tasks == ("train", "verification")
    assert spec.framework == "opencv"
    opts = spec.make_options({})
    assert (opts.seed, opts.train_identities, opts.test_identities, opts.images_per_identity, opts.size,
            opts.pairs_per_fold, opts.folds) == (0, 40, 20, 16, 112, 60, 10)


def test_init_imports_no_framework():
    code = ("import sys, facebench_plugins.datasets as d; d.register_datasets(); "
            "bad = [m for m in ('cv2', 'torch', 'scipy', 'tensorflow') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
