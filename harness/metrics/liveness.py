"""Presentation attack detection metrics per ISO/IEC 30107-3.

Scores are bona fide scores (higher = more likely live); labels are 1 for
bona fide and 0 for attack; a presentation is classified bona fide when
``score >= threshold``.

* APCER of one attack species = attacks of that species classified bona fide
  / attacks of that species; the reported APCER is the maximum over species.
* BPCER = bona fide presentations classified as attacks / bona fide.
* ACER = (max APCER + BPCER) / 2 (not in the ISO text but widely reported).
* HTER = (FAR + FRR) / 2 with all attacks pooled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.metrics._checks import MetricInputError, check_pair, check_threshold

__all__ = ["PadResult", "apcer_bpcer_acer", "hter", "threshold_on_dev", "DEV_RULES"]

DEV_RULES = ("eer", "bpcer20", "bpcer10", "bpcer100")


@dataclass(frozen=True)
class PadResult:
    apcer: float
    bpcer: float
    acer: float
    apcer_per_species: dict = field(default_factory=dict)
    threshold: float = 0.0
    worst_species: str = ""


def _species(attack_types, y: np.ndarray) -> np.ndarray:
    if attack_types is None:
        return np.where(y, "", "attack").astype(object)
    a = np.asarray(attack_types, dtype=object).reshape(-1)
    if a.size != y.size:
        raise MetricInputError(
            f"attack_types: {a.size} entries for {y.size} scores; expected one per presentation"
        )
    a = np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in a], dtype=object)
    empty_attack = (~y) & (a == "")
    if empty_attack.any():
        a[empty_attack] = "attack"
    return a


def apcer_bpcer_acer(scores: object, labels: object, attack_types: object = None,
                     threshold: float = 0.5) -> PadResult:
    """APCER per species and its maximum, BPCER and ACER at ``threshold``.

    ``attack_types`` names the species of each attack (ignored for bona
    fide entries; an attack without a name is species ``"attack"``).
    """
    s, y = check_pair(scores, labels, labels_name="labels (1 = bona fide)")
    t = check_threshold(threshold)
    sp = _species(attack_types, y)
    accepted = s >= t
    per = {}
    for name in sorted(set(sp[~y].tolist())):
        m = (~y) & (sp == name)
        per[name] = float(np.count_nonzero(accepted & m) / np.count_nonzero(m))
    worst = max(per, key=lambda k: (per[k], k))
    apcer = per[worst]
    bpcer = float(np.count_nonzero(~accepted & y) / np.count_nonzero(y))
    return PadResult(apcer, bpcer, (apcer + bpcer) / 2.0, per, t, worst)


def hter(scores: object, labels: object, threshold: float) -> float:
    """Half total error rate, attacks pooled: (FAR + FRR) / 2."""
    from harness.metrics.verification import far_frr

    far, frr = far_frr(scores, labels, threshold)
    return (far + frr) / 2.0


def threshold_on_dev(dev_scores: object, dev_labels: object, rule: str = "eer") -> float:
    """A threshold fixed on a development split, to apply to a test split.

    ``"eer"``: the threshold of the ROC point with the smallest
    |APCER - BPCER| (attacks pooled; the highest such on ties).
    ``"bpcerN"`` (``bpcer20``, ``bpcer10``, ``bpcer100``): the highest
    threshold whose BPCER <= 1/N, which minimises APCER under that bound.
    """
    from harness.metrics.verification import Roc

    if rule not in DEV_RULES:
        raise MetricInputError(f"rule: {rule!r} is not one of {', '.join(DEV_RULES)}")
    s, y = check_pair(dev_scores, dev_labels, scores_name="dev_scores", labels_name="dev_labels")
    if rule == "eer":
        return Roc(s, y).eer()[1]
    bound = 1.0 / int(rule[len("bpcer"):])
    bf = np.sort(s[y])
    n = bf.size
    # BPCER(t) = #{bf < t} / n.  With t = bf[k], #{bf < t} <= k; the largest k
    # with (#{bf < bf[k]}) / n <= bound gives the highest admissible threshold.
    below = np.searchsorted(bf, bf, side="left")  # #{bf < bf[k]}
    ok = np.flatnonzero(below / n <= bound)
    return float(bf[ok[-1]])
