"""Image decoding and encoding: files or bytes -> RGB uint8, with clear errors.

OpenCV is imported inside the functions, so importing this module stays
framework-free.  Every decoded image is ``(H, W, 3)`` uint8 **RGB**; grayscale
inputs (AT&T PGM) are expanded to three equal channels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.formats._fields import ascii_int

__all__ = [
    "IMAGE_EXTENSIONS",
    "decode_image",
    "encode_image",
    "image_size",
    "is_image_file",
    "read_image",
]

#: File suffixes treated as images when scanning folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".ppm", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - cv2 is a core extra here
        raise DataError(
            "decoding images needs OpenCV, which is not installed; install it with "
            "pip install 'facebench[cv]'"
        ) from exc
    return cv2


def decode_image(data: bytes | bytearray | memoryview | np.ndarray, where: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, PGM, ...) to RGB uint8 (H, W, 3).

    :param where: names the source in the error message (file, record).
    :raises DataError: the bytes are empty or not a decodable image.
    """
    cv2 = _cv2()
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1)
    if buf.size == 0:
        raise DataError(f"{where}: empty image data (0 bytes); expected an encoded image — "
                        "re-create the file or skip it with --skip-bad")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        head = bytes(buf[:8]).hex()
        raise DataError(
            f"{where}: corrupt or unsupported image ({buf.size} bytes, starts with {head}); "
            "expected a JPEG, PNG, PGM or BMP — re-create the file or skip it with --skip-bad"
        )
    return np.ascontiguousarray(image[:, :, ::-1])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file to RGB uint8 (H, W, 3).

    :raises DataError: the file is missing, unreadable or not an image.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{p}: image file not found; check the path or the dataset layout") from None
    except OSError as exc:
        raise DataError(f"{p}: cannot read image file ({exc.strerror or exc})") from None
    return decode_image(data, where=str(p))


def encode_image(image: np.ndarray, ext: str = ".png", quality: int = 95) -> bytes:
    """Encode an RGB uint8 image; ``ext`` is ``.png`` (lossless) or ``.jpg``."""
    cv2 = _cv2()
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ValueError(f"expected an (H, W[, 3]) uint8 image, got {arr.shape} {arr.dtype}")
    bgr = arr[:, :, ::-1] if arr.ndim == 3 else arr
    ext = ext if ext.startswith(".") else "." + ext
    params: list[int] = []
    if ext.lower() in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(bgr), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode an image as {ext}")
    return buf.tobytes()


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG / JPEG / PNM header without decoding, or None."""
    b = bytes(data[:2])
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if b == b"\xff\xd8":
        i = 2
        n = len(data)
        while i + 4 <= n:
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg = int.from_bytes(data[i + 2:i + 4], "big")
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                if i + 9 > n:
                    return None
                h = int.from_bytes(data[i + 5:i + 7], "big")
                w = int.from_bytes(data[i + 7:i + 9], "big")
                return w, h
            i += 2 + seg
        return None
    if b in (b"P5", b"P6", b"P2", b"P3"):
        tokens: list[bytes] = []
        for line in bytes(data[:256]).split(b"\n")[0:6]:
            line = line.split(b"#")[0]
            tokens.extend(line.split())
            if len(tokens) >= 3:
                w, h = ascii_int(tokens[1]), ascii_int(tokens[2])
                return (w, h) if w is not None and h is not None else None
    return None
