"""The ``synthetic`` dataset: procedurally rendered, **not real**, face identities.

Every identity is a small set of shape and colour parameters (face outline and
jaw, skin tone, hair tone and hairline, eyes, brows, nose, mouth, optional
glasses / beard / moustache / mole) drawn from a random generator seeded by
``(seed, split, identity)``.  Every image of an identity is drawn from a second
generator seeded by ``(seed, split, identity, image)`` that varies pose
(in-plane roll, yaw, pitch), scale, shift, expression (smile, open mouth,
raised brows, closing eyes), lighting (direction, strength, colour), background,
blur, low resolution, sensor noise and partial occlusion.  So the same key
always renders the same pixels, and nothing but a few parameters per identity
is kept in memory.

Faces are rendered already aligned to the ``arcface_112`` template (eyes,
nose tip and mouth corners near the template's five points, scaled when
``size != 112``), apart from the per-image pose jitter.

Train and test identities come from different seeds (split code 1 and 2), so
they are disjoint.  Verification pairs over the test identities follow the
LFW View 2 shape: ``folds`` folds, each with half genuine and half impostor
pairs, and each identity in only one fold when there are at least two test
identities per fold.

The renderer uses only OpenCV drawing primitives and numpy, single-threaded
(speed and how to measure it: ``docs/synthetic.md``).  The faces are
synthetic, not real people: numbers on them test the pipeline, not a model's
face-recognition accuracy.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from harness.align import get_template
from harness.errors import ConfigError, DataError
from harness.types import Dataset, ImageSet, PairSet

__all__ = ["Identity", "SyntheticFaces", "Variation", "build", "render_face", "sample_identity", "sample_variation"]

#: Bumped whenever the pixels a key renders change (stated in ``info``).
RENDERER_VERSION = 1

_SPLITS = {"train": 1, "test": 2}
_TAG_IDENTITY = 0x1D
_TAG_IMAGE = 0x16
_TAG_PAIRS = 0x9A

_TEMPLATE = get_template("arcface_112").array.astype(np.float32)  # (5, 2) in 112×112
_CX = 56.0  # face centre line in the canonical 112 frame
_PIVOT_Y = 66.0  # pose rotates about (_CX, _PIVOT_Y)
_EYE_Z = 14.0  # depth of the eyes; yaw keeps them near the template

_KEY_RE = re.compile(r"^(train|test)/id(\d+)/img(\d+)$")


# ----------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Identity:
    """Shape and colour parameters of one synthetic person (canonical 112 frame)."""

    face_a: float  # half width of the face
    face_b: float  # half height of the face
    chin_y: float
    jaw: float  # width of the lower face relative to the upper (0.7 … 1.0)
    chin_power: float  # how pointed the chin is
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: int  # 0 short, 1 long, 2 receding, 3 fringe
    hair_volume: float
    hairline_y: float
    hairline_curve: float
    hair_part: float
    eye_dx: float  # eyes further apart (+) or closer (-) than the template
    eye_dy: float
    eye_w: float
    eye_h: float  # height relative to width
    eye_tilt: float  # degrees, outer corner up (+)
    iris: tuple[float, float, float]
    iris_r: float
    brow_gap: float
    brow_thick: float
    brow_angle: float
    brow_arch: float
    brow_len: float
    nose_tip_dy: float
    nose_w: float
    nose_bridge: float
    mouth_w: float
    mouth_dy: float
    lip_up: float
    lip_low: float
    lip: tuple[float, float, float]
    ear_y: float
    ear_size: float
    glasses: int  # 0 none, 1 round, 2 rectangular
    glasses_colour: tuple[float, float, float]
    beard: int  # 0 none, 1 full, 2 goatee, 3 stubble
    moustache: bool
    mole: tuple[float, float] | None

    def vector(self) -> np.ndarray:
        """The parameters as one float vector (for tests and diagnostics)."""
        out: list[float] = []
        for value in self.__dict__.values():
            if value is None:
                out.extend([-1.0, -1.0])
            elif isinstance(value, tuple):
                out.extend(float(v) for v in value)
            else:
                out.append(float(value))
        return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class Variation:
    """What changes between two images of one identity."""

    roll: float  # degrees
    yaw: float  # degrees
    pitch: float  # degrees
    scale: float
    shift: tuple[float, float]
    smile: float
    mouth_open: float
    brow_raise: float
    eye_open: float
    gaze: tuple[float, float]
    light_dir: tuple[float, float, float]
    light_strength: float
    ambient: float
    tint: tuple[float, float, float]
    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    background_angle: float
    clothing: tuple[float, float, float]
    blur: float
    low_res: float  # 1.0 = none, else the factor images are shrunk by
    noise: float
    occlusion: int  # 0 none, 1 bar, 2 patch on the lower face, 3 sunglasses, 4 hand-like blob
    occlusion_params: tuple[float, ...]
    occlusion_colour: tuple[float, float, float]


_SKIN_LIGHT = np.array([250.0, 220.0, 196.0])
_SKIN_DARK = np.array([82.0, 52.0, 36.0])
_HAIR = np.array(
    [
        [20, 17, 16],  # black
        [55, 38, 28],  # dark brown
        [104, 72, 46],  # brown
        [170, 130, 80],  # dark blond
        [222, 190, 130],  # blond
        [150, 62, 30],  # red
        [160, 158, 155],  # grey
    ],
    dtype=np.float64,
)
_IRIS = np.array(
    [[60, 36, 22], [100, 64, 36], [120, 100, 50], [70, 110, 70], [70, 110, 160], [110, 120, 130]],
    dtype=np.float64,
)


def _seed(seed: int) -> int:
    return int(seed) % (1 << 64)


class _Draws:
    """Pre-drawn uniforms and normals consumed one at a time.

    One block draw per image is much faster than dozens of single
    ``Generator`` calls, and the stream is as deterministic.
    """

    def __init__(self, rng: np.random.Generator, n: int = 96) -> None:
        self._u = rng.random(n).tolist()
        self._g = rng.standard_normal(n // 2).tolist()

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        return low + (high - low) * self._u.pop()

    def normal(self, mean: float, sd: float, low: float, high: float) -> float:
        return min(high, max(low, mean + sd * self._g.pop()))

    def colour_noise(self, sd: float) -> np.ndarray:
        return np.array([self._g.pop(), self._g.pop(), self._g.pop()]) * sd

    def choice(self, p: tuple[float, ...]) -> int:
        v, acc = self._u.pop(), 0.0
        for i, pi in enumerate(p):
            acc += pi
            if v < acc:
                return i
        return len(p) - 1

    def integer(self, n: int) -> int:
        return min(n - 1, int(self._u.pop() * n))


_GLASSES = ((20, 20, 20), (120, 80, 40), (170, 170, 180), (120, 20, 30))


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one identity's parameters."""
    d = _Draws(rng)
    u = d.uniform
    t = u() ** 1.2
    skin = (1 - t) * _SKIN_LIGHT + t * _SKIN_DARK + d.colour_noise(6.0)
    hair = _HAIR[d.choice((0.26, 0.22, 0.18, 0.1, 0.08, 0.06, 0.1))] * u(0.8, 1.2) + d.colour_noise(5.0)
    iris = _IRIS[d.integer(len(_IRIS))] * u(0.8, 1.2)
    lip = 0.55 * skin + 0.45 * np.array([190.0, 70.0, 80.0]) * u(0.6, 1.1)
    return Identity(
        face_a=u(35.0, 46.0),
        face_b=u(47.0, 57.0),
        chin_y=u(101.0, 113.0),
        jaw=u(0.68, 1.0),
        chin_power=u(1.4, 3.2),
        skin=_colour(skin),
        hair=_colour(hair),
        hair_style=d.choice((0.42, 0.3, 0.12, 0.16)),
        hair_volume=u(2.0, 13.0),
        hairline_y=u(18.0, 31.0),
        hairline_curve=u(-0.006, 0.012),
        hair_part=u(-6.0, 6.0),
        eye_dx=u(-3.0, 3.0),
        eye_dy=u(-2.0, 2.0),
        eye_w=u(6.2, 9.5),
        eye_h=u(0.34, 0.58),
        eye_tilt=u(-9.0, 9.0),
        iris=_colour(iris),
        iris_r=u(0.38, 0.5),
        brow_gap=u(8.0, 14.0),
        brow_thick=u(1.6, 4.6),
        brow_angle=u(-13.0, 13.0),
        brow_arch=u(-0.5, 4.5),
        brow_len=u(14.0, 22.0),
        nose_tip_dy=u(-4.0, 3.5),
        nose_w=u(5.0, 10.5),
        nose_bridge=u(2.0, 4.5),
        mouth_w=u(10.5, 17.5),
        mouth_dy=u(-3.5, 3.5),
        lip_up=u(1.2, 4.0),
        lip_low=u(1.8, 5.5),
        lip=_colour(lip),
        ear_y=u(54.0, 66.0),
        ear_size=u(0.8, 1.25),
        glasses=d.choice((0.78, 0.11, 0.11)),
        glasses_colour=_colour(_GLASSES[d.integer(len(_GLASSES))]),
        beard=d.choice((0.72, 0.1, 0.08, 0.1)),
        moustache=u() < 0.18,
        mole=(u(30.0, 82.0), u(55.0, 100.0)) if u() < 0.3 else None,
    )


