"""``harness export BACKBONE --weights CKPT --out FILE.onnx``: a backbone as an ONNX graph.

The backbone is built through the registry and its weights loaded; the
engine of its framework (its spec's ``meta["exporter"]`` module) writes the
graph with a dynamic batch and the preprocessing in ``facebench.*``
``metadata_props``.  Before the file appears, a parity check embeds real
aligned LFW crops through the framework and through ``--recognizer onnx``
reading the new file (its options from that metadata): the largest absolute
difference must be at most ``--tolerance``, else nothing is written and the
command exits 1.  Bad input exits 2 with one line and writes nothing.

``--weights`` takes:

* a weights variant the backbone names (``mobilefacenet``: ``casia``), or
  that variant's file (recognised by its sha256);
* a facebench training checkpoint (``reports/runs/<run>/checkpoints/last.pt``:
  its recorded input and embedding size are used unless ``-o`` sets them);
* a state dict the backbone's importer reads (``lresnet50``: arcface_torch's
  ``backbone.pth``; ``inception_resnet_v1``: facenet-pytorch's), or any
  state dict in facebench's own key names.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import click

from harness.errors import ConfigError, DataError

__all__ = ["command", "lfw_crops"]

#: parity bound: max |onnxruntime - torch| over the embeddings of the crops
TOLERANCE = 1e-4


@click.command("export")
@click.argument("backbone", metavar="BACKBONE")
@click.option("--weights", required=True, metavar="CKPT|NAME",
              help="Checkpoint file, importable state dict, or a named weights variant (e.g. casia).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), metavar="FILE.onnx",
              help="The ONNX file to write (replaced atomically, only after parity passes).")
@click.option("-o", "--option", "options", multiple=True, metavar="NAME.KEY=VALUE",
              help="Backbone option, e.g. -o lresnet50.embedding_size=256 (repeatable).")
@click.option("--opset", type=click.IntRange(13, 20), default=None,
              help="ONNX opset [default: the engine's, 17 for torch].")
@click.option("--detector", default="yunet", show_default=True,
              help="Detector that finds the LFW faces for the parity check.")
@click.option("--parity-images", type=click.IntRange(1, 1000), default=32, show_default=True,
              help="LFW images (from the first View 2 pairs) embedded by both runtimes.")
@click.option("--lfw", type=click.Path(path_type=Path), default=None,
              help="LFW folder for the parity check [default: FACEBENCH_DATA/lfw_home].")
@click.option("--tolerance", type=click.FloatRange(0, 1), default=TOLERANCE, show_default=True,
              help="Largest allowed |onnxruntime - torch| over the parity embeddings.")
@click.pass_context
def command(ctx: click.Context, backbone: str, weights: str, out: Path, options: tuple[str, ...],
            opset: int | None, detector: str, parity_images: int, lfw: Path | None, tolerance: float) -> None:
    """Export BACKBONE with its weights to FILE.onnx and check parity on real LFW crops.

    \b
    Examples:
      harness export mobilefacenet --weights casia --out mfn_casia.onnx
      harness export lresnet50 --weights backbone.pth --out r50.onnx
      harness export resnet20 --weights reports/runs/<run>/checkpoints/last.pt --out r20.onnx
      harness run --recognizer onnx -o onnx.model=mfn_casia.onnx --detector yunet --eval lfw=LFW
    """
    from harness.registry import get_registry
    from harness.tasks.recognition import _effective_backbone

    _check_out(out)
    reg = get_registry()
    spec = reg.get("backbone", backbone)
    engine_spec, exporter = _exporter(reg, spec)
    given = _backbone_options(spec, options)
    bb_options, load_path, source = _resolve_weights(spec, weights, given, exporter)
    opts = spec.make_options(bb_options)  # bad options fail here, before any work
    engine = reg.build("engine", engine_spec.name)
    model = reg.build("backbone", spec.name, bb_options)
    if load_path is not None:
        engine.load_model(model, load_path)
    eff = _effective_backbone(spec, opts)
    size = tuple(int(v) for v in eff["input_size"])
    flip = "concat" if eff["flip_concat"] else None
    probe = exporter.forward(model, _zeros(size))
    metadata = {
        "version": _version(), "backbone": spec.name, "options": _options_text(bb_options),
        "weights": source["weights"], "weights_sha256": source["sha256"],
        "input_size": size, "alignment": eff["alignment"], "color": "rgb", "layout": "nchw", "scale": 1.0,
        "mean": tuple(float(v) for v in eff["mean"]), "std": tuple(float(v) for v in eff["std"]),
        "flip": flip or "none", "embedding_size": int(probe.shape[1]),
        "opset": opset or exporter.OPSET,
    }
    data = exporter.export_onnx(model, input_size=size, metadata=metadata, opset=opset or exporter.OPSET)
    crops = lfw_crops(reg, lfw, parity_images, detector, eff["alignment"], size)
    run_spec = dataclasses.replace(spec, input_size=size, mean=eff["mean"], std=eff["std"],
                                   alignment=eff["alignment"], embedding_size=int(probe.shape[1]))
    reference = engine.embed(model, crops, backbone_spec=run_spec, flip=flip, batch_size=len(crops), device="cpu")
    diff = _write_if_parity(reg, out, data, crops, reference, tolerance)
    _report(spec.name, source, out, metadata, len(data), diff, len(crops), detector, tolerance)
    if diff > tolerance:
        ctx.exit(1)


def _check_out(out: Path) -> None:
    """``--out``: a ``.onnx`` file path whose folder exists (or can be made) and is writable."""
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out {out}: expected a file name ending in .onnx (e.g. model.onnx)")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file path such as {out / 'model.onnx'}")
    folder = out.parent if str(out.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: cannot write in {existing} (not a writable folder); choose another path")


def _exporter(reg: Any, spec: Any) -> tuple[Any, Any]:
    """The engine spec of the backbone's framework and its export module."""
    try:
        engine_spec = reg.get("engine", spec.framework)
    except KeyError:
        raise ConfigError(f"backbone {spec.name!r} is a {spec.framework} model and no engine for "
                          f"{spec.framework} is registered (`harness list engine`)") from None
    target = engine_spec.meta.get("exporter")
    if not target:
        raise ConfigError(f"the {engine_spec.name} engine cannot export to ONNX (its spec names no exporter)")
    reg.require_available(spec)
    missing = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"harness export needs {' and '.join(missing)}: pip install 'facebench[onnx]'")
    return engine_spec, importlib.import_module(str(target).partition(":")[0])


