"""``harness data rec``: identity folders -> insightface MXNet RecordIO train.rec/.idx."""

from __future__ import annotations

import os
from pathlib import Path

import click

from harness.cli.data._common import FaceCropper, Skips, common_options, cropper_options, identity_files, image_items
from harness.errors import ConfigError

__all__ = ["command"]


def _rec_prefix(output: Path) -> Path:
    if output.suffix in (".rec", ".idx"):
        return output.with_suffix("")
    if output.is_dir() or str(output).endswith(os.sep):
        return output / "train"
    return output


@click.command("rec")
@click.argument("identity_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output prefix: 'out/train' writes out/train.rec, out/train.idx and out/property.")
@cropper_options
@click.option("--encoding", type=click.Choice(["jpg", "png", "original"]), default="jpg", show_default=True,
              help="How images are stored; 'original' copies each file's bytes unchanged (needs --size 0).")
@common_options
def command(identity_dir: Path, output: Path, size: int, detector: str, crop: float, landmarker: str, quality: int,
            encoding: str, skip_bad: bool, progress: bool | None) -> None:
    """Pack IDENTITY_DIR into an insightface-compatible MXNet RecordIO train.rec/.idx.

    Record 0 is the insightface header (flag 2, label = first identity record,
    end); records 1..N are the images (label = class id, grouped by identity);
    records N+1..N+K hold each identity's image range.  No mxnet needed.
    """
    from harness.formats.recordio import write_insightface_rec

    if encoding == "original" and size != 0:
        raise ConfigError("--encoding original stores the files unchanged and needs --size 0")
    names, files = identity_files(identity_dir)
    cropper = FaceCropper(detector, size, crop, landmarker=landmarker)
    skips = Skips(skip_bad)
    prefix = _rec_prefix(output)
    shape = (size, size) if size else None
    items = image_items(files, cropper, encoding, quality, skips, progress, "rec")
    summary = write_insightface_rec(prefix, items, len(names), shape)
    skips.report()
    click.echo(f"wrote {summary['rec']} (+ .idx{', property' if shape else ''}): {summary['images']} images, "
               f"{summary['identities']} identities ({cropper.summary()})")