def sample_variation(rng: np.random.Generator) -> Variation:
    """Draw the per-image nuisance parameters."""
    d = _Draws(rng)
    u = d.uniform
    az = u(0.0, 2 * math.pi)
    el = u(0.35, 1.3)  # elevation of the light above the image plane
    light = (math.cos(az) * math.cos(el), math.sin(az) * math.cos(el), math.sin(el))
    bg1 = np.array([u(20, 235), u(20, 235), u(20, 235)])
    bg2 = bg1 + d.colour_noise(50.0)
    return Variation(
        roll=d.normal(0.0, 6.0, -15.0, 15.0),
        yaw=d.normal(0.0, 11.0, -30.0, 30.0),
        pitch=d.normal(0.0, 6.0, -15.0, 15.0),
        scale=d.normal(1.0, 0.05, 0.88, 1.12),
        shift=(d.normal(0.0, 1.8, -5.0, 5.0), d.normal(0.0, 1.8, -5.0, 5.0)),
        smile=u(-0.3, 1.0),
        mouth_open=u(0.15, 1.0) if u() < 0.3 else 0.0,
        brow_raise=u(-1.0, 1.0),
        eye_open=u(0.05, 0.3) if u() < 0.06 else u(0.65, 1.1),
        gaze=(u(-0.35, 0.35), u(-0.2, 0.2)),
        light_dir=light,
        light_strength=u(0.15, 0.7),
        ambient=u(0.7, 1.08),
        tint=(u(0.87, 1.12), u(0.93, 1.06), u(0.85, 1.12)),
        background=(_colour(bg1), _colour(bg2)),
        background_angle=u(0, 2 * math.pi),
        clothing=(u(15, 230), u(15, 230), u(15, 230)),
        blur=u(0.3, 1.6) if u() < 0.45 else 0.0,
        low_res=u(0.35, 0.7) if u() < 0.2 else 1.0,
        noise=u(0.0, 9.0) if u() < 0.7 else 0.0,
        occlusion=d.choice((0.72, 0.08, 0.08, 0.06, 0.06)),
        occlusion_params=tuple(u() for _ in range(6)),
        occlusion_colour=(u(0, 255), u(0, 255), u(0, 255)),
    )


