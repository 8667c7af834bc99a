"""Options of the built-in recognizers (``-o <recognizer>.<key>=<value>``).

Imported by the plugin's ``__init__`` to build the specs, so no framework here.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.specs import check_range

__all__ = ["DlibResnetOptions"]


@dataclass(frozen=True)
class DlibResnetOptions:
    """Options of ``dlib_resnet``.

    :param alignment: ``dlib_chip`` (default): dlib's own 150×150 chip from
        the 5-point shape predictor run on each detected box
        (``embed_faces``); ``arcface_112``: embed five-point similarity crops
        made by :func:`harness.align.align` (resized to 150×150).
    :param padding: chip padding passed to ``dlib.get_face_chip`` (dlib: 0.25).
    :param jitters: ``num_jitters`` of ``compute_face_descriptor`` (dlib: 0; 100 gives
        dlib's published 99.38 % but is 100× slower).
    :param weights: path to ``dlib_face_recognition_resnet_model_v1.dat`` (overrides the search).
    :param shape_predictor: path to ``shape_predictor_5_face_landmarks.dat``.
    """

    alignment: str = "dlib_chip"
    padding: float = 0.25
    jitters: int = 0
    weights: str = ""
    shape_predictor: str = ""

    def __post_init__(self) -> None:
        if self.alignment not in ("dlib_chip", "arcface_112"):
            raise ValueError(f"alignment must be 'dlib_chip' or 'arcface_112', got {self.alignment!r}")
        check_range("dlib_resnet.jitters", self.jitters, 0, 1000, integer=True)
        if not 0 <= self.padding <= 1:
            raise ValueError(f"padding must be in [0, 1], got {self.padding}")
