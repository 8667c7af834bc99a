"""Readers and writers of the face-data formats facebench moves between.

Pure Python and numpy; OpenCV is imported only inside the functions that
decode or encode images.

=====================  ==============================================
module                 format
=====================  ==============================================
:mod:`.images`         image files / bytes -> RGB uint8, clear errors
:mod:`.folders`        identity folders; pair-number -> file resolution
:mod:`.pairs`          LFW ``pairs.txt``: parse, write, generate
:mod:`.recordio`       MXNet RecordIO ``.rec`` / ``.idx`` (insightface)
:mod:`.tfrecord`       TFRecord of ``tf.train.Example`` (CRC-32C)
:mod:`.insightface_bin`  insightface verification ``.bin`` (safe unpickler)
:mod:`.mesh`           synthetic ID-photo mesh overlays
=====================  ==============================================
"""

from __future__ import annotations

__all__ = ["folders", "images", "insightface_bin", "mesh", "pairs", "recordio", "tfrecord"]
