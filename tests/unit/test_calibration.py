"""Threshold calibration on synthetic scores whose optimum is known (by hand, or by brute force)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assets.tagging.calibration import (
    CALIBRATED,
    FLOOR_UNREACHABLE,
    TOO_FEW_LABELS,
    calibrate,
    choose_threshold,
    pr_curve,
    pr_curve_png,
    read_labels_csv,
    report_markdown,
)

# Hand-worked: the F1 at each cut is .333 .571 .5 .667 [.8] .727 .667 .769 .714 .667 — best at 0.6.
SCORES = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
LABELS = [1, 1, 0, 1, 1, 0, 0, 1, 0, 0]


def test_max_f1_on_a_hand_worked_example() -> None:
    r = choose_threshold("food", SCORES, LABELS)
    assert r.status == CALIBRATED and r.method == "max_f1"
    assert r.threshold == pytest.approx(0.55)  # midway between the cut (0.6) and the next score (0.5)
    assert (r.precision, r.recall, r.f1) == pytest.approx((0.8, 0.8, 0.8))
    assert (r.positives, r.negatives) == (5, 5)


@pytest.mark.parametrize(("floor", "threshold", "precision", "recall"),
                         [(0.75, 0.55, 0.8, 0.8), (0.9, 0.85, 1.0, 0.4), (1.0, 0.85, 1.0, 0.4)])
def test_precision_floor_takes_the_best_recall_that_meets_it(floor, threshold, precision, recall) -> None:
    r = choose_threshold("food", SCORES, LABELS, precision_floor=floor)
    assert r.method == "precision_floor"
    assert (r.threshold, r.precision, r.recall) == pytest.approx((threshold, precision, recall))


def test_unreachable_floor_and_too_few_labels_leave_the_tag_uncalibrated() -> None:
    r = choose_threshold("x", [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0, 1, 1, 0, 1, 0], precision_floor=1.0)
    assert r.status == FLOOR_UNREACHABLE and r.threshold is None
    r = choose_threshold("x", [0.9, 0.8, 0.1], [1, 1, 0], min_positives=3)
    assert r.status == TOO_FEW_LABELS and r.threshold is None and (r.positives, r.negatives) == (2, 1)


def test_separable_scores_get_a_threshold_between_the_classes() -> None:
    rng = np.random.default_rng(0)
    pos, neg = rng.uniform(0.6, 1.0, 50), rng.uniform(0.0, 0.4, 80)
    r = choose_threshold("t", np.r_[pos, neg], np.r_[np.ones(50), np.zeros(80)].astype(bool))
    assert neg.max() < r.threshold < pos.min()
    assert r.threshold == pytest.approx((neg.max() + pos.min()) / 2)
    assert r.f1 == 1.0


def test_ties_are_classified_together() -> None:
    curve = pr_curve([0.5, 0.5, 0.5, 0.2], [1, 0, 1, 0])
    assert curve.cuts.tolist() == [0.5, 0.2]  # one cut per distinct score, including all its ties
    assert curve.precision.tolist() == pytest.approx([2 / 3, 0.5])


@pytest.mark.parametrize("seed", range(5))
def test_max_f1_agrees_with_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(300) < 0.3
    scores = np.round(np.clip(rng.normal(0.3 + 0.25 * labels, 0.15), 0, 1), 3)  # rounding makes ties

    def f1_at(t: float) -> float:
        pred = scores >= t
        tp = int((pred & labels).sum())
        return 0.0 if tp == 0 else 2 * tp / (pred.sum() + labels.sum())

    best = max(f1_at(t) for t in np.unique(scores))
    r = choose_threshold("t", scores, labels)
    assert r.f1 == pytest.approx(best)
    assert f1_at(r.threshold) == pytest.approx(best)  # the stored threshold reproduces it


def test_calibrate_per_tag_report_and_png() -> None:
    frame = pd.DataFrame({
        "tag": ["food"] * len(SCORES) + ["rare"] * 2,
        "score": SCORES + [0.9, 0.1],
        "label": [bool(v) for v in LABELS] + [True, False],
    })
    results, curves = calibrate(frame)
    assert [(r.tag, r.status) for r in results] == [("food", CALIBRATED), ("rare", TOO_FEW_LABELS)]
    assert set(curves) == {"food"}
    table = report_markdown(results)
    assert "| food | calibrated | max_f1 | 0.550 | 0.800 | 0.800 | 0.800 | 5 | 5 |" in table
    assert "| rare | too_few_labels |" in table
    png = pr_curve_png(curves, results)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_labels_csv_parsing_and_rejects(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("\ufeffimage_key,tag,label\ninstagram:1,food,1\ninstagram:2,food,no\ninstagram:3,food,maybe\n"
                    ",food,1\ninstagram:4,travel,TRUE\n")
    frame, rejects = read_labels_csv(path)
    assert frame.to_dict("records") == [
        {"image_key": "instagram:1", "tag": "food", "label": True},
        {"image_key": "instagram:2", "tag": "food", "label": False},
        {"image_key": "instagram:4", "tag": "travel", "label": True},
    ]
    assert [line for line, _ in rejects] == [4, 5]
    bad = tmp_path / "bad.csv"
    bad.write_text("image,tag\nx,y\n")
    with pytest.raises(ValueError, match="missing column"):
        read_labels_csv(bad)
