"""``harness data``: make, convert and inspect face datasets.

\b
  pairs     identity folders -> LFW-format pairs.txt
  bin       images + pairs   -> insightface verification .bin
  rec       identity folders -> MXNet RecordIO train.rec/.idx (insightface)
  tfrecord  identity folders -> TFRecord of tf.train.Example
  video     a video          -> face crops (+ orientation CSV)
  mesh      face images      -> ID-photo mesh overlays + masks
  inspect   any of the above -> format, identities, images, sizes, corrupt files

Every writer writes to a temporary name and renames it when complete, so an
interrupted command never leaves a half-written output.  ``--skip-bad``
continues past corrupt or missing items and reports how many were skipped.

One module per subcommand; :mod:`._common` holds what several share (the
face cropper, ``--skip-bad`` bookkeeping, shared options).  Heavy imports
(OpenCV, the registry, the format readers) stay inside the command bodies.
"""

from __future__ import annotations

import click

from harness.cli.data._common import FaceCropper, Skips

__all__ = ["FaceCropper", "Skips", "command"]


@click.group(name="data")
def command() -> None:
    """Make, convert and inspect face datasets (pairs, .bin, .rec, TFRecord, video, mesh)."""


def _add_subcommands() -> None:
    from harness.cli.data import bin as bin_, inspect, mesh, pairs, rec, tfrecord, video

    for module in (pairs, bin_, rec, tfrecord, video, mesh, inspect):
        command.add_command(module.command)


_add_subcommands()