def _colour(c: Any) -> tuple[float, float, float]:
    c = np.clip(np.asarray(c, dtype=np.float64), 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


# ------------------------------------------------------------------ rendering
class _Canvas:
    """Draws canonical-frame shapes through the per-image pose onto one image.

    A point (x, y) at depth z of the canonical 112 frame is turned about the
    vertical axis (yaw) and the horizontal axis (pitch) — keeping the eyes'
    depth fixed, so yawed faces stay roughly aligned as real aligned crops do
    — then rolled, scaled and shifted about (56, 66), and scaled to the image
    size.  The whole map is linear, so it is one 2×4 matrix.
    """

    def __init__(self, size: int, var: Variation) -> None:
        self.size = size
        self.img = np.empty((size, size, 3), dtype=np.uint8)
        self.k = size / 112.0
        yaw, pitch, roll = (math.radians(v) for v in (var.yaw, var.pitch, var.roll))
        s = var.scale * self.k
        rot = np.array([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]]) * s
        # (x, y, z, 1) -> (x1, y1) before roll: x1 = (x-CX)cos(yaw) + (z-EZ)sin(yaw), ...
        pose = np.array([
            [math.cos(yaw), 0.0, math.sin(yaw), -_CX * math.cos(yaw) - _EYE_Z * math.sin(yaw)],
            [0.0, math.cos(pitch), -math.sin(pitch), -_PIVOT_Y * math.cos(pitch) + _EYE_Z * math.sin(pitch)],
        ])
        m = rot @ pose
        m[:, 3] += [(_CX + var.shift[0]) * self.k, (_PIVOT_Y + var.shift[1]) * self.k]
        self.m = m  # image px = m @ (x, y, z, 1)
        self._lin = np.ascontiguousarray(m[:, :2].T)  # (2, 2): pts @ _lin
        self._lin16 = self._lin * 16.0  # fixed point for cv2's shift=4
        self.px_scale = s  # canonical px -> image px
        self._ops: list[tuple[int, Any, Any, Any, int]] = []

    def project(self, pts: np.ndarray, z: Any = 0.0) -> np.ndarray:
        """Canonical (N, 2) points at depth ``z`` (scalar or (N,)) -> image pixels (N, 2)."""
        out = np.asarray(pts, dtype=np.float64) @ self._lin + self.m[:, 3]
        return out + np.outer(np.broadcast_to(z, (len(out),)), self.m[:, 2])

    # Drawing is recorded, then every point of the image is projected in one
    # matrix product and drawn in order (numpy's per-call cost dominates otherwise).
    def poly(self, pts: np.ndarray, colour: Any, z: Any = 0.0) -> None:
        self._ops.append((0, pts, z, colour, 0))

    def line(self, pts: np.ndarray, colour: Any, width: float, z: Any = 0.0, closed: bool = False) -> None:
        self._ops.append((2 if closed else 1, pts, z, colour, max(1, int(round(width * self.px_scale)))))

    def disc(self, centre: tuple[float, float], radius: float, colour: Any, z: float = 0.0) -> None:
        r = int(round(radius * self.px_scale * 16.0))
        if r > 0:
            self._ops.append((3, (centre,), z, colour, r))

    def flush(self) -> None:
        """Draw everything recorded so far, in order."""
        ops, self._ops = self._ops, []
        if not ops:
            return
        counts = [len(op[1]) for op in ops]
        pts = np.concatenate([np.asarray(op[1], dtype=np.float64).reshape(-1, 2) for op in ops])
        scalar = [isinstance(op[2], (int, float)) for op in ops]
        z = np.repeat(np.array([op[2] if sc else 0.0 for op, sc in zip(ops, scalar)]), counts)
        if not all(scalar):
            start = 0
            for op, n, sc in zip(ops, counts, scalar):
                if not sc:
                    z[start:start + n] = op[2]
                start += n
        fixed = np.rint(pts @ self._lin16 + np.outer(z, self.m[:, 2] * 16.0) + self.m[:, 3] * 16.0)
        fixed = fixed.astype(np.int32)
        start = 0
        img, aa = self.img, cv2.LINE_AA
        for (kind, _pts, _z, colour, extra), n in zip(ops, counts):
            p = fixed[start:start + n]
            start += n
            c = (int(colour[0]), int(colour[1]), int(colour[2]))
            if kind == 0:
                cv2.fillPoly(img, [p], c, aa, 4)
            elif kind == 3:
                cv2.circle(img, (int(p[0, 0]), int(p[0, 1])), extra, c, -1, aa, 4)
            else:
                cv2.polylines(img, [p], kind == 2, c, extra, aa, 4)


_ARCS: dict[tuple[int, float, float], np.ndarray] = {}


def _arc(n: int, t0: float, t1: float) -> np.ndarray:
    """(n, 2) cos, sin of n angles from t0 to t1 (a full turn excludes the end)."""
    key = (n, t0, t1)
    unit = _ARCS.get(key)
    if unit is None:
        full = (t1 - t0) >= 2 * math.pi - 1e-9
        t = np.linspace(t0, t1, n, endpoint=not full)
        unit = _ARCS[key] = np.stack([np.cos(t), np.sin(t)], axis=1)
    return unit


def _ellipse(cx: float, cy: float, a: float, b: float, angle: float = 0.0, n: int = 28,
             t0: float = 0.0, t1: float = 2 * math.pi) -> np.ndarray:
    """Points of an ellipse (or an arc of it, from angle t0 to t1) rotated by ``angle`` degrees."""
    pts = _arc(n, t0, t1) * (a, b)
    if angle:
        ca, sa = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        pts = pts @ np.array([[ca, sa], [-sa, ca]])
    return pts + (cx, cy)


def _rotate(pts: np.ndarray, angle: float, centre: tuple[float, float]) -> np.ndarray:
    ca, sa = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return (np.asarray(pts, dtype=np.float64) - centre) @ np.array([[ca, sa], [-sa, ca]]) + centre


def _mix(c1: Any, c2: Any, w: float) -> tuple[float, float, float]:
    return tuple((1 - w) * a + w * b for a, b in zip(c1, c2))  # type: ignore[return-value]


def _scale(c: Any, f: float) -> tuple[float, float, float]:
    return tuple(min(255.0, v * f) for v in c)  # type: ignore[return-value]


_GRIDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y image coordinates of the cell centres of an n × n grid over the image."""
    g = _GRIDS.get(n * 100000 + size)
    if g is None:
        ax = (np.arange(n, dtype=np.float64) + 0.5) * (size / n)
        g = _GRIDS[n * 100000 + size] = (np.tile(ax[None, :], (n, 1)), np.tile(ax[:, None], (1, n)))
    return g


def _face_outline(idt: Identity, n: int = 44) -> tuple[np.ndarray, float]:
    """Outline of the face (canonical) and the y of its centre."""
    cy = idt.chin_y - idt.face_b
    unit = _arc(n, 0.0, 2 * math.pi)
    c, s = unit[:, 0], unit[:, 1]
    lower = np.clip(s, 0, 1)
    # The lower half narrows towards the jaw and, near the chin, to a point.
    width = idt.face_a * (1 - (1 - idt.jaw) * lower ** 1.3)
    x = _CX + width * np.sign(c) * np.abs(c) ** (1 + 0.35 * lower ** idt.chin_power)
    y = cy + idt.face_b * s
    return np.stack([x, y], axis=1), cy


class _Layers(list):
    """Records polygons (canonical points, colour — None for the clothing colour — and depth)."""

    def poly(self, pts: np.ndarray, colour: Any, z: float = 0.0) -> None:
        self.append((np.ascontiguousarray(pts, dtype=np.float64), colour, float(z)))


@functools.lru_cache(maxsize=512)
def _head_layers(idt: Identity) -> tuple[tuple[np.ndarray, Any, float], ...]:
    """Clothing, neck, hair, ears, face and beard of ``idt`` in drawing order.

    They depend only on the identity, so they are built once per identity
    (a few kB each; at most 512 identities are kept).
    """
    lay = _Layers()
    skin = idt.skin
    skin_shade = _scale(skin, 0.8)
    hair = idt.hair
    hv = idt.hair_volume
    outline, fcy = _face_outline(idt)
    top_y = fcy - idt.face_b
    eye_y = float(_TEMPLATE[0, 1] + _TEMPLATE[1, 1]) / 2 + idt.eye_dy
    mouth_y = float(_TEMPLATE[3, 1] + _TEMPLATE[4, 1]) / 2 + idt.mouth_dy

    # Clothing and neck.
    neck_w = idt.face_a * idt.jaw * 0.62
    lay.poly(_ellipse(_CX, 150.0, 75.0, 38.0, n=24), None, z=-10)
    lay.poly(np.array([[_CX - neck_w, fcy], [_CX + neck_w, fcy], [_CX + neck_w * 1.1, 125.0],
                      [_CX - neck_w * 1.1, 125.0]]), _scale(skin, 0.7), z=-8)

    # Hair behind the head (long hair falls to the shoulders).
    if idt.hair_style == 1:
        back = np.concatenate([
            _ellipse(_CX, fcy, idt.face_a + hv, idt.face_b + hv, t0=math.pi, t1=2 * math.pi, n=20),
            [[_CX + idt.face_a + hv + 4, 125.0], [_CX - idt.face_a - hv - 4, 125.0]],
        ])
        lay.poly(back, _scale(hair, 0.75), z=-12)
    elif idt.hair_style != 2:
        lay.poly(_ellipse(_CX, fcy - 3, idt.face_a + hv * 0.5, idt.face_b + hv * 0.8, n=28),
                _scale(hair, 0.8), z=-12)

    # Ears.
    for side in (-1, 1):
        ex = _CX + side * (idt.face_a + 0.5)
        lay.poly(_ellipse(ex, idt.ear_y, 5.0 * idt.ear_size, 9.5 * idt.ear_size, angle=side * 10, n=16),
                skin_shade, z=-6)
        lay.poly(_ellipse(ex + side * 1.2, idt.ear_y, 2.4 * idt.ear_size, 6.0 * idt.ear_size, angle=side * 10,
                         n=12), _scale(skin, 0.62), z=-6)

    # Face.
    lay.poly(outline, skin, z=0)
    lay.poly(_ellipse(_CX, eye_y + 16, idt.face_a * 0.45, 12.0, n=20), _mix(skin, (255, 235, 225), 0.05), z=10)

    # Beard (under the mouth, over the face).
    if idt.beard:
        beard_col = _mix(skin, hair, 0.45 if idt.beard == 3 else 0.85)
        if idt.beard in (1, 3):
            pts = outline[outline[:, 1] > idt.ear_y + 4]
            pts = pts[np.argsort(np.arctan2(pts[:, 1] - fcy, pts[:, 0] - _CX))]
            upper = np.array([[_CX - idt.mouth_w - 5, mouth_y - 6], [_CX, mouth_y - 2],
                              [_CX + idt.mouth_w + 5, mouth_y - 6]])
            lay.poly(np.concatenate([pts, upper]), beard_col, z=6)
        else:
            lay.poly(_ellipse(_CX, mouth_y + 10, idt.mouth_w * 0.7, 9.0, n=20), beard_col, z=12)

    # Hair in front: the cap above the hairline (receding: tufts at the sides).
    if idt.hair_style != 2:
        xs_h = np.linspace(_CX - idt.face_a - hv * 0.6, _CX + idt.face_a + hv * 0.6, 17)
        if idt.hair_style == 3:  # a fringe down towards the brows
            line_y = eye_y - idt.brow_gap - 6 + 1.5 * np.cos((xs_h - _CX) * (0.9 + 0.02 * idt.hair_part))
        else:
            line_y = top_y + idt.hairline_y + idt.hairline_curve * (xs_h - _CX - idt.hair_part) ** 2
        line_y = np.minimum(line_y, idt.ear_y - 6)
        cap = _ellipse(_CX, fcy - 3, idt.face_a + hv * 0.6, idt.face_b + hv, t0=math.pi, t1=2 * math.pi, n=20)
        lay.poly(np.concatenate([cap, np.stack([xs_h[::-1], line_y[::-1]], axis=1)]), hair, z=2)
        if idt.hair_style == 1:  # strands along the cheeks
            for side in (-1, 1):
                x0 = _CX + side * (idt.face_a + hv * 0.6)
                strand = np.array([[x0, line_y[0]], [x0 - side * 7, line_y[0] + 6],
                                   [x0 - side * 4, 112.0], [x0 + side * 4, 120.0]])
                lay.poly(strand, hair, z=-2)
    else:
        # Hair left above the ears: a band that follows the side of the head.
        ty = np.linspace(top_y + 20 + idt.hairline_y * 0.3, idt.ear_y - 2, 6)
        half_w = idt.face_a * np.sqrt(np.clip(1 - ((ty - fcy) / idt.face_b) ** 2, 0, 1))
        thick = np.linspace(1.0, 6.0, 6) * (0.6 + hv / 13)
        for side in (-1, 1):
            outer = np.stack([_CX + side * (half_w + 1.5), ty], 1)
            inner = np.stack([_CX + side * (half_w - thick), ty], 1)
            lay.poly(np.concatenate([outer, inner[::-1]]), hair, z=0)

    return tuple(lay)


_T12 = np.linspace(0.0, math.pi, 12)
_COS12, _SIN12 = np.cos(_T12), np.sin(_T12)
_TB = np.linspace(0.0, 1.0, 9)
_TM = np.linspace(-1.0, 1.0, 13)


@dataclass(frozen=True)
class _FacePoints:
    """Where an identity's features sit in canonical (112-pixel template) coordinates."""

    fcy: float
    eye_y: float
    eyes: list
    mouth_y: float
    nose_tip: tuple


