"""Print and replay attack imitations made from real face photos.

Two attack species, each a chain of physically motivated image operations,
deterministic from a seed:

``print``  (a photo printed on paper and shown to the camera)
    printer gamut (desaturation, gamma, lifted black / lowered white, warm
    paper tint) -> halftone dot screens at per-channel angles -> ink spread
    -> bending shading (smooth illumination falloff of a curved sheet) and a
    slight sheet warp -> recapture blur and sensor noise.

``replay`` (a photo shown on a screen and recaptured)
    screen gamut (cool white point, glow-lifted blacks, gamma) -> the screen's
    RGB sub-pixel grid rendered 3x finer than the camera's pixels at a small
    rotation and area-averaged down, which aliases into moire -> specular
    reflections (a soft highlight and a glare band) -> recapture blur and
    noise.

:func:`synthesize_spoof_set` writes the ``spoof`` dataset layout from LFW
identities, with train / dev / test splits over disjoint identities.

Synthesized attacks are not a substitute for a real presentation-attack
(PAD) database: they imitate a few artefacts, while real attacks vary in
printers, papers, screens, cameras and handling.  Every report on such data
states this (:data:`SYNTHETIC_NOTE`).

numpy only at import; OpenCV is imported inside the functions.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from harness.errors import ConfigError, DataError

__all__ = [
    "ATTACK_SPECIES",
    "SYNTHETIC_NOTE",
    "SYNTHESIS_FILE",
    "print_attack",
    "replay_attack",
    "synthesize_attack",
    "synthesize_spoof_set",
]

#: attack species the synthesizer makes, in order
ATTACK_SPECIES: tuple[str, ...] = ("print", "replay")
#: written at the root of a synthesized spoof folder; the ``spoof`` dataset reads it
SYNTHESIS_FILE = "synthesis.json"
#: the sentence every report on synthesized attacks carries
SYNTHETIC_NOTE = (
    "The attacks are synthesized by facebench (print and replay imitations made from bona fide photos); "
    "synthesized attacks are not a substitute for a real presentation-attack (PAD) database."
)
_SPLITS = ("train", "dev", "test")
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


# ------------------------------------------------------------------ helpers
def _rng(seed: int | np.random.Generator | Sequence[int]) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) < 8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image of at least 8x8 pixels, got {a.shape} {a.dtype}")
    return a.astype(np.float32) / 255.0


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    if sigma <= 0:
        return x
    return cv2.GaussianBlur(x, (0, 0), sigmaX=float(sigma), borderType=cv2.BORDER_REFLECT)


def _desaturate(x: np.ndarray, keep: float) -> np.ndarray:
    gray = (x @ _LUMA)[..., None]
    return gray + keep * (x - gray)


def _noise(x: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    return x + rng.normal(0.0, std, size=x.shape).astype(np.float32)


def _axis_coord(h: int, w: int, angle: float) -> np.ndarray:
    """Coordinate along a direction, scaled to [-1, 1] over the image."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = (xx - w / 2) * np.cos(angle) + (yy - h / 2) * np.sin(angle)
    return t / max(float(np.abs(t).max()), 1.0)


