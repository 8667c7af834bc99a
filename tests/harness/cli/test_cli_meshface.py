"""`harness run --inpainter ... --train mesh=...` end to end on real LFW images, from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("dlib")


def _small_view(lfw_home: Path, tmp: Path) -> tuple[Path, set[str]]:
    """A pairs file of 2 folds x (3 genuine + 3 impostor) real View 2 pairs, people with <= 10 images."""
    lines = (lfw_home / "pairs.txt").read_text().splitlines()[1:]
    img_dir = lfw_home / "lfw_funneled"

    def small(*names: str) -> bool:
        return all(len(list((img_dir / n).iterdir())) <= 10 for n in names)

    out, people = ["2\t3"], set()
    for fold in (0, 1):
        block = lines[fold * 600:(fold + 1) * 600]
        for part in (block[:300], block[300:]):
            chosen = [ln for ln in part if small(*[t for t in ln.split("\t") if not t.isdigit()])][:3]
            assert len(chosen) == 3
            out += chosen
            people |= {t for ln in chosen for t in ln.split("\t") if not t.isdigit()}
    path = tmp / "pairs.txt"
    path.write_text("\n".join(out) + "\n")
    return path, people


def test_meshface_through_harness_run_with_cross_fitted_training(tmp_path, lfw_home):
    pairs, people = _small_view(lfw_home, tmp_path)
    train = tmp_path / "train"  # only the evaluated people: the harness must cross-fit
    train.mkdir()
    for name in sorted(people):
        (train / name).symlink_to(lfw_home / "lfw_funneled" / name, target_is_directory=True)
    reports = tmp_path / "reports"
    net = ["-o", "multitask_convnet.width=8", "-o", "multitask_convnet.batch_size=2",
           "-o", "multitask_convnet.patch=64", "-o", "multitask_convnet.device=cpu"]
    cmd = [sys.executable, "-m", "harness", "run", "--inpainter", "multitask_convnet",
           "--train", f"mesh={train}", "--eval", f"lfw={lfw_home}", "-o", f"lfw.pairs={pairs}",
           "--max-steps", "2", "--reports", str(reports), *net]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "FACEBENCH_PROGRESS": "0"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (run,) = (reports / "runs").iterdir()
    res = json.loads((run / "results.json").read_text())
    tr = res["sections"]["training"]
    assert tr["mode"].startswith("cross-fitted: 2 models") and tr["dataset"].startswith("mesh=")
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == [
        "multitask_convnet-folds0.pt", "multitask_convnet-folds1.pt"]
    p = res["protocol"]
    assert (p["name"], p["pairs"], p["folds"], p["recognizer"]) == ("meshface", 12, 2, "dlib_resnet")
    names = {m["name"] for m in res["metrics"]}
    assert {"accuracy_clean", "accuracy_meshed", "accuracy_restored", "psnr_restored", "ssim_meshed"} <= names
    html = (run / "index.html").read_text() if (run / "index.html").exists() else ""
    page = html or next(reports.rglob("*.html")).read_text()
    assert "Inpainting" in page
    # the checkpoints evaluate again without training; a checkpoint that saw fold 0's people is refused for it
    w = run / "checkpoints"
    again = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--inpainter", "multitask_convnet", "--eval", f"lfw={lfw_home}",
         "-o", f"lfw.pairs={pairs}", "--reports", str(tmp_path / "r2"), "-o",
         f"multitask_convnet.weights={w / 'multitask_convnet-folds1.pt'},{w / 'multitask_convnet-folds0.pt'}"],
        capture_output=True, text=True, env={**os.environ, "FACEBENCH_PROGRESS": "0"})
    assert again.returncode == 0, again.stderr[-3000:]
    (run2,) = (tmp_path / "r2" / "runs").iterdir()
    ip = json.loads((run2 / "results.json").read_text())["sections"]["inpainting"]
    assert "folds1.pt -> folds [1]" in ip["models"] and "folds0.pt -> folds [0]" in ip["models"]
    bad = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--inpainter", "multitask_convnet", "--eval", f"lfw={lfw_home}",
         "-o", f"lfw.pairs={pairs}", "--eval-folds", "0", "--reports", str(tmp_path / "r3"),
         "-o", f"multitask_convnet.weights={w / 'multitask_convnet-folds1.pt'}"],
        capture_output=True, text=True, env={**os.environ, "FACEBENCH_PROGRESS": "0"})
    assert bad.returncode != 0 and "fold 0" in (bad.stdout + bad.stderr)