def _face_points(idt: Identity) -> _FacePoints:
    eye_y = float(_TEMPLATE[0, 1] + _TEMPLATE[1, 1]) / 2 + idt.eye_dy
    eyes = [(float(_TEMPLATE[0, 0]) - idt.eye_dx, eye_y), (float(_TEMPLATE[1, 0]) + idt.eye_dx, eye_y)]
    mouth_y = float(_TEMPLATE[3, 1] + _TEMPLATE[4, 1]) / 2 + idt.mouth_dy
    nose_tip = (_CX, float(_TEMPLATE[2, 1]) + idt.nose_tip_dy)
    return _FacePoints(idt.chin_y - idt.face_b, eye_y, eyes, mouth_y, nose_tip)


def _paint_background(cv: "_Canvas", var: Variation, size: int, gx: np.ndarray, gy: np.ndarray) -> None:
    """A linear gradient between two colours."""
    ca, sa = math.cos(var.background_angle), math.sin(var.background_angle)
    ramp = np.clip(((gx - size / 2) * ca + (gy - size / 2) * sa) / size + 0.5, 0, 1)[..., None]
    bg1, bg2 = np.asarray(var.background[0]), np.asarray(var.background[1])
    bg = (bg1 + (bg2 - bg1) * ramp).astype(np.float32)
    cv.img[:] = cv2.resize(bg, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.uint8)


def _draw_eyes(cv: "_Canvas", idt: Identity, var: Variation, fp: _FacePoints) -> None:
    """Eyes (white, iris, pupil, highlight, lids) and brows."""
    skin = idt.skin
    lid_col = _scale(skin, 0.86)
    brow_col = _scale(idt.hair, 0.75)
    for side, (ex, ey) in zip((-1, 1), fp.eyes):
        w, h = idt.eye_w, idt.eye_w * idt.eye_h * var.eye_open
        tilt = -side * idt.eye_tilt  # raises the outer corner for positive tilt
        up = _rotate(np.stack([ex - w * _COS12, ey - h * _SIN12], axis=1), tilt, (ex, ey))
        lo = _rotate(np.stack([ex + w * _COS12, ey + 0.6 * h * _SIN12], axis=1), tilt, (ex, ey))
        if h > 0.8:
            cv.poly(np.concatenate([up, lo]), (236, 232, 226), z=_EYE_Z)
            ir = idt.eye_w * idt.iris_r
            ic = (ex + var.gaze[0] * w * 0.5, ey + var.gaze[1] * h)
            cv.disc(ic, ir, idt.iris, z=_EYE_Z)
            cv.disc(ic, ir * 0.45, (15, 12, 12), z=_EYE_Z)
            cv.disc((ic[0] - ir * 0.3, ic[1] - ir * 0.35), ir * 0.2, (250, 250, 250), z=_EYE_Z)
            # Lids cover whatever of the iris lies outside the almond.
            cover = np.array([[ex + 1.3 * w, ey - h - ir - 3], [ex - 1.3 * w, ey - h - ir - 3]])
            cv.poly(np.concatenate([up, _rotate(cover, tilt, (ex, ey))]), lid_col, z=_EYE_Z)
            cover = np.array([[ex - 1.3 * w, ey + 0.6 * h + ir + 3], [ex + 1.3 * w, ey + 0.6 * h + ir + 3]])
            cv.poly(np.concatenate([lo, _rotate(cover, tilt, (ex, ey))]), skin, z=_EYE_Z)
        cv.line(up, (35, 25, 22), 1.3, z=_EYE_Z)
        cv.line(lo[2:-2], _scale(skin, 0.7), 0.6, z=_EYE_Z)
        # Brow: an arched band, thick at the inner end.
        xb = ex - side * idt.brow_len * 0.45 + side * idt.brow_len * _TB
        yb = (ey - idt.brow_gap - 2.5 * var.brow_raise - idt.brow_arch * np.sin(_TB * math.pi)
              - (_TB - 0.5) * idt.brow_len * math.tan(math.radians(idt.brow_angle)))
        half = idt.brow_thick * (1.1 - 0.6 * _TB) / 2
        band = np.concatenate([np.stack([xb, yb - half], 1), np.stack([xb, yb + half], 1)[::-1]])
        cv.poly(band, brow_col, z=_EYE_Z + 2)


def _draw_nose(cv: "_Canvas", idt: Identity, var: Variation, fp: _FacePoints) -> None:
    """Bridge shadow on the side away from the light, wings, nostrils, tip highlight."""
    skin = idt.skin
    nx, ny = fp.nose_tip
    shadow = -1 if var.light_dir[0] > 0 else 1
    bridge = np.array([[_CX + shadow * idt.nose_bridge, fp.eye_y + 2],
                       [_CX + shadow * idt.nose_bridge * 1.1, ny - 8],
                       [nx + shadow * idt.nose_w * 0.7, ny - 1]])
    cv.line(bridge, _scale(skin, 0.8), 1.4, z=np.array([_EYE_Z + 4, 22.0, 24.0]))
    cv.line(_ellipse(nx, ny, idt.nose_w, 3.5, t0=0.1 * math.pi, t1=0.9 * math.pi, n=10), _scale(skin, 0.7), 1.2,
            z=24.0)
    for side in (-1, 1):
        cv.poly(_ellipse(nx + side * idt.nose_w * 0.45, ny + 1.8, 1.8, 1.0, n=10), _scale(skin, 0.45), z=23.0)
    cv.poly(_ellipse(nx, ny - 2.5, idt.nose_w * 0.35, 2.2, n=10), _mix(skin, (255, 255, 255), 0.12), z=26.0)


