"""Image decoding: RGB order, grayscale expansion, header sizes, corrupt files."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import DataError
from harness.formats.images import decode_image, encode_image, image_size, read_image
from tests.conftest import need_data


def test_png_round_trip_is_lossless_and_rgb():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (17, 23, 3), dtype=np.uint8)
    img[0, 0] = (255, 0, 0)  # red stays in channel 0
    data = encode_image(img, ".png")
    back = decode_image(data)
    assert back.dtype == np.uint8 and np.array_equal(back, img)
    assert image_size(data) == (23, 17)


def test_jpeg_header_size():
    img = np.zeros((40, 60, 3), np.uint8)
    assert image_size(encode_image(img, ".jpg")) == (60, 40)


def test_att_pgm_is_expanded_to_rgb():
    path = need_data("att_faces/s1/1.pgm")
    img = read_image(path)
    assert img.shape == (112, 92, 3)
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])
    assert image_size(path.read_bytes()) == (92, 112)


def test_real_jpeg_matches_header():
    path = need_data("lfw_home/lfw_funneled/Abel_Pacheco/Abel_Pacheco_0001.jpg")
    assert read_image(path).shape == (250, 250, 3)
    assert image_size(path.read_bytes()) == (250, 250)


def test_corrupt_file_message(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0garbage" * 3)
    with pytest.raises(DataError, match=r"bad\.jpg: corrupt or unsupported image .*--skip-bad"):
        read_image(bad)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.png: empty image data"):
        read_image(empty)
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "missing.jpg")


def test_pnm_header_with_a_negative_size_is_not_a_size():
    """Found by the fuzz run: 'P5 -1 92' gave the size (-1, 92)."""
    from harness.formats.images import image_size

    assert image_size(b"P5\n-1\n92\n255\n") is None
    assert image_size(b"P5\n+3 4\n255\n") is None
    assert image_size(b"P5\n# c\n92 112\n255\n") == (92, 112)
