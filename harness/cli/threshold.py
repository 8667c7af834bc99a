"""``harness threshold DEV --far 1e-4``: pick a threshold on one set, use it on another.

The honest answer to "which threshold should I use": a threshold chosen on
the very scores it is reported on is optimistic.  This command chooses it on
a **development** run (or score file) -- the strict rule of
:func:`harness.metrics.verification.tar_at_far`: the threshold with the
largest TAR whose FAR is at most the target, the highest such -- and with
``--apply RUN`` applies it unchanged to other runs, reporting the FAR and
FRR that were actually realised there, each with an exact binomial
(Clopper-Pearson) and a Wilson interval and, when no error was seen, the
rule-of-three bound (:mod:`harness.metrics.uncertainty`).  ``harness score
FILE --threshold T`` does the same for any score file.

Scores come from a run's ``scores.npz`` (``score`` and ``label``, written
by every recognition run and by ``harness score``; ``--key`` picks another
score array, e.g. an inpainting run's ``score_restored``), or from a CSV /
NPZ score file as ``harness score`` reads it.  Accept when
``score >= threshold``; label 1 = genuine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness.errors import DataError

__all__ = ["command", "load_scores", "rates_at", "threshold_metrics"]

BINOMIAL = ("clopper-pearson", "wilson")


def load_scores(ref: str, reports: str, array: str = "scores", key: str = "score") -> tuple[str, np.ndarray,
                                                                                           np.ndarray]:
    """(a name for it, scores, labels) of a score file or of a run (id, prefix or folder)."""
    p = Path(ref)
    if p.is_file():
        from harness.cli.score import read_scores

        data = read_scores(p)
        if key not in data:
            raise DataError(f"{p}: no {key!r} column; a score file holds 'score' and 'label'")
        return p.name, data[key], data["label"]
    from harness.results import RunStore

    run = RunStore(reports).get(ref)
    arrays = run.load_arrays(array)
    missing = [k for k in (key, "label") if k not in arrays]
    if missing:
        raise DataError(f"run {run.run_id}: {array}.npz has no {' or '.join(map(repr, missing))} array "
                        f"(it has {', '.join(sorted(arrays))}); pick one with --key")
    return f"{run.run_id} ({array}.npz:{key})", np.asarray(arrays[key], np.float64), arrays["label"]


def rates_at(scores: np.ndarray, labels: np.ndarray, threshold: float, level: float = 0.95) -> dict[str, Any]:
    """FAR and FRR at ``threshold`` with their counts and binomial intervals."""
    from harness.metrics.uncertainty import error_rate_interval
    from harness.metrics.verification import errors_at_threshold

    e = errors_at_threshold(scores, labels, threshold)
    out: dict[str, Any] = {"threshold": e.threshold, "genuine": e.n_genuine, "impostor": e.n_impostor}
    for name, k, n in (("far", e.false_accepts, e.n_impostor), ("frr", e.false_rejects, e.n_genuine)):
        ivs = {m: error_rate_interval(k, n, level, m) for m in BINOMIAL}
        out[name] = {"value": k / n, "errors": k, "n": n, "level": level,
                     **{m: [iv.low, iv.high] for m, iv in ivs.items()}}
        if k == 0:
            out[name]["rule_of_3"] = ivs["clopper-pearson"].extra["rule_of_3"]
    return out


def threshold_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float,
                      level: float = 0.95) -> list[dict[str, Any]]:
    """``far_at_threshold`` / ``frr_at_threshold`` metric records (Clopper-Pearson ``ci``,
    Wilson in ``meta``), for a threshold fixed elsewhere."""
    from harness.metrics._record import Metric
    from harness.metrics.uncertainty import error_rate_interval, set_interval

    r = rates_at(scores, labels, threshold, level)
    records = []
    for name, what in (("far", "impostor scores >= threshold"), ("frr", "genuine scores < threshold")):
        rate = r[name]
        m = Metric(f"{name}_at_threshold", rate["value"], "lower",
                   f"{what}, at a threshold fixed beforehand (not chosen on these scores)",
                   meta={"threshold": float(threshold), "errors": rate["errors"], "n": rate["n"],
                         "wilson": rate["wilson"]}).to_dict()
        set_interval(m, error_rate_interval(rate["errors"], rate["n"], level, "clopper-pearson"))
        records.append(m)
    return records


def _rate_text(rate: dict[str, Any]) -> str:
    lo, hi = rate["clopper-pearson"]
    wl, wh = rate["wilson"]
    pct = f"{100 * rate['level']:g}%"
    text = (f"{rate['value']:.4g} ({rate['errors']:,}/{rate['n']:,}); {pct} Clopper-Pearson [{lo:.3g}, {hi:.3g}], "
            f"Wilson [{wl:.3g}, {wh:.3g}]")
    if "rule_of_3" in rate:
        text += f"; no error seen: rule-of-3 upper bound {rate['rule_of_3']:.3g}"
    return text


def _choose(scores: np.ndarray, labels: np.ndarray, far: float) -> dict[str, Any]:
    from harness.metrics.verification import Roc

    op = Roc(scores, labels).tar_at_far(far, "strict")
    if not np.isfinite(op.threshold):
        raise DataError(f"no threshold reaches FAR <= {far:g} with any genuine accepted on the development "
                        "scores (every genuine score is below the highest impostor score); choose a larger --far")
    return {"far_target": far, "rule": "strict: largest TAR with FAR <= target, highest such threshold",
            "threshold": op.threshold, "tar": op.tar, "far": op.far, "resolvable": op.defined}


def _report(dev_name: str, choice: dict[str, Any], dev: dict[str, Any], applied: list[dict[str, Any]]) -> str:
    t = choice["threshold"]
    lines = [f"development: {dev_name}: {dev['genuine'] + dev['impostor']:,} scores "
             f"({dev['genuine']:,} genuine, {dev['impostor']:,} impostor)",
             f"threshold for FAR <= {choice['far_target']:g} ({choice['rule']}): {t!r}"]
    if not choice["resolvable"]:
        lines.append(f"  warning: {dev['impostor']:,} impostor scores cannot resolve FAR {choice['far_target']:g} "
                     f"(it needs at least {int(np.ceil(1 / choice['far_target'])):,}); this is the lowest "
                     "threshold with no false accept on the development scores")
    lines += [f"  development FAR {_rate_text(dev['far'])}", f"  development FRR {_rate_text(dev['frr'])}"]
    for a in applied:
        inside = a["far"]["clopper-pearson"][0] <= choice["far_target"] <= a["far"]["clopper-pearson"][1]
        lines += [f"applied to {a['name']}: {a['genuine'] + a['impostor']:,} scores",
                  f"  realised FAR {_rate_text(a['far'])}",
                  f"  realised FRR {_rate_text(a['frr'])}",
                  f"  target FAR {choice['far_target']:g} is {'inside' if inside else 'OUTSIDE'} the realised "
                  "FAR's interval" + ("" if inside else ": the threshold does not transfer at this target")]
    lines.append(f"use it elsewhere: harness score FILE --threshold {t!r}")
    return "\n".join(lines)


@click.command("threshold")
@click.argument("dev")
@click.option("--far", "far", required=True, type=float, metavar="RATE",
              help="FAR target on the development scores, e.g. 1e-4.")
@click.option("--apply", "apply_to", multiple=True, metavar="RUN",
              help="A run (id, prefix or folder) or score file to apply the threshold to (repeatable).")
@click.option("--reports", default="reports", show_default=True, metavar="DIR", help="Results store folder.")
@click.option("--scores", "array", default="scores", show_default=True, metavar="NAME",
              help="The run's array file (NAME.npz).")
@click.option("--key", default="score", show_default=True, help="The score array in it.")
@click.option("--level", type=float, default=0.95, show_default=True, help="Confidence level of the intervals.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def command(dev: str, far: float, apply_to: tuple[str, ...], reports: str, array: str, key: str, level: float,
            as_json: bool) -> None:
    """Choose a threshold at a FAR target on DEV (a run or score file) and
    report the FAR / FRR it realises on other runs, with binomial intervals.

    \b
    Examples:
      harness threshold 2026-12-07T05 --far 1e-3
      harness threshold dev_scores.csv --far 1e-4 --apply test_scores.csv --json
      harness threshold RUN_A --far 1e-3 --apply RUN_B --apply RUN_C
    """
    from harness.errors import ConfigError
    from harness.metrics._checks import check_rate

    far = check_rate(far, "--far")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"--level {level!r}: expected a confidence level in (0, 1), e.g. 0.95")
    dev_name, s, y = load_scores(dev, reports, array, key)
    choice = _choose(s, y, far)
    dev_rates = rates_at(s, y, choice["threshold"], level)
    applied = []
    for ref in apply_to:
        name, s2, y2 = load_scores(ref, reports, array, key)
        applied.append({"name": name, **rates_at(s2, y2, choice["threshold"], level)})
    if as_json:
        click.echo(json.dumps({"development": {"name": dev_name, **dev_rates}, **choice, "applied": applied},
                              indent=2))
        return
    click.echo(_report(dev_name, choice, dev_rates, applied))