def _draw_mouth(cv: "_Canvas", idt: Identity, var: Variation, fp: _FacePoints) -> tuple[np.ndarray, np.ndarray]:
    """Lips (corners rise with a smile; an open mouth shows teeth) and a moustache; returns the
    x and mid-line y of the mouth's sample points (its corners are landmarks)."""
    mw = idt.mouth_w * (1 + 0.08 * var.smile)
    lift = 4.0 * var.smile
    opening = 9.0 * var.mouth_open
    bulge = 1 - _TM ** 2
    mx = _CX + mw * _TM
    mid = fp.mouth_y + lift * (0.3 - _TM ** 2)
    up_in = mid - opening * 0.35 * bulge
    low_in = mid + opening * 0.65 * bulge
    up_out = up_in - idt.lip_up * np.sqrt(bulge) - 0.8 * bulge * np.cos(_TM * 6) ** 2
    low_out = low_in + idt.lip_low * np.sqrt(1 - _TM ** 4)
    if idt.moustache:
        cv.poly(np.concatenate([np.stack([_CX + (mw + 2) * _TM, up_out - 1], 1),
                                np.stack([mx[::-1], up_out[::-1] - 6 + 2 * np.abs(_TM)], 1)]),
                _scale(idt.hair, 0.9), z=20)
    if opening > 0.5:
        cv.poly(np.concatenate([np.stack([mx, up_in], 1), np.stack([mx[::-1], low_in[::-1]], 1)]),
                (45, 18, 22), z=18)
        teeth_x = _CX + 0.8 * mw * _TM
        cv.poly(np.concatenate([np.stack([teeth_x, up_in], 1),
                                np.stack([teeth_x[::-1], up_in[::-1] + opening * 0.3], 1)]),
                (238, 234, 222), z=18)
    cv.poly(np.concatenate([np.stack([mx, up_out], 1), np.stack([mx[::-1], up_in[::-1]], 1)]),
            _scale(idt.lip, 0.9), z=18)
    cv.poly(np.concatenate([np.stack([mx, low_in], 1), np.stack([mx[::-1], low_out[::-1]], 1)]),
            idt.lip, z=18)
    cv.line(np.stack([mx, (up_in + low_in) / 2 if opening <= 0.5 else up_in], 1), _scale(idt.lip, 0.55), 0.8,
            z=18)
    return mx, mid


def _draw_glasses(cv: "_Canvas", idt: Identity, fp: _FacePoints) -> None:
    """Round or rectangular rims, a bridge and the temples."""
    gc = idt.glasses_colour
    rw = idt.eye_w + 5
    eyes, eye_y = fp.eyes, fp.eye_y
    for ex, ey in eyes:
        if idt.glasses == 1:
            cv.line(_ellipse(ex, ey + 1, rw, idt.eye_w * 0.85 + 2, n=24), gc, 1.5, z=_EYE_Z + 6, closed=True)
        else:
            rh = idt.eye_w * 0.65 + 2
            cv.line(np.array([[ex - rw, ey - rh], [ex + rw, ey - rh], [ex + rw, ey + rh], [ex - rw, ey + rh]]),
                    gc, 1.8, z=_EYE_Z + 6, closed=True)
    cv.line(np.array([[eyes[0][0] + rw, eye_y - 1], [_CX, eye_y - 3], [eyes[1][0] - rw, eye_y - 1]]), gc, 1.5,
            z=_EYE_Z + 8)
    for side, (ex, ey) in zip((-1, 1), eyes):
        cv.line(np.array([[ex + side * rw, ey - 1], [_CX + side * (idt.face_a + 1), ey - 3]]), gc, 1.5,
                z=np.array([_EYE_Z + 6, 0.0]))


def _draw_occlusion(cv: "_Canvas", idt: Identity, var: Variation, fp: _FacePoints) -> None:
    """Partial occlusion: a bar, a mask over the lower face, sunglasses or a hand-like blob."""
    p = var.occlusion_params
    oc = var.occlusion_colour
    eyes, eye_y = fp.eyes, fp.eye_y
    if var.occlusion == 1:  # a bar across the face
        y0, half = 30 + 70 * p[0], 4 + 6 * p[2]
        bar = np.array([[-20, y0 - half], [132, y0 - half], [132, y0 + half], [-20, y0 + half]])
        cv.poly(_rotate(bar, (p[1] - 0.5) * 60, (_CX, y0)), oc, z=40)
    elif var.occlusion == 2:  # a mask or scarf over the lower face
        y0 = fp.mouth_y - 14 + 8 * p[0]
        cv.poly(np.array([[_CX - idt.face_a - 3, y0 + 4], [_CX, y0 - 4 * p[1]], [_CX + idt.face_a + 3, y0 + 4],
                          [_CX + idt.face_a * idt.jaw + 6, 125], [_CX - idt.face_a * idt.jaw - 6, 125]]), oc, z=30)
    elif var.occlusion == 3:  # sunglasses
        dark = _scale(oc, 0.25)
        for ex, ey in eyes:
            cv.poly(_ellipse(ex, ey + 1, idt.eye_w + 5, idt.eye_w * 0.7 + 3, n=20), dark, z=_EYE_Z + 7)
        cv.line(np.array([eyes[0], (_CX, eye_y - 2), eyes[1]]), dark, 2.0, z=_EYE_Z + 8)
    elif var.occlusion == 4:  # a hand-like blob from one side
        side = -1 if p[0] < 0.5 else 1
        cv.poly(_ellipse(_CX + side * (30 + 20 * p[2]), 55 + 45 * p[1], 16 + 8 * p[3], 24, angle=side * 30 * p[4],
                         n=20), _mix(idt.skin, oc, 0.3 * p[5]), z=40)


