"""The ID-photo mesh synthesizer: determinism, mask semantics, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from harness.formats.mesh import MeshParams, mesh_image, sample_mesh
from harness.formats.images import read_image
from tests.conftest import need_data


@pytest.fixture(scope="module")
def face():
    import cv2

    img = read_image(need_data("lfw_home/lfw_funneled/Abel_Pacheco/Abel_Pacheco_0001.jpg"))
    return cv2.resize(img[69:181, 69:181], (112, 112))


def test_deterministic_from_seed(face):
    a, ma = mesh_image(face, 7)
    b, mb = mesh_image(face, np.random.default_rng(7))
    assert np.array_equal(a, b) and np.array_equal(ma, mb)
    c, mc = mesh_image(face, 8)
    assert not np.array_equal(ma, mc)


def test_shapes_and_mask(face):
    meshed, mask = mesh_image(face, 1, MeshParams(jpeg_quality=None))
    assert meshed.shape == face.shape and meshed.dtype == np.uint8
    assert mask.shape == face.shape[:2] and set(np.unique(mask)) <= {0, 1}
    frac = mask.mean()
    assert 0.05 < frac < 0.6  # thin lines, not a fill
    diff = np.abs(meshed.astype(int) - face.astype(int)).max(axis=2)
    # lossless: masked pixels changed by the overlay; unmasked ones at most by faint anti-aliasing
    assert np.mean(diff[mask == 1] > 0) > 0.9
    assert diff[mask == 0].max() <= 0.15 * 255 + 1


def test_lattice_crosses(face):
    s = sample_mesh(face.shape, 3, MeshParams(families=(2, 2)))
    angle = np.degrees(abs(s.thetas[1] - s.thetas[0]))
    assert 50 <= angle <= 130


def test_jpeg_recompression_changes_unmasked_pixels(face):
    meshed, mask = mesh_image(face, 2, MeshParams(jpeg_quality=(40, 40)))
    assert np.abs(meshed.astype(int) - face.astype(int))[mask == 0].mean() > 0.3


def test_grayscale_input_and_other_sizes():
    gray = np.full((200, 160), 128, np.uint8)
    meshed, mask = mesh_image(gray, 0)
    assert meshed.shape == (200, 160, 3) and mask.shape == (200, 160)


def test_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        mesh_image(np.zeros((8, 8, 3), np.float32), 0)
