"""``harness score FILE``: evaluate scores produced by any system.

FILE is a CSV with a header row, or an NPZ, holding the columns / arrays
``score`` and ``label`` (1 = genuine / bona fide, 0 = impostor / attack),
optionally ``fold`` (k-fold accuracy, threshold chosen on the other folds)
and ``attack_type`` (adds ISO/IEC 30107-3 liveness metrics).  The results
go to the results store like any facebench run, so the report shows them
beside the built-in plugins under the same protocol.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness.errors import DataError

COLUMNS = ("score", "label", "fold", "attack_type")
_ALIASES = {"scores": "score", "labels": "label", "folds": "fold", "attack_types": "attack_type",
            "issame": "label"}


def _fail(path: Path, where: str, msg: str) -> DataError:
    return DataError(f"{path}{where}: {msg}")


def read_scores_csv(path: Path) -> dict[str, np.ndarray]:
    """Columns of a score CSV; errors name the file, line and column."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise _fail(path, ":1", "the file is empty; expected a header row such as score,label,fold") from None
        names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
        for need in ("score", "label"):
            if need not in names:
                raise _fail(path, ":1", f"no {need!r} column in the header {header}; expected "
                            "score,label[,fold][,attack_type]")
        col = {n: names.index(n) for n in COLUMNS if n in names}
        data: dict[str, list] = {n: [] for n in col}
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(header):
                raise _fail(path, f":{line}", f"{len(row)} field(s) but the header has {len(header)}")
            for n, i in col.items():
                v = row[i].strip()
                if n == "attack_type":
                    data[n].append(v)
                    continue
                try:
                    x = float(v)
                except ValueError:
                    raise _fail(path, f":{line}", f"column {header[i]!r}: {v!r} is not a number") from None
                if n == "score" and not np.isfinite(x):
                    raise _fail(path, f":{line}", f"column {header[i]!r}: {v!r} is not finite; scores must be finite")
                if n == "label" and x not in (0.0, 1.0):
                    raise _fail(path, f":{line}", f"column {header[i]!r}: {v!r}; labels must be 0 or 1 "
                                "(1 = genuine / bona fide)")
                if n == "fold" and x != int(x):
                    raise _fail(path, f":{line}", f"column {header[i]!r}: {v!r}; fold ids must be integers")
                data[n].append(x)
    if not data["score"]:
        raise _fail(path, "", "no data rows after the header")
    out = {"score": np.asarray(data["score"], dtype=np.float64),
           "label": np.asarray(data["label"], dtype=np.int64)}
    if "fold" in data:
        out["fold"] = np.asarray(data["fold"], dtype=np.int64)
    if "attack_type" in data:
        out["attack_type"] = np.asarray(data["attack_type"], dtype=object)
    return out


