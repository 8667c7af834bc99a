"""``harness check-model CHECKPOINT --backbone NAME``: the model pre-load test.

Builds the backbone through the registry, loads the checkpoint into it with
``weights_only=True``, lists every missing / unexpected / mismatched tensor,
runs one forward pass on a real face image and reports the embedding's norm,
NaN / inf presence and the speed per image.  The framework work is done by
the engine of the backbone's framework (``harness list engine``), so this
module imports no framework.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import click

from harness.errors import ConfigError, DataError

#: The default image: the first of these by sorted path, under FACEBENCH_DATA.
DEFAULT_IMAGES = "images/identities"


def _default_image() -> Path:
    from harness.paths import data_path

    folder = data_path(DEFAULT_IMAGES)
    found = sorted(folder.glob("*/1.jpg"))
    if not found:
        raise DataError(f"no */1.jpg under {folder}; pass --image PATH")
    return found[0]


def _read_rgb(path: Path):
    import cv2
    import numpy as np

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"cannot read image {path} (missing, or not an image OpenCV can decode)")
    return np.ascontiguousarray(bgr[:, :, ::-1])


@click.command("check-model")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--backbone", "backbone", required=True, metavar="NAME",
              help="Backbone the checkpoint belongs to (`harness list backbone`).")
@click.option("-o", "--option", "options", multiple=True, metavar="NAME.KEY=VALUE",
              help="Backbone option, e.g. -o mobilefacenet.input_size=112,96 (repeatable).")
@click.option("--image", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=f"Face image for the forward pass [default: FACEBENCH_DATA/{DEFAULT_IMAGES}/*/1.jpg, first by name].")
@click.option("--allow-partial", is_flag=True,
              help="Load what matches and exit 0 even when tensors are missing, unexpected or of another shape.")
@click.option("--device", default="auto", show_default=True, help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def command(ctx: click.Context, checkpoint: Path, backbone: str, options: tuple[str, ...],
            image: Path | None, allow_partial: bool, device: str, as_json: bool) -> None:
    """Check that CHECKPOINT loads into backbone NAME and gives sane embeddings.

    Accepts a facebench checkpoint (weights under "model"), a bare
    state_dict, or a dict with "net_state_dict" / "state_dict"; a "module."
    prefix is stripped.  Exits 1 when the weights do not match the
    architecture (then no forward pass is run; --allow-partial loads what
    matches and carries on), when the embedding size differs from the
    backbone's, or when the embedding holds NaN or inf.

    \b
    Examples:
      harness check-model reports/runs/<run>/checkpoints/last.pt --backbone resnet20
      harness check-model 068.ckpt --backbone mobilefacenet -o mobilefacenet.input_size=112,96
      harness check-model model.pt --backbone lresnet50 --image face.jpg --json
    """
    from harness._values import short_repr
    from harness.config import parse_option_flags
    from harness.registry import get_registry

    reg = get_registry()
    spec = reg.get("backbone", backbone)
    parsed = parse_option_flags(options)
    stray = sorted(set(parsed) - {spec.name})
    if stray:
        raise ConfigError(
            f"-o {short_repr(stray[0])}.… does not name the backbone being checked; use -o {spec.name}.KEY=VALUE"
        )
    bb_options = parsed.get(spec.name, {})
    try:
        engine_spec = reg.get("engine", spec.framework)
    except KeyError:
        raise ConfigError(
            f"backbone {spec.name!r} is a {spec.framework} model, and no engine for "
            f"{spec.framework} is registered (`harness list engine`)"
        ) from None
    engine = reg.build("engine", engine_spec.name)
    if not checkpoint.is_file():
        raise DataError(f"checkpoint {checkpoint} does not exist")
    model = reg.build("backbone", spec.name, bb_options)

    # The built network knows its own input and embedding size (options can change them).
    input_size = tuple(getattr(model, "input_size", spec.input_size))
    embedding_size = int(getattr(model, "embedding_size", spec.embedding_size))
    eff_spec = dataclasses.replace(spec, input_size=input_size, embedding_size=embedding_size)

    state, where = engine.read_state_dict(checkpoint)
    match = engine.match_state_dict(model, state)
    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "backbone": spec.name,
        "framework": spec.framework,
        "options": dict(bb_options),
        "input_size": list(input_size),
        "expected_embedding_size": embedding_size,
        "weights_found_at": where,
        "tensors_in_checkpoint": len(state),
        "match": match.to_dict(),
        "problems": [],
    }
    problems: list[str] = report["problems"]
    if not match.exact:
        problems.append("weights do not match the architecture")
    if not match.matched:
        problems.append("no tensor of the checkpoint fits the model")
    if problems and (not allow_partial or not match.matched):
        # Fix the weights first: a forward pass of a half-loaded model says nothing.
        report["ok"] = False
        _emit(report, match, as_json)
        ctx.exit(1)
    engine.load_state_dict(model, {k: state[k] for k in match.matched},
                           what=f"checkpoint {checkpoint}", allow_partial=True)

    image_path = image or _default_image()
    img = _read_rgb(image_path)
    emb = engine.embed(model, [img], backbone_spec=eff_spec, batch_size=1, device=device)
    vec = emb[0]
    finite = [float(v) for v in vec if math.isfinite(float(v))]
    report["image"] = {"path": str(image_path), "size": [int(img.shape[0]), int(img.shape[1])]}
    report["embedding"] = {
        "size": int(vec.shape[0]),
        "norm": float(math.sqrt(sum(v * v for v in finite))),
        "nan": int(sum(1 for v in vec if math.isnan(float(v)))),
        "inf": int(sum(1 for v in vec if math.isinf(float(v)))),
    }
    if report["embedding"]["size"] != embedding_size:
        problems.append(f"embedding has {vec.shape[0]} values, the backbone declares {embedding_size}")
    if report["embedding"]["nan"] or report["embedding"]["inf"]:
        problems.append("the embedding holds NaN or inf")
    report["speed_ms_per_image"] = {
        "batch_1": engine.time_forward(model, eff_spec, batch=1, repeats=5, device=device),
        "batch_8": engine.time_forward(model, eff_spec, batch=8, repeats=3, device=device),
    }
    report["device"] = str(engine.resolve_device(device))
    tolerated = allow_partial and problems == ["weights do not match the architecture"]
    report["ok"] = not problems or tolerated
    _emit(report, match, as_json)
    if not report["ok"]:
        ctx.exit(1)


def _emit(report: dict[str, Any], match: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = [
        ("checkpoint", report["checkpoint"]),
        ("backbone", f"{report['backbone']} ({report['framework']}), input "
                     f"{report['input_size'][0]}x{report['input_size'][1]} (HxW), "
                     f"embedding {report['expected_embedding_size']}"),
        ("weights", f"{report['tensors_in_checkpoint']} tensors at {report['weights_found_at']}"),
        ("match", match.summary().splitlines()[0]),
    ]
    if "embedding" in report:
        e = report["embedding"]
        img = report["image"]
        rows += [
            ("image", f"{img['path']} ({img['size'][0]}x{img['size'][1]} HxW)"),
            ("embedding", f"size {e['size']}, L2 norm {e['norm']:.4g}, NaN {e['nan']}, inf {e['inf']}"),
            ("speed", f"{report['speed_ms_per_image']['batch_1']:.2f} ms/img at batch 1, "
                      f"{report['speed_ms_per_image']['batch_8']:.2f} ms/img at batch 8 "
                      f"({report['device']})"),
        ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")
    details = match.summary().splitlines()[1:]
    if details:
        click.echo("\n".join(details))
    if report["ok"]:
        note = " (partial load allowed)" if report["problems"] else ""
        click.secho(f"OK{note}", fg="green")
    else:
        click.secho("FAILED: " + "; ".join(report["problems"]), fg="red", err=True)
