"""The review queue's expected-value order and the labels each tag still needs, on constructed data."""

from __future__ import annotations

import numpy as np

from assets.tagging.calibration import ThresholdResult, labels_needed
from assets.tagging.queue_order import Candidate, order_candidates, spherical_kmeans


def test_nearest_the_threshold_first_when_all_else_is_equal() -> None:
    cands = [Candidate("far", "food", 0.20, 0.5), Candidate("near", "food", 0.48, 0.5),
             Candidate("mid", "food", 0.40, 0.5)]
    ranked = order_candidates(cands, {"food": 5})
    assert [r.key for r in ranked] == ["near", "mid", "far"]
    assert ranked[0].why.startswith("p=0.48 near threshold 0.50; 5 labels so far")
    assert ranked[2].why.startswith("p=0.20 vs threshold 0.50")


def test_a_tag_with_few_labels_beats_a_slightly_nearer_well_labelled_one() -> None:
    cands = [Candidate("beach", "scene_beach", 0.47, 0.5), Candidate("food", "food", 0.49, 0.5)]
    ranked = order_candidates(cands, {"food": 40, "scene_beach": 0})
    assert [r.key for r in ranked] == ["beach", "food"]
    assert "0 labels so far" in ranked[0].why and "40 labels so far" in ranked[1].why


def test_picks_spread_over_clusters_and_tags_instead_of_look_alikes() -> None:
    # Four near-identical items of cluster 0 (already labelled) and one a bit further from its
    # threshold in cluster 3, which no reviewer has seen: it comes second, not fifth.
    cands = [Candidate(f"same{i}", "food", 0.49 - i * 0.001, 0.5, cluster=0) for i in range(4)]
    cands.append(Candidate("new", "food", 0.44, 0.5, cluster=3))
    ranked = order_candidates(cands, {"food": 2}, {0: 6}, limit=3)
    assert [r.key for r in ranked][:2] == ["new", "same0"]
    assert ranked[0].why.endswith("cluster 3 unseen") and "cluster 0: 6 labelled" in ranked[1].why
    assert len(ranked) == 3 and [r.rank for r in ranked] == [1, 2, 3]
    # Without the diversity term (everything in one labelled cluster) the look-alikes would all come first.
    flat = order_candidates([Candidate(c.key, c.tag, c.confidence, c.threshold, cluster=0) for c in cands],
                            {"food": 2}, {0: 6})
    assert [r.key for r in flat][-1] == "new"


def test_greedy_counts_a_pick_as_a_label_for_its_tag() -> None:
    cands = [Candidate("a1", "a", 0.49, 0.5), Candidate("a2", "a", 0.49, 0.5), Candidate("b1", "b", 0.45, 0.5)]
    ranked = order_candidates(cands, {"a": 0, "b": 0})
    assert [r.key for r in ranked] == ["a1", "b1", "a2"]
    assert "(+1 ahead in the queue)" in ranked[2].why


def test_spherical_kmeans_separates_directions() -> None:
    rng = np.random.default_rng(0)
    axes = np.eye(4)[:3]
    x = np.concatenate([axes[i] + 0.05 * rng.normal(size=(10, 4)) for i in range(3)])
    assign = spherical_kmeans(x, 3)
    groups = [set(assign[i * 10:(i + 1) * 10]) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set().union(*groups)) == 3


def test_labels_needed_for_the_precision_target() -> None:
    few = ThresholdResult("travel", "too_few_labels", "precision_floor", positives=1, negatives=0)
    good = ThresholdResult("food", "calibrated", "precision_floor", 30, 30, 0.4, precision=0.95, recall=0.8, f1=0.87)
    shaky = ThresholdResult("beach", "calibrated", "precision_floor", 5, 5, 0.4, precision=0.92, recall=0.6, f1=0.7)
    out = {n["tag"]: n for n in labels_needed([few, good, shaky], precision_floor=0.9, min_labels=3)}
    assert out["travel"]["more_labels"] == 5 and out["travel"]["positives_short"] == 2
    # 0.95 observed on ~25 predicted positives: z^2 p(1-p)/(p-0.9)^2 = 2.71 * 0.0475 / 0.0025 ≈ 52 needed
    assert out["food"]["more_labels"] == 52 - 25
    assert out["beach"]["more_labels"] > out["food"]["more_labels"]  # nearer the target, fewer labels so far
    without = {n["tag"]: n for n in labels_needed([few, good], precision_floor=None, min_labels=3)}
    assert without["food"]["more_labels"] == 0 and without["travel"]["more_labels"] == 5
