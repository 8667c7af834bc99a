"""Options of the ``ijb`` dataset (``-o ijb.<key>=<value>``); no framework here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["IjbOptions"]


@dataclass(frozen=True)
class IjbOptions:
    """How face embeddings become template features (:mod:`harness.tasks.templates`).

    :param pooling: ``media``: faces averaged per media, media summed per template (insightface's
        IJB evaluation); ``mean``: all faces of a template averaged.
    :param face_norm: L2-normalise each face embedding before pooling (insightface: off).
    """

    pooling: Literal["media", "mean"] = "media"
    face_norm: bool = False