def _backbone_options(spec: Any, flags: tuple[str, ...]) -> dict[str, Any]:
    from harness._values import short_repr
    from harness.config import parse_option_flags

    parsed = parse_option_flags(flags)
    stray = sorted(set(parsed) - {spec.name})
    if stray:
        raise ConfigError(f"-o {short_repr(stray[0])}.… does not name the backbone being exported; "
                          f"use -o {spec.name}.KEY=VALUE")
    return dict(parsed.get(spec.name, {}))


def _resolve_weights(spec: Any, weights: str, given: dict[str, Any],
                     exporter: Any) -> tuple[dict[str, Any], Path | None, dict[str, str]]:
    """(backbone options, file to load after building or None, {"weights", "sha256"})."""
    from harness.weights import locate_weights, sha256_file

    fields = spec.option_fields()
    variants = dict(spec.meta.get("variants") or {})
    files = {w.filename: w for w in spec.weights}
    if weights in variants:
        entry = files.get(str(variants[weights].get("weights", "")))
        path = locate_weights(entry, given.get("weights_path") or None) if entry else None
        return ({**given, "weights": weights}, None,
                {"weights": weights, "sha256": sha256_file(path) if path else ""})
    path = Path(weights).expanduser()
    if not path.is_file():
        names = ", ".join(sorted(variants)) or "none for this backbone"
        raise ConfigError(f"--weights {weights}: no such file and not a named weights variant of {spec.name} "
                          f"({names}); pass a checkpoint (.pt / .pth / .ckpt)")
    digest = sha256_file(path)
    for name, variant in variants.items():  # a variant's own file: load it as that variant
        entry = files.get(str(variant.get("weights", "")))
        if entry is not None and entry.sha256 == digest and "weights_path" in fields:
            return ({**given, "weights": name, "weights_path": str(path)}, None,
                    {"weights": f"{name} ({path.name})", "sha256": digest})
    info = exporter.checkpoint_info(path)  # DataError when it is not a weights file
    recorded = info["backbone"] or {}
    if recorded.get("name") and recorded["name"] != spec.name:
        raise ConfigError(f"--weights {path} is a facebench checkpoint of {recorded['name']!r}, not {spec.name!r}; "
                          f"run: harness export {recorded['name']} --weights {path} ...")
    options = dict(given)
    for key in ("input_size", "embedding_size"):
        if key in fields and key not in options and recorded.get(key):
            options[key] = tuple(recorded[key]) if key == "input_size" else int(recorded[key])
    source = {"weights": path.name, "sha256": digest}
    if "weights" in fields and fields["weights"].type in (str, "str"):
        return {**options, "weights": str(path)}, None, source  # the backbone's importer loads it
    return options, path, source


