"""Detection metrics: IoU by hand, WIDER FACE AP against a transcription of the
official evaluation loop on the real val ground truth, FDDB on the real folds."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics._checks import MetricInputError
from harness.metrics.detection import (
    fddb_discrete_roc,
    iou,
    load_fddb_folds,
    load_wider_ground_truth,
    voc_ap,
    wider_ap,
)

from tests.conftest import need_data


def test_iou_hand_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou(a, b), [[25 / 175, 0.0, 1.0]])
    # +1 pixel convention of the WIDER / VOC code: 6*6 / (121 + 121 - 36)
    np.testing.assert_allclose(iou(a, b, pixel_inclusive=True), [[36 / 206, 0.0, 1.0]])
    assert iou(np.zeros((0, 4)), b).shape == (0, 3)
    with pytest.raises(MetricInputError, match="boxes_a: has shape"):
        iou(np.zeros((2, 3)), b)


# -- transcription of the official WIDER evaluation (Python port) ---------------------
def _ref_image_eval(pred, gt, ignore, thr):
    pred_recall = np.zeros(pred.shape[0])
    recall_list = np.zeros(gt.shape[0])
    proposal_list = np.ones(pred.shape[0])
    ov = iou(pred[:, :4], gt, pixel_inclusive=True)
    for h in range(pred.shape[0]):
        gt_overlap = ov[h]
        max_overlap, max_idx = gt_overlap.max(), gt_overlap.argmax()
        if max_overlap >= thr:
            if ignore[max_idx] == 0:
                recall_list[max_idx] = -1
                proposal_list[h] = -1
            elif recall_list[max_idx] == 0:
                recall_list[max_idx] = 1
        pred_recall[h] = len(np.where(recall_list == 1)[0])
    return pred_recall, proposal_list


def _ref_wider(preds, gts, keeps, thresh_num=1000):
    allv = np.concatenate([p[:, 4] for p in preds.values()])
    lo, hi = allv.min(), allv.max()
    pr_curve = np.zeros((thresh_num, 2))
    count_face = 0
    for key, gt in gts.items():
        keep = np.flatnonzero(keeps[key]) + 1
        count_face += len(keep)
        pred = preds.get(key)
        if pred is None or len(gt) == 0 or len(pred) == 0:
            continue
        pred = pred.copy()
        pred[:, 4] = (pred[:, 4] - lo) / (hi - lo)
        ignore = np.zeros(gt.shape[0])
        if len(keep):
            ignore[keep - 1] = 1
        pred_recall, proposal_list = _ref_image_eval(pred, gt, ignore, 0.5)
        info = np.zeros((thresh_num, 2))
        for t in range(thresh_num):
            thresh = 1 - (t + 1) / thresh_num
            r_index = np.where(pred[:, 4] >= thresh)[0]
            if len(r_index):
                r_index = r_index[-1]
                info[t, 0] = len(np.where(proposal_list[: r_index + 1] == 1)[0])
                info[t, 1] = pred_recall[r_index]
        pr_curve += info
    with np.errstate(invalid="ignore"):  # 0/0 at the top thresholds, as in the reference
        prec = pr_curve[:, 1] / pr_curve[:, 0]
    rec = pr_curve[:, 1] / count_face
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def _noisy_predictions(gt_boxes, keys, seed):
    r = np.random.default_rng(seed)
    preds = {}
    for k in keys:
        gt = gt_boxes[k]
        keep = r.random(len(gt)) < 0.8
        wh = (gt[:, 2:] - gt[:, :2]).clip(1)
        jitter = r.normal(0, 0.12, (len(gt), 4)) * np.tile(wh, 2)
        boxes = gt[keep] + jitter[keep]
        fps = r.uniform(0, 900, (r.integers(0, 4), 2))
        fps = np.column_stack([fps, fps + r.uniform(10, 80, (len(fps), 2))])
        b = np.vstack([boxes, fps])
        s = np.r_[r.uniform(0.4, 1.0, keep.sum()), r.uniform(0.0, 0.7, len(fps))]
        order = np.argsort(-s, kind="stable")
        preds[k] = np.column_stack([b, s])[order]
    return preds


@pytest.fixture(scope="module")
def wider_gt():
    return load_wider_ground_truth(need_data("wider"))


def test_wider_ground_truth_counts(wider_gt):
    assert len(wider_gt.boxes) == 3226
    assert sum(len(b) for b in wider_gt.boxes.values()) == 39708
    assert [sum(int(m.sum()) for m in wider_gt.keep[s].values()) for s in ("easy", "medium", "hard")] == [
        7211, 13319, 31958]


@pytest.mark.parametrize("setting", ["easy", "medium", "hard"])
def test_wider_ap_matches_official_loop(wider_gt, setting):
    keys = [k for k in wider_gt.keys() if k.startswith(("0--", "1--", "12--"))][:60]
    gts = {k: wider_gt.boxes[k] for k in keys}
    keeps = {k: wider_gt.keep[setting][k] for k in keys}
    preds = _noisy_predictions(gts, keys, seed=len(setting))
    ap, prec, rec = wider_ap(preds, gts, keeps)
    assert ap == pytest.approx(_ref_wider(preds, gts, keeps), abs=1e-12)
    assert 0.2 < ap < 1.0


def test_wider_ap_perfect_predictions_on_full_val(wider_gt):
    r = np.random.default_rng(0)
    preds = {k: np.column_stack([b, r.uniform(0.5, 1.0, len(b))]) for k, b in wider_gt.boxes.items()}
    for s in ("easy", "medium", "hard"):
        ap, _, rec = wider_ap(preds, wider_gt.boxes, wider_gt.keep[s])
        assert ap > 0.98 and rec[-1] == pytest.approx(1.0, abs=2e-3)


def test_wider_bad_input(wider_gt):
    k = wider_gt.keys()[0]
    with pytest.raises(MetricInputError, match="not in the ground truth"):
        wider_ap({"nope/x": np.zeros((1, 5))}, wider_gt.boxes, wider_gt.keep["easy"])
    with pytest.raises(MetricInputError, match="every score is equal"):
        wider_ap({k: np.ones((2, 5))}, wider_gt.boxes, wider_gt.keep["easy"])


def test_voc_ap_hand():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 0.5])) == pytest.approx(0.75)


# -- FDDB ---------------------------------------------------------------------------
def _ellipse_bbox(e):
    ra, rb, th, cx, cy = e
    hx = np.hypot(ra * np.cos(th), rb * np.sin(th))
    hy = np.hypot(ra * np.sin(th), rb * np.cos(th))
    return [cx - hx, cy - hy, cx + hx, cy + hy]


def test_fddb_discrete_roc_on_real_fold():
    gt = load_fddb_folds(need_data("fddb/FDDB-folds"))
    assert len(gt) == 2845 and sum(len(v) for v in gt.values()) == 5171
    keys = sorted(gt)[:150]
    sub = {k: gt[k] for k in keys}
    r = np.random.default_rng(0)
    dets, n_fp = {}, 0
    for k in keys:
        rows = [_ellipse_bbox(e) + [r.uniform(0.5, 1.0)] for e in sub[k]]
        if r.random() < 0.3:  # a false positive far away, low score
            rows.append([1000, 1000, 1040, 1040, r.uniform(0.0, 0.4)])
            n_fp += 1
        dets[k] = np.array(rows)
    roc = fddb_discrete_roc(dets, sub)
    n_faces = sum(len(v) for v in sub.values())
    assert roc.n_faces == n_faces
    # the bounding box of an ellipse overlaps it by about pi/4 > 0.5: every face found
    assert roc.true_positives[-1] == n_faces
    assert roc.false_positives[-1] == n_fp
    assert np.all(np.diff(roc.true_positives) >= 0) and np.all(np.diff(roc.false_positives) >= 0)
    assert roc.tpr_at_fp(0) == 1.0  # all false positives score below every true one


def test_fddb_matching_is_one_to_one():
    ell = {"img": np.array([[20.0, 15.0, 0.0, 50.0, 50.0]])}
    box = _ellipse_bbox(ell["img"][0])
    roc = fddb_discrete_roc({"img": np.array([box + [0.9], box + [0.8]])}, ell)
    np.testing.assert_array_equal(roc.true_positives, [1, 1])
    np.testing.assert_array_equal(roc.false_positives, [0, 1])
