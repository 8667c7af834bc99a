"""``harness data tfrecord``: identity folders -> TFRecord of tf.train.Example."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.data._common import FaceCropper, Skips, common_options, cropper_options, identity_files, image_items
from harness.errors import ConfigError

__all__ = ["command"]


@click.command("tfrecord")
@click.argument("identity_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@cropper_options
@click.option("--encoding", type=click.Choice(["jpg", "png", "original"]), default="jpg", show_default=True)
@common_options
def command(identity_dir: Path, output: Path, size: int, detector: str, crop: float, landmarker: str, quality: int,
            encoding: str, skip_bad: bool, progress: bool | None) -> None:
    """Pack IDENTITY_DIR into a TFRecord of tf.train.Example (no TensorFlow needed).

    Features: image/encoded (bytes), image/class/label (int64, by sorted
    identity name), image/format.
    """
    from harness.formats.tfrecord import write_tfrecord_images

    if encoding == "original" and size != 0:
        raise ConfigError("--encoding original stores the files unchanged and needs --size 0")
    names, files = identity_files(identity_dir)
    cropper = FaceCropper(detector, size, crop, landmarker=landmarker)
    skips = Skips(skip_bad)
    fmt = "png" if encoding == "png" else "jpeg" if encoding == "jpg" else "original"
    items = image_items(files, cropper, encoding, quality, skips, progress, "tfrecord")
    n = write_tfrecord_images(output, items, fmt=fmt)
    skips.report()
    click.echo(f"wrote {output}: {n} images, {len(names)} identities ({cropper.summary()})")