def _zeros(size: tuple[int, ...]) -> Any:
    import numpy as np

    return np.zeros((1, 3, size[0], size[1]), np.float32)


def _version() -> str:
    from harness import __version__

    return __version__


def _options_text(options: dict[str, Any]) -> str:
    """The backbone options as JSON; file paths left out (the weights are named by file and sha256)."""
    import json

    return json.dumps({k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(options.items())
                       if k != "weights_path" and not (k == "weights" and Path(str(v)).is_file())}, default=str)


def lfw_crops(reg: Any, lfw: Path | None, n: int, detector: str, template: str,
              size: tuple[int, ...], recognizer: Any = None) -> list:
    """``n`` real LFW images (those of the first View 2 pairs), detected and aligned to ``template``
    (or cut by ``recognizer``'s own alignment when it aligns itself); RGB uint8 crops."""
    import numpy as np

    from harness.formats.images import read_image
    from harness.formats.lfw_layout import locate_lfw
    from harness.formats.pairs import parse_pairs
    from harness.paths import data_path
    from harness.tasks._faces import face_crops
    from harness.types import ImageSet

    pairs_file, image_dir = locate_lfw(lfw if lfw is not None else data_path("lfw_home"))
    keys: list[str] = []
    for p in parse_pairs(pairs_file).pairs:
        for name, i in ((p.name1, p.n1), (p.name2, p.n2)):
            key = str(image_dir / name / f"{name}_{i:04d}.jpg")
            if key not in keys:
                keys.append(key)
        if len(keys) >= n:
            break
    keys = keys[:n]
    images = ImageSet(keys=keys, labels=np.zeros(len(keys)), loader=read_image, info={"source": "lfw parity"})
    fc = face_crops(images, np.arange(len(keys)), registry=reg, detector=detector, template=template,
                    size=(int(size[0]), int(size[1])), recognizer=recognizer, progress=False)
    return fc.crops


def _write_if_parity(reg: Any, out: Path, data: bytes, crops: list, reference: Any, tolerance: float) -> float:
    """Write ``data`` beside ``out``, embed ``crops`` through ``--recognizer onnx`` reading it, and
    rename it onto ``out`` only when max |difference| <= ``tolerance``; returns that difference."""
    import numpy as np

    from harness.atomic import atomic_paths

    class _Mismatch(Exception):
        pass

    diff = float("inf")
    try:
        with atomic_paths(out) as (tmp,):
            tmp.write_bytes(data)
            rec = reg.build("recognizer", "onnx", {"model": str(tmp), "batch_size": max(1, 2 * len(crops))})
            got = rec.embed(crops)
            if got.shape != reference.shape:
                raise DataError(f"the exported graph gives embeddings of shape {got.shape}, torch {reference.shape}")
            diff = float(np.abs(got - reference).max())
            if not diff <= tolerance:
                raise _Mismatch
    except _Mismatch:
        pass
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write it ({exc.strerror or exc}); choose another path") from None
    return diff


def _report(name: str, source: dict, out: Path, meta: dict, nbytes: int, diff: float, n: int,
            detector: str, tolerance: float) -> None:
    h, w = meta["input_size"]
    flip = "" if meta["flip"] == "none" else f" ({meta['flip']} of image and mirror: "
    flip += f"{2 * meta['embedding_size']}-d)" if meta["flip"] == "concat" else (")" if flip else "")
    ok = diff <= tolerance
    click.echo(f"backbone     {name}, weights {source['weights']}"
               + (f" (sha256 {source['sha256'][:16]}…)" if source["sha256"] else ""))
    click.echo(f"graph        opset {meta['opset']}, input 'input' [batch, 3, {h}, {w}] float32, "
               f"output 'embedding' [batch, {meta['embedding_size']}]{flip}")
    click.echo(f"metadata     RGB, (x - {_fmt(meta['mean'])}) / {_fmt(meta['std'])}, alignment "
               f"{meta['alignment']}, flip {meta['flip']} (facebench.* metadata_props)")
    click.echo(f"parity       {n} LFW crops ({detector}, {meta['alignment']}): max |onnxruntime - torch| = "
               f"{diff:.3g} {'<=' if ok else '>'} {tolerance:g}")
    if ok:
        click.secho(f"wrote        {out} ({nbytes / 1e6:.1f} MB); evaluate it with "
                    f"--recognizer onnx -o onnx.model={out}", fg="green")
    else:
        click.secho(f"FAILED: parity above {tolerance:g}; {out} was not written", fg="red", err=True)


def _fmt(values: Any) -> str:
    vals = [float(v) for v in values]
    return f"{vals[0]:g}" if len(set(vals)) == 1 else "(" + ", ".join(f"{v:g}" for v in vals) + ")"