# ------------------------------------------------------------------- print
def print_attack(image: np.ndarray, seed: int | np.random.Generator = 0) -> np.ndarray:
    """A printed-photo imitation of ``image`` (RGB uint8 in, RGB uint8 out, same size)."""
    import cv2

    rng = _rng(seed)
    x = _check(image)
    h, w = x.shape[:2]
    # printer gamut: fewer saturated colours, darker mid-tones, ink black and paper white
    x = _desaturate(x, rng.uniform(0.55, 0.85))
    x = np.clip(x, 0, 1) ** rng.uniform(1.15, 1.6)
    black, white = rng.uniform(0.06, 0.16), rng.uniform(0.80, 0.94)
    x = black + (white - black) * x
    paper = np.array([1.0, rng.uniform(0.94, 0.99), rng.uniform(0.82, 0.92)], np.float32)
    x = x * paper
    # halftone: one rotated dot screen per channel (soft threshold = printed dot area)
    period = rng.uniform(2.6, 4.0)
    base = rng.uniform(0, np.pi / 2)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mix, sharp = rng.uniform(0.35, 0.6), rng.uniform(3.0, 6.0)
    for c, off in enumerate(np.deg2rad([15.0, 75.0, 45.0])):
        a = base + off
        u = xx * np.cos(a) + yy * np.sin(a)
        v = -xx * np.sin(a) + yy * np.cos(a)
        screen = 0.25 * (2.0 + np.cos(2 * np.pi * u / period) + np.cos(2 * np.pi * v / period))
        dots = np.clip((x[..., c] - screen) * sharp + 0.5, 0.0, 1.0)
        x[..., c] = mix * dots + (1 - mix) * x[..., c]
    x = _blur(x, rng.uniform(0.45, 0.8))  # ink spread
    # bending: the sheet curves along one axis -> smooth shading and a small warp
    angle = rng.uniform(0, np.pi)
    t = _axis_coord(h, w, angle)
    amp = rng.uniform(0.08, 0.22)
    shade = 1.0 - amp * (t ** 2) + rng.uniform(-0.06, 0.06) * t
    x = x * shade[..., None]
    bend = rng.uniform(0.5, 2.0) * max(h, w) / 250.0
    phase = rng.uniform(0, 2 * np.pi)
    map_x = (xx + bend * np.sin(np.pi * yy / h + phase) * np.abs(np.sin(angle))).astype(np.float32)
    map_y = (yy + bend * np.sin(np.pi * xx / w + phase) * np.abs(np.cos(angle))).astype(np.float32)
    x = cv2.remap(np.ascontiguousarray(x), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    # recapture: defocus and sensor noise
    x = _blur(x, rng.uniform(0.4, 1.1))
    x = _noise(x, rng, rng.uniform(0.006, 0.018))
    return _to_uint8(x)


# ------------------------------------------------------------------ replay
def _pixel_grid(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """The screen's RGB stripe grid seen by the camera: rendered finer than the
    camera pixels, rotated, then area-averaged down, so it aliases into moire.
    Returns (h, w, 3) float32 with each channel's mean 1."""
    import cv2

    s = 3 if max(h, w) <= 1024 else 2
    pitch = rng.uniform(0.75, 1.45)  # screen pixel pitch in camera pixels
    angle = np.deg2rad(rng.uniform(-12.0, 12.0))
    yy, xx = np.mgrid[0 : h * s, 0 : w * s].astype(np.float32) / s
    u = (xx * np.cos(angle) + yy * np.sin(angle)) / pitch
    v = (-xx * np.sin(angle) + yy * np.cos(angle)) / pitch
    rows = (np.mod(v, 1.0) < rng.uniform(0.7, 0.9)).astype(np.float32)  # dark gaps between pixel rows
    fill = rng.uniform(0.6, 0.95)
    out = np.empty((h, w, 3), np.float32)
    for c in range(3):
        stripe = (np.mod(u - c / 3.0, 1.0) < fill / 3.0).astype(np.float32) * rows
        small = cv2.resize(stripe, (w, h), interpolation=cv2.INTER_AREA)
        out[..., c] = small / max(float(small.mean()), 1e-6)
    return out


def replay_attack(image: np.ndarray, seed: int | np.random.Generator = 0) -> np.ndarray:
    """A screen-replay imitation of ``image`` (RGB uint8 in, RGB uint8 out, same size)."""
    rng = _rng(seed)
    x = _check(image)
    h, w = x.shape[:2]
    # screen gamut: cool white point, glowing blacks, lifted mid-tones
    x = _desaturate(x, rng.uniform(0.75, 1.1))
    x = np.clip(x, 0, 1) ** rng.uniform(0.75, 0.95)
    black, white = rng.uniform(0.05, 0.13), rng.uniform(0.9, 1.0)
    x = black + (white - black) * x
    x = x * np.array([rng.uniform(0.86, 0.96), rng.uniform(0.94, 1.0), 1.0], np.float32)
    # moire from the sub-pixel grid
    strength = rng.uniform(0.12, 0.35)
    x = x * ((1 - strength) + strength * _pixel_grid(h, w, rng))
    # reflections: a soft specular highlight and a glare band
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    sx, sy = rng.uniform(0.25, 0.6) * w, rng.uniform(0.25, 0.6) * h
    blob = np.exp(-0.5 * (((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2))
    band_t = _axis_coord(h, w, rng.uniform(0, np.pi)) - rng.uniform(-0.6, 0.6)
    band = np.exp(-0.5 * (band_t / rng.uniform(0.05, 0.15)) ** 2)
    glare = rng.uniform(0.08, 0.25) * blob + rng.uniform(0.03, 0.12) * band
    x = x + glare[..., None] * (1.0 - x)
    x = _blur(x, rng.uniform(0.35, 0.9))
    x = _noise(x, rng, rng.uniform(0.006, 0.018))
    return _to_uint8(x)


_MAKERS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {"print": print_attack, "replay": replay_attack}


def synthesize_attack(image: np.ndarray, species: str, seed: int | np.random.Generator = 0) -> np.ndarray:
    """An attack of ``species`` (``"print"`` or ``"replay"``) made from ``image``.

    :raises ConfigError: an unknown species.
    """
    try:
        maker = _MAKERS[species]
    except KeyError:
        raise ConfigError(f"unknown attack species {species!r}; the synthesizer makes "
                          f"{', '.join(ATTACK_SPECIES)}") from None
    return maker(image, seed)


# -------------------------------------------------------------- spoof set
def _lfw_images_dir(lfw_root: Path) -> Path:
    from harness.formats.lfw_layout import IMAGE_DIRS, lfw_home

    root = lfw_home(Path(lfw_root).expanduser())
    if not root.is_dir():
        raise DataError(f"{root}: LFW folder not found (expected lfw_home or its lfw_funneled folder)")
    for sub in (*IMAGE_DIRS, ""):  # the layouts the lfw dataset accepts (harness.formats.lfw_layout)
        cand = root / sub if sub else root
        if cand.is_dir() and any(p.is_dir() and any(p.glob("*.jpg")) for p in cand.iterdir()):
            return cand
    raise DataError(f"{root}: no LFW identity folders (<Name>/<Name>_NNNN.jpg) found here or in lfw_funneled/")


def _item_seed(seed: int, *parts: str) -> list[int]:
    return [int(seed), *(zlib.crc32(p.encode()) for p in parts)]


def _check_spoof_params(species: tuple[str, ...], split_fractions: Sequence[float],
                        images_per_identity: int) -> None:
    bad = [s for s in species if s not in _MAKERS]
    if bad or not species:
        raise ConfigError(f"species {bad or '()'} unknown; choose from {', '.join(ATTACK_SPECIES)}")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise ConfigError("split_fractions must be three non-negative shares (train, dev, test), "
                          f"got {split_fractions}")
    if images_per_identity < 1:
        raise ConfigError(f"images_per_identity must be >= 1, got {images_per_identity}")


def _choose_identities(src: Path, identities: int | Sequence[str], seed: int) -> list[str]:
    """The LFW identities to use: ``identities`` drawn with ``seed``, or the names given."""
    all_ids = sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("*.jpg")))
    if isinstance(identities, int):
        if not 3 <= identities <= len(all_ids):
            raise ConfigError(f"identities={identities}: need 3..{len(all_ids)} (one or more per split)")
        order = np.random.default_rng(_item_seed(seed, "identities")).permutation(len(all_ids))
        return [all_ids[i] for i in order[:identities]]
    chosen = list(dict.fromkeys(str(i) for i in identities))
    missing = [i for i in chosen if i not in set(all_ids)]
    if missing or len(chosen) < 3:
        raise ConfigError(f"identities: {missing[:5] or chosen} not usable LFW identities "
                          "(need 3 or more)")
    return chosen


def _split_identities(chosen: list[str], split_fractions: Sequence[float]) -> dict[str, list[str]]:
    """Disjoint train / dev / test identity lists in the given shares."""
    n = len(chosen)
    frac = np.asarray(split_fractions, float) / float(sum(split_fractions))
    n_dev = max(1, int(round(frac[1] * n))) if frac[1] > 0 else 0
    n_test = max(1, int(round(frac[2] * n))) if frac[2] > 0 else 0
    n_train = n - n_dev - n_test
    if frac[0] > 0 and n_train < 1:
        raise ConfigError(f"{n} identities are too few for train/dev/test shares {split_fractions}")
    return {"train": sorted(chosen[:n_train]), "dev": sorted(chosen[n_train:n_train + n_dev]),
            "test": sorted(chosen[n_train + n_dev:])}


def _prepare_spoof_dir(out: Path, params: dict, overwrite: bool) -> dict | None:
    """The finished summary when ``out`` already holds this set; else empty ``out`` for writing."""
    import shutil

    meta_path = out / SYNTHESIS_FILE
    if out.exists() and any(out.iterdir()):
        if meta_path.is_file():
            try:
                old = json.loads(meta_path.read_text())
            except ValueError:
                old = {}
            if old.get("params") == params and old.get("complete"):
                return old
        if not overwrite:
            raise DataError(
                f"{out} is not empty and was not made by synthesize_spoof_set with these parameters; "
                "choose an empty folder or pass overwrite=True"
            )
        for sub in (*_SPLITS, SYNTHESIS_FILE):
            p = out / sub
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return None


def _write_spoof_samples(src: Path, out: Path, split_ids: dict[str, list[str]], species: tuple[str, ...],
                         images_per_identity: int, seed: int, jpeg_quality: int,
                         progress: bool) -> dict[str, Any]:
    """Write one live and one attack JPEG per source photo; returns the per-split counts."""
    import cv2

    from harness.formats.images import read_image

    counts: dict[str, Any] = {}
    jobs = []
    for split in _SPLITS:
        k = 0
        for ident in split_ids[split]:
            for f in sorted((src / ident).glob("*.jpg"))[:images_per_identity]:
                jobs.append((split, ident, f, species[k % len(species)]))
                k += 1
    if progress:
        from tqdm.auto import tqdm

        jobs_iter = tqdm(jobs, desc="synthesize attacks", unit="img", leave=False)
    else:
        jobs_iter = jobs
    enc = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    for split, ident, f, sp in jobs_iter:
        img = read_image(f)
        live_dir = out / split / "live" / ident
        att_dir = out / split / "attack" / sp / ident
        live_dir.mkdir(parents=True, exist_ok=True)
        att_dir.mkdir(parents=True, exist_ok=True)
        att = synthesize_attack(img, sp, np.random.default_rng(_item_seed(seed, sp, ident, f.name)))
        for folder, arr in ((live_dir, img), (att_dir, att)):
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(arr[:, :, ::-1]), enc)
            if not ok:
                raise DataError(f"OpenCV could not encode {f.name} as JPEG")
            (folder / f.name).write_bytes(buf.tobytes())
        c = counts.setdefault(split, {"identities": len(split_ids[split]), "live": 0, "attack": {}})
        c["live"] += 1
        c["attack"][sp] = c["attack"].get(sp, 0) + 1
    return counts


def synthesize_spoof_set(
    lfw_root: str | Path,
    out_dir: str | Path,
    identities: int | Sequence[str] = 60,
    seed: int = 0,
    *,
    split_fractions: tuple[float, float, float] = (0.5, 0.25, 0.25),
    images_per_identity: int = 4,
    species: Sequence[str] = ATTACK_SPECIES,
    jpeg_quality: int = 92,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a synthesized ``spoof`` folder made from LFW identities.

    Layout: ``out_dir/<split>/live/<identity>/<image>.jpg`` and
    ``out_dir/<split>/attack/<species>/<identity>/<image>.jpg`` for the
    splits train / dev / test, which hold **disjoint identities** (drawn
    from the sorted identity list with ``seed``).  Each bona fide photo
    yields one live sample (re-encoded with the same JPEG quality as the
    attacks, so compression is no cue) and one attack; species alternate so
    each split is balanced.  ``synthesis.json`` records the parameters and the
    note that these attacks are synthetic.

    :param lfw_root: ``lfw_home`` or its ``lfw_funneled`` folder.
    :param identities: how many identities to draw, or their names.
    :param seed: everything (identity draw and every attack) follows from it.
    :param split_fractions: shares of identities for train, dev, test.
    :param images_per_identity: at most this many photos per identity (first by name).
    :param overwrite: replace an existing folder made with other parameters.
    :returns: the summary written to ``synthesis.json``.
    :raises DataError: LFW not found, or ``out_dir`` holds other data.
    :raises ConfigError: bad counts, fractions or species.
    """
    src = _lfw_images_dir(Path(lfw_root))
    out = Path(out_dir).expanduser()
    species = tuple(species)
    _check_spoof_params(species, split_fractions, images_per_identity)
    chosen = _choose_identities(src, identities, seed)
    split_ids = _split_identities(chosen, split_fractions)
    params = {"source": str(src), "seed": int(seed), "identities": len(chosen),
              "split_fractions": list(map(float, split_fractions)),
              "images_per_identity": int(images_per_identity), "species": list(species),
              "jpeg_quality": int(jpeg_quality), "version": 1}
    done = _prepare_spoof_dir(out, params, overwrite)
    if done is not None:
        return done
    counts = _write_spoof_samples(src, out, split_ids, species, images_per_identity, seed, jpeg_quality, progress)
    summary = {"params": params, "note": SYNTHETIC_NOTE, "synthetic_attacks": True,
               "split_identities": split_ids, "counts": counts, "complete": True}
    (out / SYNTHESIS_FILE).write_text(json.dumps(summary, indent=1, sort_keys=True))
    return summary