def read_scores_npz(path: Path) -> dict[str, np.ndarray]:
    """Arrays of a score NPZ (``score``, ``label`` [, ``fold``, ``attack_type``])."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {_ALIASES.get(k.lower(), k.lower()): z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as NPZ ({exc})") from None
    for need in ("score", "label"):
        if need not in arrays:
            raise DataError(f"{path}: no {need!r} array (has {sorted(arrays)}); expected score, label[, fold, attack_type]")
    n = arrays["score"].reshape(-1).size
    out: dict[str, np.ndarray] = {}
    for k in COLUMNS:
        if k not in arrays:
            continue
        a = arrays[k].reshape(-1)
        if a.size != n:
            raise DataError(f"{path}: array {k!r} has {a.size} entries but 'score' has {n}")
        if k == "score":
            a = a.astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(a))
            if bad.size:
                raise DataError(f"{path}: array 'score' entry {int(bad[0])} is {a[bad[0]]}; scores must be finite")
        elif k == "label":
            ok = np.isin(a, (0, 1))
            if not ok.all():
                i = int(np.flatnonzero(~ok)[0])
                raise DataError(f"{path}: array 'label' entry {i} is {a[i]!r}; labels must be 0 or 1")
            a = a.astype(np.int64)
        elif k == "fold":
            if a.dtype.kind not in "iu":
                raise DataError(f"{path}: array 'fold' has dtype {a.dtype}; expected integer fold ids")
            a = a.astype(np.int64)
        else:
            a = a.astype(str).astype(object)
        out[k] = a
    return out


def read_scores(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; expected a CSV or NPZ of scores")
    if path.suffix.lower() == ".npz":
        return read_scores_npz(path)
    return read_scores_csv(path)


def config_hash(path: Path, options: dict[str, Any]) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    h.update(json.dumps(options, sort_keys=True).encode())
    return h.hexdigest()[:10]


def evaluate(data: dict[str, np.ndarray], *, rule: str = "strict", bootstrap: int = 0) -> dict[str, Any]:
    """metrics / sections / curves for the columns read from a score file."""
    from harness.metrics.report import liveness_summary, verification_summary

    result = verification_summary(data["score"], data["label"], data.get("fold"), rule=rule, bootstrap=bootstrap)
    if "attack_type" in data:
        live = liveness_summary(data["score"], data["label"], data["attack_type"])
        keep = {"apcer", "bpcer", "acer", "hter"}
        result["metrics"].extend(m for m in live["metrics"] if m["name"] in keep)
        result["sections"].update(live["sections"])
    return result


def _table(metrics: list[dict]) -> str:
    rows = []
    for m in metrics:
        v = m["value"]
        text = "n/a" if v is None else f"{v:.6g}"
        if m.get("std") is not None:
            text += f" ± {m['std']:.3g}"
        if m.get("ci"):
            text += f"  [{m['ci'][0]:.4g}, {m['ci'][1]:.4g}]"
        rows.append((m["name"], text, "↑" if m["direction"] == "higher" else "↓"))
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{n:<{w}}  {d}  {t}" for n, t, d in rows)


@click.command("score")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--reports", default="reports", show_default=True, metavar="DIR",
              help="Results store folder (runs/ and index.html are written there).")
@click.option("--name", default=None, metavar="NAME", help="A label for this system in the report.")
@click.option("--rule", type=click.Choice(["strict", "nearest"]), default="strict", show_default=True,
              help="TAR@FAR rule: strict (largest TAR with FAR <= target) or nearest (insightface IJB).")
@click.option("--bootstrap", type=click.IntRange(min=0), default=0, show_default=True,
              help="Bootstrap resamples for a 95% interval on each TAR@FAR (0: none).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
def command(file: str, reports: str, name: str | None, rule: str, bootstrap: int, as_json: bool) -> None:
    """Evaluate FILE (CSV or NPZ: score,label[,fold][,attack_type]) under facebench's protocols.

    \b
    Examples:
      harness score my_system.csv --name "my system"
      harness score scores.npz --rule nearest --json
    """
    from harness.metrics.report import DEFAULT_FAR_TARGETS
    from harness.results import RunStore, collect_provenance

    path = Path(file)
    data = read_scores(path)
    result = evaluate(data, rule=rule, bootstrap=bootstrap)
    options = {"rule": rule, "bootstrap": bootstrap, "name": name}
    chash = config_hash(path, options)
    slug = "scores-" + (re.sub(r"[^a-z0-9]+", "-", (name or path.stem).lower()).strip("-") or "file")
    n = int(data["score"].size)
    config = {"command": "score", "file": str(path.resolve()), **options}
    results = {
        "task": "scores",
        "name": name or path.stem,
        "provenance": collect_provenance(config, {}, 0),
        "protocol": {
            "name": "external scores",
            "input": path.name,
            "pairs": n,
            "folds": int(np.unique(data["fold"]).size) if "fold" in data else None,
            "tar_at_far_rule": rule,
            "far_targets": list(DEFAULT_FAR_TARGETS),
            "accept": "score >= threshold",
            "fold_threshold": "chosen on the other folds over all midpoints (highest on ties)"
            if "fold" in data else None,
            "liveness_threshold": "EER threshold of these scores (optimistic)" if "attack_type" in data else None,
        },
        **result,
    }
    store = RunStore(reports)
    run = store.create(slug, chash)
    run.write_results(results)
    arrays = {"score": data["score"], "label": data["label"]}
    if "fold" in data:
        arrays["fold"] = data["fold"]
    if "attack_type" in data:
        arrays["attack_type"] = data["attack_type"].astype(str)
    run.save_arrays("scores", **arrays)
    try:
        from harness.report import render_all
    except ImportError:
        render_all = None
    if render_all is not None:
        render_all(reports)
    if as_json:
        click.echo(json.dumps(run.read_results(), indent=2))
    else:
        click.echo(f"{path.name}: {n} scores ({int(data['label'].sum())} genuine), rule {rule}")
        click.echo(_table(result["metrics"]))
        click.echo(f"written: {run.results_path}")
