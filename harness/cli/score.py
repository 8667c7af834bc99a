"""``harness score FILE``: evaluate scores produced by any system.

FILE is a CSV with a header row, or an NPZ, holding the columns / arrays
``score`` and ``label`` (1 = genuine / bona fide, 0 = impostor / attack),
optionally ``fold`` (k-fold accuracy, threshold chosen on the other folds),
``attack_type`` (adds ISO/IEC 30107-3 liveness metrics) and the identities
of each pair, ``subject`` or ``subject_a,subject_b`` (confidence intervals
resample subjects, :mod:`harness.metrics.uncertainty`).  Every headline
metric gets a 95 % interval.  The results go to the results store like any
facebench run, so the report shows them beside the built-in plugins under
the same protocol.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import click
import numpy as np

from harness.errors import DataError

COLUMNS = ("score", "label", "fold", "attack_type", "subject", "subject_a", "subject_b")
#: Columns read as text.
TEXT_COLUMNS = ("attack_type", "subject", "subject_a", "subject_b")
_ALIASES = {"scores": "score", "labels": "label", "folds": "fold", "attack_types": "attack_type",
            "issame": "label", "subjects": "subject"}
_EXPECTED = "score,label[,fold][,attack_type][,subject | ,subject_a,subject_b]"


def _fail(path: Path, where: str, msg: str) -> DataError:
    return DataError(f"{path}{where}: {msg}")


def _text_lines(path: Path, fh: Any) -> Iterator[str]:
    """The lines of a binary file as UTF-8 text (a leading BOM dropped); a
    line that is not UTF-8 is a :class:`DataError` naming it."""
    pieces = (piece for chunk in fh for piece in chunk.splitlines(keepends=True))  # \n, \r\n or \r ends a line
    for n, raw in enumerate(pieces, 1):
        if n == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        if b"\0" in raw:
            raise _fail(path, f":{n}", "contains NUL bytes: this is a binary file, not a CSV; "
                        "expected UTF-8 text (score,label[,fold][,attack_type]) or an .npz")
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(path, f":{n}", f"byte 0x{raw[exc.start]:02x} at column {exc.start + 1} is not UTF-8; "
                        "expected a UTF-8 CSV — re-save the file as UTF-8 (or give an .npz)") from None


def _rows(path: Path, reader: Any) -> Iterator[list[str]]:
    """The rows of ``reader``; a CSV syntax error is a :class:`DataError`."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _fail(path, f":{reader.line_num}", f"not a readable CSV ({exc})") from None
        yield row


def read_scores_csv(path: Path) -> dict[str, np.ndarray]:
    """Columns of a score CSV; errors name the file, line and column."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot open ({exc.strerror})") from None
    with fh:
        reader = csv.reader(_text_lines(path, fh))
        try:
            header = next(reader)
        except StopIteration:
            raise _fail(path, ":1", "the file is empty; expected a header row such as score,label,fold") from None
        except csv.Error as exc:
            raise _fail(path, ":1", f"not a readable CSV ({exc})") from None
        names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
        for need in ("score", "label"):
            if need not in names:
                raise _fail(path, ":1", f"no {need!r} column in the header {header}; expected "
                            f"{_EXPECTED}")
        col = {n: names.index(n) for n in COLUMNS if n in names}
        data: dict[str, list] = {n: [] for n in col}
        for row in _rows(path, reader):
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < len(header):
                raise _fail(path, f":{line}", f"{len(row)} field(s) but the header has {len(header)}")
            for n, i in col.items():
                v = row[i].strip()
                if n in TEXT_COLUMNS:
                    if n != "attack_type" and not v:
                        raise _fail(path, f":{line}", f"column {header[i]!r} is empty; every pair needs its "
                                    "subject (or drop the subject columns to resample pairs)")
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
    for n in TEXT_COLUMNS:
        if n in data:
            out[n] = np.asarray(data[n], dtype=object)
    return _check_subjects(path, out)


def _check_subjects(path: Path, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``subject`` alone, or ``subject_a`` with ``subject_b``; never a half pair."""
    has = [k for k in ("subject_a", "subject_b") if k in data]
    if len(has) == 1:
        other = "subject_b" if has[0] == "subject_a" else "subject_a"
        raise DataError(f"{path}: has {has[0]!r} but no {other!r}; give both (the two people of each pair) "
                        "or one 'subject' column")
    if has and "subject" in data:
        raise DataError(f"{path}: has 'subject' and 'subject_a','subject_b'; give one or the other")
    return data


