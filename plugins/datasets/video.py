"""``video``: the frames of one video file as one identity's images.

Keys are ``"<path>#<frame index>"``; frames are read with
``cv2.VideoCapture`` (seeking by frame index) and returned as RGB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.types import Dataset, ImageSet

from facebench_plugins.datasets._common import require_path

__all__ = ["Video", "build", "iter_frames"]


def iter_frames(path: Path, every: int = 1, max_frames: int = 0):
    """Yield ``(frame index, RGB frame)`` for every ``every``-th frame."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video (missing, corrupt or an unsupported codec)")
    try:
        i = kept = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % max(every, 1) == 0:
                yield i, np.ascontiguousarray(frame[:, :, ::-1])
                kept += 1
                if max_frames and kept >= max_frames:
                    break
            i += 1
    finally:
        cap.release()


class FrameLoader:
    def __call__(self, key: str) -> np.ndarray:
        import cv2

        path, _, idx = str(key).rpartition("#")
        cap = cv2.VideoCapture(path)
        try:
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(idx))
            ok, frame = cap.read()
        finally:
            cap.release()
        if not ok:
            raise DataError(f"{path}, frame {idx}: cannot be read (corrupt or past the end)")
        return np.ascontiguousarray(frame[:, :, ::-1])


class Video(Dataset):
    name = "video"

    def __init__(self, path: Path, every: int = 1, identity: str = "", max_frames: int = 0) -> None:
        self.path = Path(path)
        self.every = every
        self.identity = identity or self.path.stem
        self.max_frames = max_frames

    def train_set(self) -> ImageSet:
        idx = [i for i, _ in iter_frames(self.path, self.every, self.max_frames)]
        if not idx:
            raise DataError(f"{self.path}: the video has no readable frames")
        return ImageSet(keys=[f"{self.path}#{i}" for i in idx], labels=np.zeros(len(idx), np.int64),
                        loader=FrameLoader(), identities=(self.identity,), aligned=None,
                        info={"source": str(self.path), "format": "video", "every": self.every})

    def __repr__(self) -> str:
        return f"Video({str(self.path)!r})"


def build(opts: Any, path: Any = None) -> Video:
    return Video(require_path(path, "video"), opts.every, opts.identity, opts.max_frames)
