"""Demographic differentials: formulas against references on named edge
cases, counts against a per-pair loop, bootstrap replicates against the
materialised resample, and a planted-effect simulation whose known group
ratios the intervals must cover."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from harness.errors import DataError
from harness.formats.groups import parse_groups_text, read_groups
from harness.metrics import MetricInputError
from harness.metrics.demographics import (
    _Statistic,
    differentials,
    fairness_discrepancy_rate,
    global_threshold,
    group_report,
    ratio_max_gmean,
    ratio_max_min,
)


# -- the formulas ------------------------------------------------------------------
@pytest.mark.parametrize("rates", [[0.01, 0.02, 0.04], [0.3, 0.3], [1e-4, 0.5, 0.2, 0.9], [1.0, 0.5]],
                         ids=["doubling", "equal", "spread", "with-one"])
def test_ratios_match_numpy_and_scipy_gmean(rates):
    assert ratio_max_min(rates) == pytest.approx(max(rates) / min(rates), rel=1e-12)
    assert ratio_max_gmean(rates) == pytest.approx(max(rates) / stats.gmean(rates), rel=1e-12)


@pytest.mark.parametrize("rates", [[0.0, 0.1], [0.2], [], [np.nan, 0.1]], ids=["a-zero", "one-group", "none", "nan"])
def test_ratios_undefined(rates):
    assert ratio_max_min(rates) is None and ratio_max_gmean(rates) is None


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0, 0.3])
def test_fdr_matches_brute_force_over_group_pairs(alpha):
    rng = np.random.default_rng(3)
    fmr, fnmr = rng.random(5) * 0.1, rng.random(5) * 0.3
    a = max(abs(x - y) for x, y in itertools.product(fmr, fmr))
    b = max(abs(x - y) for x, y in itertools.product(fnmr, fnmr))
    assert fairness_discrepancy_rate(fmr, fnmr, alpha) == pytest.approx(1 - (alpha * a + (1 - alpha) * b))


def test_fdr_edge_cases():
    assert fairness_discrepancy_rate([0.1, 0.1], [0.2, 0.2]) == 1.0  # perfectly fair
    assert fairness_discrepancy_rate([0.0, 1.0], [0.0, 1.0]) == 0.0  # maximally unfair
    assert fairness_discrepancy_rate([0.1], [0.2, 0.3]) is None
    with pytest.raises(MetricInputError, match="alpha"):
        fairness_discrepancy_rate([0.1, 0.2], [0.1, 0.2], alpha=1.5)


def _brute_threshold(s, y, target):
    """The lowest candidate threshold (every score, and just above each) with FMR <= target."""
    imp = s[~y]
    cands = np.unique(np.r_[s, np.nextafter(s, np.inf), -np.inf])
    ok = [c for c in cands if np.count_nonzero(imp >= c) <= target * imp.size * (1 + 1e-12)]
    return min(ok)


@pytest.mark.parametrize("target", [1e-2, 1e-3, 0.1, 1e-5, 1.0], ids=["1e-2", "1e-3-exact-count", "0.1",
                                                                   "below-1-over-n", "accept-all"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_global_threshold_is_the_lowest_with_fmr_at_most_the_target(target, ties):
    rng = np.random.default_rng(0)
    s = np.r_[rng.normal(2, 1, 500), rng.normal(0, 1, 5000)]
    if ties:
        s = np.round(s, 1)
    y = np.r_[np.ones(500, bool), np.zeros(5000, bool)]
    t, far = global_threshold(s, y, target)
    assert t == _brute_threshold(s, y, target)
    assert far <= target and far == pytest.approx(np.mean(s[~y] >= t))
    if not ties and target * 5000 >= 1:
        assert far == pytest.approx(np.floor(target * 5000 + 1e-9) / 5000)  # the target reached exactly


# -- counts against a per-pair loop --------------------------------------------------
def _loop_reference(s, y, ga, gb, t):
    rows = {}
    same_n = same_k = cross_n = cross_k = 0
    for score, gen, a, b in zip(s, y, ga, gb):
        if not a or not b:
            continue
        acc = score >= t
        if a == b:
            r = rows.setdefault(a, [0, 0, 0, 0])
            if gen:
                r[0] += 1
                r[1] += not acc
            else:
                r[2] += 1
                r[3] += acc
                same_n += 1
                same_k += acc
        elif not gen:
            cross_n += 1
            cross_k += acc
    return rows, same_k / same_n, cross_k / cross_n


def test_counts_match_a_per_pair_loop_with_unknowns_mixed_pairs_and_ties():
    rng = np.random.default_rng(1)
    n = 3000
    s = np.round(rng.normal(size=n), 1)  # many ties, some exactly at the threshold
    y = rng.random(n) < 0.4
    groups = np.array(["", "a", "b", "c"], dtype=object)
    ga, gb = groups[rng.integers(0, 4, n)], groups[rng.integers(0, 4, n)]
    t = 0.5
    d = differentials(s, y, ga, gb, threshold=t, B=0)
    ref, same, cross = _loop_reference(s, y, ga, gb, t)
    got = {r["group"]: [r["genuine"], r["false_non_matches"], r["impostor"], r["false_matches"]] for r in d.groups}
    assert got == ref
    for r in d.groups:
        assert r["fnmr"] == pytest.approx(r["false_non_matches"] / r["genuine"])
        assert r["fmr"] == pytest.approx(r["false_matches"] / r["impostor"])
    assert d.summary["fmr_same"]["value"] == pytest.approx(same)
    assert d.summary["fmr_cross"]["value"] == pytest.approx(cross)
    assert d.counts["unknown"] == int(sum((not a) or (not b) for a, b in zip(ga, gb)))
    assert d.counts["genuine_mixed"] == int(sum(bool(a) and bool(b) and a != b and g for a, b, g in zip(ga, gb, y)))
    fmr = [r["fmr"] for r in d.groups]
    fnmr = [r["fnmr"] for r in d.groups]
    assert d.summary["fdr"]["value"] == pytest.approx(fairness_discrepancy_rate(fmr, fnmr))
    assert d.summary["fmr_max_gmean"]["value"] == pytest.approx(max(fmr) / stats.gmean(fmr))


def test_replicates_equal_the_metric_on_the_materialised_resample():
    rng = np.random.default_rng(2)
    n = 400
    s, y = rng.normal(size=n) + 0.8 * (rng.random(n) < 0.5), rng.random(n) < 0.5
    g = np.array(["x", "y", "z"], dtype=object)[rng.integers(0, 3, n)]
    ga, gb = g, np.where(y, g, np.array(["x", "y", "z"], dtype=object)[rng.integers(0, 3, n)])
    t = 0.4
    names = ["x", "y", "z"]
    code = {k: i for i, k in enumerate(names)}
    stat = _Statistic(y, s >= t, np.array([code[v] for v in ga]), np.array([code[v] for v in gb]), names, 0.5)
    w = rng.integers(0, 3, (1, n))
    got = {k: float(v[0]) for k, v in stat(w).items()}
    idx = np.repeat(np.arange(n), w[0])
    ref = differentials(s[idx], y[idx], ga[idx], gb[idx], threshold=t, B=0)
    for r in ref.groups:
        assert got[f"fmr:{r['group']}"] == pytest.approx(r["fmr"])
        assert got[f"fnmr:{r['group']}"] == pytest.approx(r["fnmr"])
    for key in ("fmr_max_min", "fnmr_max_gmean", "fdr", "same_over_cross"):
        assert got[key] == pytest.approx(ref.summary[key]["value"])


# -- planted effects ---------------------------------------------------------------
def _planted(seed: int, fmr_mu=(0.0, 0.4, 0.8), fnmr_shift=(0.0, 0.3, 0.6), per_group=300):
    """Subjects in three groups; each subject has 6 genuine pairs and impostor pairs
    against random others.  Same-group impostor scores ~ N(mu_g, 1), cross-group
    ~ N(-0.5, 1); genuine ~ N(3 - shift_g, 1) plus a subject effect.  At t = 2 the true
    rates are normal tail areas."""
    rng = np.random.default_rng(seed)
    names = np.array(["g0", "g1", "g2"])
    n_sub = per_group * 3
    sub_group = np.repeat(np.arange(3), per_group)
    effect = rng.normal(0, 0.3, n_sub)
    gen_sub = np.repeat(np.arange(n_sub), 6)
    g_gen = sub_group[gen_sub]
    # the subject effect is N(0, 0.3^2) on top of N(0, 1): genuine sd = sqrt(1.09)
    gen = 3.0 - np.asarray(fnmr_shift)[g_gen] + effect[gen_sub] + rng.normal(0, 1, gen_sub.size)
    ia = rng.integers(0, n_sub, 40 * n_sub)
    ib = rng.integers(0, n_sub, ia.size)
    keep = ia != ib
    ia, ib = ia[keep], ib[keep]
    same = sub_group[ia] == sub_group[ib]
    imp = np.where(same, np.asarray(fmr_mu)[sub_group[ia]], -0.5) + rng.normal(0, 1, ia.size)
    s = np.r_[gen, imp]
    y = np.r_[np.ones(gen.size, bool), np.zeros(imp.size, bool)]
    ga = names[np.r_[g_gen, sub_group[ia]]]
    gb = names[np.r_[g_gen, sub_group[ib]]]
    subj_a, subj_b = np.r_[gen_sub, ia], np.r_[gen_sub, ib]
    t = 2.0
    true_fmr = stats.norm.sf(t - np.asarray(fmr_mu))
    true_fnmr = stats.norm.cdf((t - (3.0 - np.asarray(fnmr_shift))) / np.sqrt(1.09))
    truth = {
        "fmr_max_min": true_fmr.max() / true_fmr.min(),
        "fmr_max_gmean": true_fmr.max() / stats.gmean(true_fmr),
        "fnmr_max_min": true_fnmr.max() / true_fnmr.min(),
        "fnmr_max_gmean": true_fnmr.max() / stats.gmean(true_fnmr),
        "fdr": 1 - 0.5 * (np.ptp(true_fmr) + np.ptp(true_fnmr)),
        "fmr_cross": stats.norm.sf(t + 0.5),
    }
    return s, y, ga, gb, subj_a, subj_b, t, truth, true_fmr, true_fnmr


@pytest.mark.parametrize("unit", ["pairs", "subjects"])
def test_planted_group_effects_are_recovered_within_their_intervals(unit):
    """Twelve true values checked at once: each interval at 1 - 0.05/12 (Bonferroni),
    so all of them cover with probability >= 95 % when the intervals are right."""
    s, y, ga, gb, sa, sb, t, truth, true_fmr, true_fnmr = _planted(11)
    kw = {"subject_a": sa, "subject_b": sb} if unit == "subjects" else {}
    d = differentials(s, y, ga, gb, threshold=t, B=1000, seed=5, level=1 - 0.05 / 12, **kw)
    assert d.ci["unit"] == unit
    for key, true in truth.items():
        lo, hi = d.summary[key]["ci"]
        assert lo <= true <= hi, (key, true, lo, hi)
    for r, f, n in zip(d.groups, true_fmr, true_fnmr):
        assert r["fmr_ci"][0] <= f <= r["fmr_ci"][1], r
        assert r["fnmr_ci"][0] <= n <= r["fnmr_ci"][1], r
    # the planted ordering is found: g2 has the highest FMR and FNMR
    assert max(d.groups, key=lambda r: r["fmr"])["group"] == "g2"
    assert max(d.groups, key=lambda r: r["fnmr"])["group"] == "g2"
    assert d.summary["fmr_max_min"]["ci"][0] > 1.5  # an effect this size is detected


def test_no_planted_effect_gives_intervals_around_one():
    s, y, ga, gb, *_ = _planted(12, fmr_mu=(0.5, 0.5, 0.5), fnmr_shift=(0.3, 0.3, 0.3))
    d = differentials(s, y, ga, gb, threshold=2.0, B=400, seed=1)
    for key in ("fmr_max_min", "fnmr_max_min", "fmr_max_gmean", "fnmr_max_gmean"):
        lo, hi = d.summary[key]["ci"]
        assert lo >= 1.0 and hi < 2.0, key  # max/min >= 1 by construction; no large effect


# -- the report and bad input --------------------------------------------------------
def test_group_report_runs_each_attribute_at_one_threshold():
    rng = np.random.default_rng(4)
    n = 2000
    s, y = rng.normal(size=n) + 2 * (rng.random(n) < 0.5), rng.random(n) < 0.5
    attrs = [{"sex": "f" if i % 2 else "m", "age": ("young", "old")[i % 3 == 0]} for i in range(n)]
    attrs[0] = {}
    out = group_report(s, y, attrs, attrs, ["sex", "age", "missing"], fmr_target=1e-2, B=50)
    t, _ = global_threshold(s, y, 1e-2)
    assert out["threshold"] == t
    assert set(out["attributes"]) == {"sex", "age"} and "missing" in out["skipped"]
    assert all(a["threshold"] == t for a in out["attributes"].values())
    assert out["attributes"]["sex"]["counts"]["unknown"] == 1


@pytest.mark.parametrize("kw, match", [
    ({"group_a": ["a"] * 3}, "entries for 4 scores"),
    ({"group_a": [None] * 4, "group_b": [""] * 4}, "no pair has a known group"),
    ({"alpha": 2.0}, "alpha"),
    ({"B": -1}, "B:"),
])
def test_bad_input_is_one_line_error(kw, match):
    args = {"group_a": ["a", "b", "a", "b"], "group_b": ["a", "b", "b", "a"], **kw}
    with pytest.raises(MetricInputError, match=match) as err:
        differentials([0.1, 0.9, 0.3, 0.4], [1, 1, 0, 0], args.pop("group_a"), args.pop("group_b"), **args)
    assert "\n" not in str(err.value)


# -- the groups file -----------------------------------------------------------------
def test_groups_file_by_identity_and_by_image(tmp_path):
    p = tmp_path / "g.csv"
    p.write_bytes(b"\xef\xbb\xbfidentity,sex,age\nAaron_Peirsol,male,20-39\nSerena_Williams,female,\n")
    t = read_groups(p)
    assert t.key == "identity" and t.attributes == ("sex", "age")
    assert t.values["Serena_Williams"] == {"sex": "female"}  # empty cell: unknown
    assert t.groups("sex") == ["female", "male"]
    assert t.lookup_images(["x", "y"], ["Serena_Williams", "Nobody"]) == [{"sex": "female"}, {}]
    img = parse_groups_text("image,pose\nAaron_Peirsol_0001.jpg,frontal\nb/Aaron_Peirsol_0001.jpg,profile\n")
    got = img.lookup_images(["/d/a/Aaron_Peirsol_0001.jpg", "/d/b/Aaron_Peirsol_0001.jpg", "/d/c.jpg"], [])
    assert got == [{"pose": "frontal"}, {"pose": "profile"}, {}]  # the longest matching key wins


@pytest.mark.parametrize("text, match", [
    ("", "is empty"),
    ("name,sex\nA,m\n", "first column"),
    ("identity\nA\n", "no attribute columns"),
    ("identity,sex,sex\nA,m,m\n", "appears twice"),
    ("identity,sex,image\nA,m,x\n", "one key column"),
    ("identity,sex\n", "no rows"),
    ("identity,sex\nA,m\nA,f\n", "listed twice .first on line 2"),
    ("identity,sex\nA,m,extra\n", ":2: 3 fields"),
    ("identity,sex\n,m\n", "identity is empty"),
    ("identity,sex\nA\x00,m\n", "NUL"),
])
def test_bad_groups_file_is_one_line_data_error(text, match):
    with pytest.raises(DataError, match=match) as err:
        parse_groups_text(text, "g.csv")
    assert "\n" not in str(err.value)


def test_unreadable_groups_file(tmp_path):
    with pytest.raises(DataError, match="cannot read groups file"):
        read_groups(tmp_path / "absent.csv")
    p = tmp_path / "latin1.csv"
    p.write_bytes("identity,sex\nJos\xe9,m\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_groups(p)
