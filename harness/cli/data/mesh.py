"""``harness data mesh``: face images -> ID-photo mesh overlays, masks and mesh.csv."""

from __future__ import annotations

import csv
import json
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness.cli.data._common import Skips, common_options
from harness.cli.data._common import progress as _progress
from harness.errors import ConfigError, DataError

__all__ = ["command"]


def _range(text: str | None, cast=float):
    if text is None:
        return None
    parts = [p for p in text.replace(":", ",").split(",") if p.strip()]
    try:
        vals = [cast(p) for p in parts]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected 'low,high' numbers") from None
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or vals[0] > vals[1]:
        raise click.BadParameter(f"{text!r}: expected 'low,high' with low <= high")
    return tuple(vals)


def _params(families: str | None, period: str | None, thickness: str | None, alpha: str | None,
            jpeg_quality: str | None) -> Any:
    """The generator's :class:`MeshParams`, defaults overridden by the ranges given."""
    from harness.formats.mesh import MeshParams

    overrides: dict[str, Any] = {}
    if families:
        overrides["families"] = _range(families, int)
    if period:
        overrides["period"] = _range(period)
    if thickness:
        overrides["thickness"] = _range(thickness)
    if alpha:
        overrides["alpha"] = _range(alpha)
    if jpeg_quality:
        overrides["jpeg_quality"] = None if jpeg_quality.lower() == "none" else _range(jpeg_quality, int)
    return MeshParams(**{**asdict(MeshParams()), **overrides})


def _mesh_one(image: np.ndarray, rel: Path, tmp: Path, seed: int, params: Any) -> dict[str, Any]:
    """Write one meshed image and its mask under ``tmp``; its mesh.csv row."""
    from harness.formats.images import encode_image
    from harness.formats.mesh import mesh_image, sample_mesh

    key = [seed, zlib.crc32(rel.as_posix().encode())]
    meshed, mask = mesh_image(image, np.random.default_rng(key), params)
    s = sample_mesh(image.shape, np.random.default_rng(key), params)
    out = tmp / rel.with_suffix(".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(encode_image(meshed, ".png"))
    out.with_name(out.stem + "_mask.png").write_bytes(encode_image(mask * 255, ".png"))
    return {"file": rel.with_suffix(".png").as_posix(), "source": rel.as_posix(),
            "families": len(s.thetas), "period": ";".join(f"{v:.2f}" for v in s.periods),
            "thickness": f"{s.thickness:.2f}", "alpha": f"{s.alpha:.3f}",
            "color": "#%02x%02x%02x" % s.color, "jpeg_quality": s.jpeg_quality or "",
            "mask_fraction": f"{float(mask.mean()):.4f}"}


@click.command("mesh")
@click.argument("faces_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--families", default=None, help="Line families, 'low,high' (default 2,2: a lattice).")
@click.option("--period", default=None, help="Line spacing in px at 112 px, 'low,high' (default 8,18).")
@click.option("--thickness", default=None, help="Line width in px at 112 px, 'low,high' (default 0.6,1.5).")
@click.option("--alpha", default=None, help="Opacity, 'low,high' (default 0.45,0.9).")
@click.option("--jpeg-quality", default=None, help="Re-compression quality 'low,high' (default 55,90) or 'none'.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output folder.")
@common_options
def command(faces_dir: Path, output: Path, seed: int, families: str | None, period: str | None,
            thickness: str | None, alpha: str | None, jpeg_quality: str | None, overwrite: bool,
            skip_bad: bool, progress: bool | None) -> None:
    """Overlay synthetic ID-photo meshes on every image under FACES_DIR.

    Writes OUTPUT/<relative path>.png (meshed) and <...>_mask.png (255 where
    the mesh covers the face) and mesh.csv with the values drawn for each
    image.  Deterministic: each image's overlay is seeded by --seed and its
    relative path.  The generator's parameters are described in docs/data.md.
    """
    from harness.atomic import atomic_dir
    from harness.formats.images import is_image_file, read_image

    params = _params(families, period, thickness, alpha, jpeg_quality)
    files = sorted(p for p in faces_dir.rglob("*") if p.is_file() and is_image_file(p)
                   and not p.stem.endswith("_mask"))
    if not files:
        raise DataError(f"{faces_dir}: no images found")
    skips = Skips(skip_bad)
    try:
        with atomic_dir(output, overwrite=overwrite) as tmp:
            rows = []
            for f in _progress(files, len(files), "mesh", progress):
                try:
                    image = read_image(f)
                except DataError as exc:
                    skips.handle(exc)
                    continue
                rows.append(_mesh_one(image, f.relative_to(faces_dir), tmp, seed, params))
            with open(tmp / "mesh.csv", "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["file"])
                w.writeheader()
                w.writerows(rows)
            (tmp / "mesh_params.json").write_text(json.dumps({"seed": seed, **asdict(params)}, indent=2))
    except FileExistsError as exc:
        raise ConfigError(str(exc)) from None
    skips.report()
    click.echo(f"wrote {output}: {len(rows)} meshed images with masks (seed {seed})")