def read_scores_npz(path: Path) -> dict[str, np.ndarray]:
    """Arrays of a score NPZ (``score``, ``label`` [, ``fold``, ``attack_type``])."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {_ALIASES.get(k.lower(), k.lower()): z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read as NPZ ({exc})") from None
    for need in ("score", "label"):
        if need not in arrays:
            raise DataError(f"{path}: no {need!r} array (has {sorted(arrays)}); expected {_EXPECTED}")
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
            if k != "attack_type" and (a == "").any():
                raise DataError(f"{path}: array {k!r} entry {int(np.flatnonzero(a == '')[0])} is empty; "
                                "every pair needs its subject")
        out[k] = a
    return _check_subjects(path, out)


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


def ci_unit_for(path: Path, data: dict[str, np.ndarray], ci_unit: str | None) -> str:
    """The resampling unit: ``subjects`` where the file names them, else ``pairs``."""
    has_subjects = "subject" in data or "subject_a" in data
    if ci_unit is None:
        return "subjects" if has_subjects else "pairs"
    if ci_unit == "subjects" and not has_subjects:
        raise DataError(f"{path}: --ci-unit subjects needs a 'subject' column (or 'subject_a','subject_b') "
                        f"naming the people of each pair; found {sorted(data)} — add them or use --ci-unit pairs")
    return ci_unit


def unit_reason(data: dict[str, np.ndarray], unit: str, ci_unit: str | None) -> str:
    """Why the bootstrap resamples ``unit``, for the protocol statement and the printed line."""
    if unit == "subjects":
        return "the file names the people of every pair"
    if ci_unit == "pairs":
        return "--ci-unit pairs"
    return ("the file names no subjects (e.g. a scores.npz written before runs saved subject_a / subject_b): "
            "pairs resampled within label and fold, which ignores that pairs sharing a person are correlated")


def evaluate(data: dict[str, np.ndarray], *, rule: str = "strict", bootstrap: int = 0, ci_unit: str = "pairs",
             ci_method: str = "percentile", seed: int = 0) -> dict[str, Any]:
    """metrics / sections / curves for the columns read from a score file;
    with ``bootstrap > 0`` the headline metrics get 95 % intervals
    (:func:`~harness.metrics.uncertainty.attach_intervals`)."""
    from harness.metrics.report import liveness_summary, verification_summary
    from harness.metrics.uncertainty import attach_intervals

    result = verification_summary(data["score"], data["label"], data.get("fold"), rule=rule)
    if bootstrap > 0:
        subject_a = data.get("subject", data.get("subject_a"))
        attach_intervals(result["metrics"], data["score"], data["label"], folds=data.get("fold"),
                         subject_a=subject_a, subject_b=data.get("subject_b"), unit=ci_unit, B=bootstrap,
                         seed=seed, method=ci_method)
    if "attack_type" in data:
        live = liveness_summary(data["score"], data["label"], data["attack_type"])
        if bootstrap > 0:
            from harness.metrics.uncertainty import attach_by_name, liveness_intervals

            attach_by_name(live["metrics"], liveness_intervals(
                data["score"], data["label"], live["sections"]["liveness"]["threshold"], data["attack_type"],
                B=bootstrap, seed=seed, method=ci_method))
        keep = {"apcer", "bpcer", "acer", "hter"}
        result["metrics"].extend(m for m in live["metrics"] if m["name"] in keep)
        result["sections"].update(live["sections"])
    return result


def _ci_text(m: dict) -> str:
    info = (m.get("meta") or {}).get("ci") or {}
    if not m.get("ci"):
        return ""
    lo, hi = m["ci"]
    how = info.get("method", "")
    if info.get("unit") and info.get("unit") != "trials":
        how += f", {info['unit']}"
    text = f"  [{lo:.4g}, {hi:.4g}] {100 * info.get('level', 0.95):g}% {how}".rstrip()
    if info.get("rule_of_3") is not None:
        text += f"; rule of 3 upper {info['rule_of_3']:.3g}"
    return text


def _table(metrics: list[dict]) -> str:
    rows = []
    for m in metrics:
        v = m["value"]
        text = "n/a" if v is None else f"{v:.6g}"
        if m.get("std") is not None:
            text += f" ± {m['std']:.3g}"
        text += _ci_text(m)
        rows.append((m["name"], text, "↑" if m["direction"] == "higher" else "↓"))
    w = max(len(r[0]) for r in rows)
    return "\n".join(f"{n:<{w}}  {d}  {t}" for n, t, d in rows)


def _protocol(path: Path, data: dict[str, np.ndarray], rule: str, intervals: dict | None) -> dict[str, Any]:
    from harness.metrics.report import DEFAULT_FAR_TARGETS

    return {
        "name": "external scores",
        "input": path.name,
        "pairs": int(data["score"].size),
        "folds": int(np.unique(data["fold"]).size) if "fold" in data else None,
        "tar_at_far_rule": rule,
        "far_targets": list(DEFAULT_FAR_TARGETS),
        "accept": "score >= threshold",
        "fold_threshold": "chosen on the other folds over all midpoints (highest on ties)"
        if "fold" in data else None,
        "liveness_threshold": "EER threshold of these scores (optimistic)" if "attack_type" in data else None,
        "intervals": intervals,
    }


def _intervals_line(iv: dict | None) -> str:
    if iv is None:
        return "intervals: none (--bootstrap 0)"
    unit = ("subjects (a pair weighs c_a·c_b: both its people drawn, with multiplicity)"
            if iv["unit"] == "subjects" else "pairs (within label and fold)")
    return (f"intervals: 95% {iv['method']} bootstrap over {unit}, B={iv['B']}, seed {iv['seed']}; "
            "FAR/FRR at the EER threshold: " + ("exact binomial (Clopper-Pearson)" if iv["unit"] == "pairs"
                                                else "the same bootstrap")
            + (f"\n  unit: {iv['unit_reason']}" if iv.get("unit_reason") else ""))


def _demographics(path: Path, data: dict[str, np.ndarray], groups: str, bootstrap: int, seed: int) -> dict:
    """``--groups``: differentials of the people named by the subject columns."""
    from harness.formats.groups import read_groups
    from harness.metrics.demographics import group_report_by_subject
    from harness.tasks._gallery import evidence_fmr_target

    if "subject" not in data and "subject_a" not in data:
        raise DataError(f"{path}: --groups needs a 'subject' column (or 'subject_a','subject_b') naming the "
                        "people of each pair")
    n_imp = int((data["label"] == 0).sum())
    return group_report_by_subject(data["score"], data["label"], data.get("subject", data.get("subject_a")),
                                   data.get("subject_b"), read_groups(groups), fmr_target=evidence_fmr_target(n_imp),
                                   B=bootstrap, seed=seed)


@click.command("score")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--reports", default="reports", show_default=True, metavar="DIR",
              help="Results store folder (runs/ and index.html are written there).")
@click.option("--name", default=None, metavar="NAME", help="A label for this system in the report.")
@click.option("--rule", type=click.Choice(["strict", "nearest"]), default="strict", show_default=True,
              help="TAR@FAR rule: strict (largest TAR with FAR <= target) or nearest (insightface IJB).")
@click.option("--bootstrap", "bootstrap", type=click.IntRange(min=0), default=1000, show_default=True,
              metavar="N", help="Bootstrap replicates for the 95% intervals of the headline metrics (0: none).")
@click.option("--ci-unit", type=click.Choice(["pairs", "subjects"]), default=None,
              help="What the bootstrap resamples: pairs, or subjects with all their pairs (needs a 'subject' "
                   "or 'subject_a,subject_b' column). Default: subjects when FILE names them, else pairs.")
@click.option("--ci-method", type=click.Choice(["percentile", "bca"]), default="percentile", show_default=True,
              help="Bootstrap interval: percentile, or bias-corrected and accelerated.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap draws.")
@click.option("--groups", default=None, metavar="FILE.csv",
              help="identity,attribute,… for the people of the 'subject' columns: per-group FMR / FNMR at one "
                   "global threshold, their ratios and the FDR (docs/metrics.md).")
@click.option("--threshold", type=float, default=None, metavar="T",
              help="A threshold fixed beforehand (e.g. by `harness threshold`): FAR / FRR at it with "
                   "Clopper-Pearson and Wilson intervals.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON instead of a table.")
def command(file: str, reports: str, name: str | None, rule: str, bootstrap: int, ci_unit: str | None,
            ci_method: str, seed: int, groups: str | None, threshold: float | None, as_json: bool) -> None:
    """Evaluate FILE (CSV or NPZ: score,label[,fold][,attack_type][,subject | ,subject_a,subject_b])
    under facebench's protocols, with a 95% interval on each headline metric.

    \b
    Examples:
      harness score my_system.csv --name "my system"
      harness score lfw_scores.csv --ci-unit subjects --bootstrap 1000 --seed 1
      harness score scores.npz --rule nearest --json
    """
    from harness.results import RunStore, collect_provenance

    path = Path(file)
    store = RunStore(reports)
    store.check_writable()  # before any work: a bad --reports leaves nothing behind
    data = read_scores(path)
    unit = ci_unit_for(path, data, ci_unit)
    result = evaluate(data, rule=rule, bootstrap=bootstrap, ci_unit=unit, ci_method=ci_method, seed=seed)
    if threshold is not None:  # a threshold fixed elsewhere (harness/cli/threshold.py)
        from harness.cli.threshold import threshold_metrics

        result["metrics"].extend(threshold_metrics(data["score"], data["label"], threshold))
    if groups:  # demographic differentials (harness.metrics.demographics)
        result["sections"]["demographics"] = _demographics(path, data, groups, bootstrap, seed)
    intervals = ({"level": 0.95, "method": ci_method, "unit": unit, "B": bootstrap, "seed": seed,
                  "unit_reason": unit_reason(data, unit, ci_unit)} if bootstrap > 0 else None)
    options = {"rule": rule, "bootstrap": bootstrap, "ci_unit": unit, "ci_method": ci_method, "seed": seed,
               "name": name, **({"groups": str(groups)} if groups else {}),
               **({"threshold": threshold} if threshold is not None else {})}
    chash = config_hash(path, options)
    slug = "scores-" + (re.sub(r"[^a-z0-9]+", "-", (name or path.stem).lower()).strip("-") or "file")
    n = int(data["score"].size)
    config = {"command": "score", "file": str(path.resolve()), **options}
    results = {
        "task": "scores",
        "name": name or path.stem,
        "provenance": collect_provenance(config, {}, seed),
        "protocol": _protocol(path, data, rule, intervals),
        **result,
    }
    run = store.create(slug, chash)
    try:
        run.write_results(results)
        arrays = {"score": data["score"], "label": data["label"]}
        if "fold" in data:
            arrays["fold"] = data["fold"]
        for k in TEXT_COLUMNS:
            if k in data:
                arrays[k] = data[k].astype(str)
        run.save_arrays("scores", **arrays)
    except BaseException:  # leave no half-written run behind
        shutil.rmtree(run.path, ignore_errors=True)
        raise
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
        click.echo(_intervals_line(intervals))
        click.echo(_table(result["metrics"]))
        click.echo(f"written: {run.results_path}")