def _lighting_gain(cv: "_Canvas", idt: Identity, var: Variation, fp: _FacePoints, size: int,
                   gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Lambertian shading of a head ellipsoid, a plain gradient elsewhere, and a colour
    tint — one smooth gain field per channel, (size, size, 3) float32."""
    centre = cv.project(np.array([[_CX, fp.fcy]]), 0.0)[0]
    a_px = (idt.face_a + 4) * cv.px_scale
    b_px = (idt.face_b + 6) * cv.px_scale
    rr = math.radians(var.roll)
    dx, dy = gx - centre[0], gy - centre[1]
    uu = (dx * math.cos(rr) + dy * math.sin(rr)) / a_px
    vv = (-dx * math.sin(rr) + dy * math.cos(rr)) / b_px
    r2 = uu * uu + vv * vv
    nz = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    lx, ly, lz = var.light_dir
    lam = np.clip(uu * lx + vv * ly + nz * lz, 0.0, None)
    head = var.ambient * ((1 - var.light_strength) + var.light_strength * 1.5 * lam)
    flat = var.ambient * (1 + 0.5 * var.light_strength * ((gx / size - 0.5) * lx + (gy / size - 0.5) * ly))
    wgt = np.clip((r2 - 0.8) * 3.0, 0.0, 1.0)
    gain = ((head * (1 - wgt) + flat * wgt)[..., None] * np.asarray(var.tint)).astype(np.float32)
    return cv2.resize(gain, (size, size), interpolation=cv2.INTER_LINEAR)


def _degrade(out: np.ndarray, var: Variation, size: int, k: float,
             noise_rng: np.random.Generator | None) -> np.ndarray:
    """Blur, low resolution and sensor noise."""
    if var.blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), var.blur * k)
    if var.low_res < 1.0:
        small = max(8, int(round(size * var.low_res)))
        out = cv2.resize(cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA), (size, size),
                         interpolation=cv2.INTER_LINEAR)
    if var.noise > 0:
        rng = noise_rng if noise_rng is not None else np.random.default_rng(0)
        # Uniform noise with standard deviation var.noise (bytes are the fastest draw).
        raw = np.frombuffer(rng.bytes(out.size), dtype=np.uint8).reshape(out.shape)
        out = cv2.scaleAdd(raw.astype(np.float32), var.noise / 73.9, out) - np.float32(127.5 * var.noise / 73.9)
    return out


def render_face(idt: Identity, var: Variation, size: int = 112,
                noise_rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render one image of identity ``idt`` under ``var``.

    Background, head, eyes, nose, mouth, mole, glasses and occlusion are
    painted back to front on a posed canvas; then lighting and degradations.

    :param noise_rng: draws the sensor noise (default: a fixed generator).
    :returns: (RGB uint8 image of shape (size, size, 3), (5, 2) float32
        landmarks in pixels: left eye, right eye, nose tip, left and right
        mouth corner — image left/right, as :class:`harness.types.Detections`).
    """
    cv = _Canvas(size, var)
    low = max(8, size // 8)  # smooth fields are computed on a coarse grid and resized
    gx, gy = _grid(low, size)
    _paint_background(cv, var, size, gx, gy)
    fp = _face_points(idt)
    # The head up to the eyes: the same canonical polygons for every image of the identity.
    for pts, colour, z in _head_layers(idt):
        cv.poly(pts, var.clothing if colour is None else colour, z=z)
    _draw_eyes(cv, idt, var, fp)
    _draw_nose(cv, idt, var, fp)
    mx, mid = _draw_mouth(cv, idt, var, fp)
    if idt.mole is not None:
        cv.disc(idt.mole, 1.3, _scale(idt.skin, 0.45), z=10)
    if idt.glasses:
        _draw_glasses(cv, idt, fp)
    _draw_occlusion(cv, idt, var, fp)
    cv.flush()
    # Where the five template points went.
    lm = cv.project(np.array([fp.eyes[0], fp.eyes[1], fp.nose_tip, (mx[0], mid[0]), (mx[-1], mid[-1])]),
                    np.array([_EYE_Z, _EYE_Z, 26.0, 16.0, 16.0])).astype(np.float32)
    out = _degrade(cv.img * _lighting_gain(cv, idt, var, fp, size, gx, gy), var, size, cv.k, noise_rng)
    return np.clip(out, 0, 255).astype(np.uint8), lm


# -------------------------------------------------------------------- dataset
class SyntheticFaces(Dataset):
    """Rendered identities, split into disjoint train and test people.

    Images render on demand from their key (``"train/id0003/img07"``); the
    same key always gives the same pixels.  Only the identity parameters (a
    few dozen floats per person) are cached.
    """

    name = "synthetic"

    def __init__(self, *, seed: int = 0, train_identities: int = 40, test_identities: int = 20,
                 images_per_identity: int = 16, size: int = 112, pairs_per_fold: int = 60,
                 folds: int = 10) -> None:
        checks = [
            ("train_identities", train_identities, 1),
            ("test_identities", test_identities, 2),
            ("images_per_identity", images_per_identity, 2),
            ("size", size, 32),
            ("pairs_per_fold", pairs_per_fold, 2),
            ("folds", folds, 2),
        ]
        for field_name, value, low in checks:
            if int(value) < low:
                raise ConfigError(
                    f"dataset 'synthetic': {field_name}={value} is too small; it must be at least {low} "
                    f"(set it with -o synthetic.{field_name}=N)"
                )
        self.seed = int(seed)
        self.counts = {"train": int(train_identities), "test": int(test_identities)}
        self.images_per_identity = int(images_per_identity)
        self.size = int(size)
        self.pairs_per_fold = int(pairs_per_fold)
        self.folds = int(folds)
        self._identities: dict[tuple[str, int], Identity] = {}
        self._id_width = max(4, len(str(max(self.counts.values()) - 1)))
        self._img_width = max(2, len(str(self.images_per_identity - 1)))

    # -- parameters and pixels
    def identity(self, split: str, index: int) -> Identity:
        """The parameters of identity ``index`` of ``split`` (cached; tiny)."""
        self._check(split, index, 0)
        key = (split, int(index))
        idt = self._identities.get(key)
        if idt is None:
            rng = np.random.default_rng([_seed(self.seed), _SPLITS[split], int(index), _TAG_IDENTITY])
            idt = self._identities[key] = sample_identity(rng)
        return idt

    def variation(self, split: str, index: int, image: int) -> Variation:
        return sample_variation(self._image_rng(split, index, image))

    def _image_rng(self, split: str, index: int, image: int) -> np.random.Generator:
        return np.random.default_rng([_seed(self.seed), _SPLITS[split], int(index), int(image), _TAG_IMAGE])

    def render_with_landmarks(self, split: str, index: int, image: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``image`` of identity ``index`` and its five landmarks (x, y in pixels)."""
        self._check(split, index, image)
        rng = self._image_rng(split, index, image)
        var = sample_variation(rng)
        return render_face(self.identity(split, index), var, self.size, noise_rng=rng)

    def render(self, split: str, index: int, image: int) -> np.ndarray:
        return self.render_with_landmarks(split, index, image)[0]

    # -- keys
    def key(self, split: str, index: int, image: int) -> str:
        return f"{split}/id{index:0{self._id_width}d}/img{image:0{self._img_width}d}"

    def parse_key(self, key: str) -> tuple[str, int, int]:
        m = _KEY_RE.match(key)
        if m is None:
            raise DataError(
                f"dataset 'synthetic': {key!r} is not a synthetic image key; expected "
                "'<train|test>/id<N>/img<M>' such as 'train/id0003/img07'"
            )
        split, index, image = m.group(1), int(m.group(2)), int(m.group(3))
        self._check(split, index, image)
        return split, index, image

    def load(self, key: str) -> np.ndarray:
        """The loader of both image sets: render the image a key names."""
        return self.render(*self.parse_key(key))

    def _check(self, split: str, index: int, image: int) -> None:
        if split not in self.counts:
            raise DataError(f"dataset 'synthetic': unknown split {split!r}; expected 'train' or 'test'")
        if not 0 <= index < self.counts[split]:
            raise DataError(
                f"dataset 'synthetic': identity {index} is out of range for split {split!r} "
                f"(it has {self.counts[split]} identities)"
            )
        if not 0 <= image < self.images_per_identity:
            raise DataError(
                f"dataset 'synthetic': image {image} is out of range "
                f"(images_per_identity={self.images_per_identity})"
            )

    # -- views
    def _info(self, split: str) -> dict[str, Any]:
        return {
            "dataset": "synthetic",
            "note": "procedurally rendered faces, not real people",
            "split": split,
            "seed": self.seed,
            "identities": self.counts[split],
            "images_per_identity": self.images_per_identity,
            "size": self.size,
            "renderer_version": RENDERER_VERSION,
        }

    def _image_set(self, split: str) -> ImageSet:
        n, m = self.counts[split], self.images_per_identity
        keys = [self.key(split, i, j) for i in range(n) for j in range(m)]
        labels = np.repeat(np.arange(n, dtype=np.int64), m)
        names = [f"{split}/id{i:0{self._id_width}d}" for i in range(n)]
        return ImageSet(keys=keys, labels=labels, loader=self.load, identities=names, aligned="arcface_112",
                        synthetic=True, info=self._info(split))

    def train_set(self) -> ImageSet:
        """``train_identities × images_per_identity`` images, labels 0…C-1."""
        return self._image_set("train")

    def test_set(self) -> ImageSet:
        """All images of the test identities (the verification pairs index into it)."""
        return self._image_set("test")

    def verification(self) -> PairSet:
        """``folds × pairs_per_fold`` pairs over the test identities, half genuine.

        With at least two test identities per fold, the identities are split
        into disjoint groups, one per fold (as in LFW View 2); otherwise every
        fold draws from all test identities and ``info['identity_disjoint_folds']``
        is False.
        """
        images = self.test_set()
        n_ids, m = self.counts["test"], self.images_per_identity
        rng = np.random.default_rng([_seed(self.seed), _SPLITS["test"], _TAG_PAIRS])
        disjoint = n_ids >= 2 * self.folds
        perm = rng.permutation(n_ids)
        groups = [perm[f:: self.folds] for f in range(self.folds)] if disjoint else [perm] * self.folds
        n_same = self.pairs_per_fold // 2
        n_diff = self.pairs_per_fold - n_same
        pairs, same, folds = [], [], []
        for f, group in enumerate(groups):
            group = [int(g) for g in group]
            # Genuine pairs: identities round-robin, distinct image pairs where possible.
            seen: set[tuple[int, int]] = set()
            for k in range(n_same):
                ident = group[k % len(group)]
                for _attempt in range(20):
                    a, b = sorted(int(v) for v in rng.choice(m, 2, replace=False))
                    if (ident * m + a, ident * m + b) not in seen:
                        break
                pair = (ident * m + a, ident * m + b)
                seen.add(pair)
                pairs.append(pair)
                same.append(True)
                folds.append(f)
            # Impostor pairs: all identity pairs of the group in turn.
            combos = [(group[i], group[j]) for i in range(len(group)) for j in range(i + 1, len(group))]
            order = rng.permutation(len(combos))
            for k in range(n_diff):
                ia, ib = combos[int(order[k % len(combos)])]
                for _attempt in range(20):
                    pair = (ia * m + int(rng.integers(m)), ib * m + int(rng.integers(m)))
                    if pair not in seen:
                        break
                seen.add(pair)
                pairs.append(pair)
                same.append(False)
                folds.append(f)
        images.info["identity_disjoint_folds"] = disjoint
        total = len(pairs)
        return PairSet(images=images, pairs=np.asarray(pairs, dtype=np.int64), issame=np.asarray(same),
                       folds=np.asarray(folds, dtype=np.int64),
                       protocol=f"synthetic {self.folds}-fold pairs ({total:,} pairs)")

    def __repr__(self) -> str:
        return (f"SyntheticFaces(seed={self.seed}, train={self.counts['train']}, test={self.counts['test']}, "
                f"images_per_identity={self.images_per_identity}, size={self.size})")


def build(opts: Any, path: Any = None) -> SyntheticFaces:
    """Factory of the ``synthetic`` dataset spec.

    :param opts: the options dataclass (``seed``, ``train_identities``,
        ``test_identities``, ``images_per_identity``, ``size``,
        ``pairs_per_fold``, ``folds``).
    :param path: must be empty: the data is generated, no files are read.
    """
    if path:
        raise ConfigError(
            f"dataset 'synthetic' is generated from its seed and reads no files, but was given the path "
            f"{str(path)!r}; name it without a path (e.g. --train synthetic) and change the data with "
            "-o synthetic.seed=N and the other synthetic options"
        )
    return SyntheticFaces(
        seed=opts.seed,
        train_identities=opts.train_identities,
        test_identities=opts.test_identities,
        images_per_identity=opts.images_per_identity,
        size=opts.size,
        pairs_per_fold=opts.pairs_per_fold,
        folds=opts.folds,
    )
