"""``harness data bin``: images + an LFW pairs file -> insightface verification .bin."""

from __future__ import annotations

from pathlib import Path

import click

from harness.cli.data._common import FaceCropper, Skips, common_options, cropper_options, encode
from harness.cli.data._common import progress as _progress
from harness.errors import DataError

__all__ = ["command"]


@click.command("bin")
@click.argument("image_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("pairs_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .bin file to write.")
@cropper_options
@click.option("--encoding", type=click.Choice(["jpg", "png"]), default="jpg", show_default=True)
@click.option("--fold", "folds", multiple=True, type=click.IntRange(1),
              help="Only these folds of the pairs file (1-based; repeatable). Default: all.")
@common_options
def command(image_dir: Path, pairs_file: Path, output: Path, size: int, detector: str, crop: float, landmarker: str,
            quality: int, encoding: str, folds: tuple[int, ...], skip_bad: bool, progress: bool | None) -> None:
    """Write an insightface verification .bin from IMAGE_DIR and an LFW PAIRS_FILE.

    The .bin is a pickle of (list of encoded crops, list of issame bools);
    pair i is crops 2i and 2i+1, in pairs-file order.
    """
    from harness.formats.folders import resolve_image
    from harness.formats.images import read_image
    from harness.formats.insightface_bin import write_bin
    from harness.formats.pairs import parse_pairs

    parsed = parse_pairs(pairs_file, skip_bad=skip_bad)
    skips = Skips(skip_bad)
    for msg in parsed.skipped:
        skips.handle(DataError(msg))
    chosen = {f - 1 for f in folds}
    pairs = [p for p in parsed.pairs if not chosen or p.fold in chosen]
    if not pairs:
        raise DataError(f"{pairs_file}: no pairs in the chosen folds {sorted(folds)}")
    cropper = FaceCropper(detector, size, crop, landmarker=landmarker)
    cache: dict[Path, bytes] = {}
    blobs: list[bytes] = []
    issame: list[bool] = []
    for p in _progress(pairs, len(pairs), "pairs", progress):
        where = f"{pairs_file}, line {p.line}"
        try:
            encoded = []
            for name, n in ((p.name1, p.n1), (p.name2, p.n2)):
                f = resolve_image(image_dir, name, n, where)
                if f not in cache:
                    cache[f] = encode(cropper(read_image(f)), encoding, quality)
                encoded.append(cache[f])
        except DataError as exc:
            skips.handle(exc)
            continue
        blobs.extend(encoded)
        issame.append(p.issame)
    write_bin(output, blobs, issame)
    skips.report()
    click.echo(f"wrote {output}: {len(issame)} pairs ({sum(issame)} genuine), {len(cache)} distinct images "
               f"({cropper.summary()})")
