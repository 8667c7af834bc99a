"""The attack synthesizer: determinism, the artefacts each species adds, and
the spoof folder it writes (disjoint identities per split)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ConfigError, DataError
from harness.synth import (
    ATTACK_SPECIES,
    SYNTHETIC_NOTE,
    SYNTHESIS_FILE,
    print_attack,
    replay_attack,
    synthesize_attack,
    synthesize_spoof_set,
)


def _face(seed: int = 0, size: int = 96) -> np.ndarray:
    """A smooth, colourful test image (no periodic texture of its own)."""
    import cv2

    r = np.random.default_rng(seed)
    img = r.integers(0, 256, (6, 6, 3)).astype(np.uint8)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def _peak_frequency(gray: np.ndarray) -> tuple[float, float]:
    """(radius in cycles/pixel, power share) of the strongest non-DC spectral peak."""
    g = gray.astype(np.float64) - gray.mean()
    f = np.abs(np.fft.fftshift(np.fft.fft2(g))) ** 2
    h, w = f.shape
    yy, xx = np.mgrid[0:h, 0:w]
    rad = np.hypot((yy - h // 2) / h, (xx - w // 2) / w)
    f[rad < 0.02] = 0
    k = np.unravel_index(np.argmax(f), f.shape)
    return float(rad[k]), float(f[k] / max(f.sum(), 1e-12))


def test_species_names_and_determinism():
    img = _face()
    assert ATTACK_SPECIES == ("print", "replay")
    for sp in ATTACK_SPECIES:
        a = synthesize_attack(img, sp, 7)
        assert a.shape == img.shape and a.dtype == np.uint8
        assert np.array_equal(a, synthesize_attack(img, sp, 7))  # same seed, same bytes
        assert not np.array_equal(a, synthesize_attack(img, sp, 8))
        assert not np.array_equal(a, img)
    with pytest.raises(ConfigError, match="unknown attack species 'mask'"):
        synthesize_attack(img, "mask", 0)
    with pytest.raises(ValueError, match="uint8 RGB"):
        print_attack(img.astype(np.float32), 0)


def test_print_attack_halftone_paper_gamut():
    flat = np.full((128, 128, 3), 140, np.uint8)
    out = print_attack(flat, 3)
    gray = out.astype(np.float64).mean(axis=2)
    # halftone: a periodic dot screen with a 2.6-4 px period (0.25-0.38 cycles/px)
    radius, share = _peak_frequency(gray)
    assert 0.22 < radius < 0.45 and share > 0.01, (radius, share)
    # paper: whites are not white, blacks are lifted, the tint is warm (blue lowest)
    white = print_attack(np.full((64, 64, 3), 255, np.uint8), 3).reshape(-1, 3).mean(0)
    black = print_attack(np.zeros((64, 64, 3), np.uint8), 3).reshape(-1, 3).mean(0)
    assert white.max() < 245 and black.min() > 8
    assert white[2] < white[0]


def test_replay_attack_moire_and_glare():
    flat = np.full((128, 128, 3), 120, np.uint8)
    out = replay_attack(flat, 5).astype(np.float64)
    # the sub-pixel grid leaves a strong structured pattern on a flat input
    assert out.std() > 3.0
    radius, share = _peak_frequency(out.mean(axis=2))
    assert share > 0.005 and radius > 0.02
    # the three colour channels are modulated out of phase (RGB stripes)
    assert np.corrcoef(out[..., 0].ravel(), out[..., 2].ravel())[0, 1] < 0.95
    # black input: the screen glows and reflects
    black = replay_attack(np.zeros((64, 64, 3), np.uint8), 5)
    assert black.mean() > 8


def _fake_lfw(root: Path, n_ids: int = 9, per_id: int = 3) -> Path:
    import cv2

    base = root / "lfw_funneled"
    for i in range(n_ids):
        d = base / f"Person_{i:02d}"
        d.mkdir(parents=True)
        for j in range(per_id if i % 3 else 1):
            cv2.imwrite(str(d / f"Person_{i:02d}_{j + 1:04d}.jpg"), _face(10 * i + j, 64))
    return root


def test_synthesize_spoof_set_layout_disjoint_and_deterministic(tmp_path):
    lfw = _fake_lfw(tmp_path / "lfw_home")
    s = synthesize_spoof_set(lfw, tmp_path / "a", identities=9, seed=4, images_per_identity=2)
    ids = s["split_identities"]
    assert set(ids) == {"train", "dev", "test"}
    assert sum(len(v) for v in ids.values()) == 9
    assert not (set(ids["train"]) & set(ids["dev"])) and not (set(ids["train"]) & set(ids["test"]))
    assert not (set(ids["dev"]) & set(ids["test"]))
    meta = json.loads((tmp_path / "a" / SYNTHESIS_FILE).read_text())
    assert meta["synthetic_attacks"] is True and meta["note"] == SYNTHETIC_NOTE
    assert "not a substitute for a real presentation-attack (PAD) database" in SYNTHETIC_NOTE
    for split, names in ids.items():
        live = sorted(p.parent.name for p in (tmp_path / "a" / split / "live").glob("*/*.jpg"))
        attacks = sorted((tmp_path / "a" / split / "attack").glob("*/*/*.jpg"))
        assert set(live) == set(names)
        assert len(attacks) == len(live) == s["counts"][split]["live"]
        assert {p.parent.parent.name for p in attacks} <= set(ATTACK_SPECIES)
        assert {p.parent.name for p in attacks} == set(names)
    # species alternate: the training split holds both
    assert set(s["counts"]["train"]["attack"]) == {"print", "replay"}
    # same seed elsewhere: byte-identical files; the same call again is a no-op
    synthesize_spoof_set(lfw, tmp_path / "b", identities=9, seed=4, images_per_identity=2)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.jpg"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.jpg"))
    assert files_a == files_b
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files_a)
    assert synthesize_spoof_set(lfw, tmp_path / "a", identities=9, seed=4, images_per_identity=2) == s
    # another seed draws another split
    other = synthesize_spoof_set(lfw, tmp_path / "c", identities=9, seed=5, images_per_identity=2)
    assert other["split_identities"] != ids


def test_synthesize_spoof_set_errors(tmp_path):
    lfw = _fake_lfw(tmp_path / "lfw_home", n_ids=4)
    with pytest.raises(DataError, match="LFW folder not found"):
        synthesize_spoof_set(tmp_path / "missing", tmp_path / "o")
    with pytest.raises(ConfigError, match="identities=40"):
        synthesize_spoof_set(lfw, tmp_path / "o", identities=40)
    with pytest.raises(ConfigError, match="species"):
        synthesize_spoof_set(lfw, tmp_path / "o", identities=4, species=("mask",))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        synthesize_spoof_set(lfw, busy, identities=4)
    assert (busy / "mine.txt").exists()
    named = synthesize_spoof_set(lfw, tmp_path / "named", identities=["Person_00", "Person_01", "Person_02"])
    assert sorted(sum(named["split_identities"].values(), [])) == ["Person_00", "Person_01", "Person_02"]
