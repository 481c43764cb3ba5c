"""Zero-shot scoring and review routing on hand-made scores and deterministic text embeddings."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from gpu_ops.zeroshot import (
    EXCLUSIVE_CONFLICT,
    LOW_CONFIDENCE,
    ZeroShotTag,
    build_prompt_bank,
    l2_normalise,
    route,
    zero_shot_scores,
)

DIM = 16
TAGS = [
    ZeroShotTag("food", "topic", False, ("a photo of food.", "a photo of a meal.")),
    ZeroShotTag("travel", "topic", False, ("a photo of travel.",)),
    ZeroShotTag("selfie", "shot", True, ("a selfie.", "a self-portrait.")),
    ZeroShotTag("group", "shot", True, ("a group photo.",)),
    ZeroShotTag("portrait", "shot", True, ("a portrait.",)),
]


def text_vectors(texts: list[str]) -> np.ndarray:
    """A fixed, unnormalised vector per text (seeded by its hash): a stand-in text encoder."""
    rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=DIM) * 3
            for t in texts]
    return np.asarray(rows, dtype=np.float32)


@pytest.fixture(scope="module")
def bank():
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return text_vectors(texts)

    built = build_prompt_bank(TAGS, embed, {"topic": "a photo."})
    assert len(calls) == 1  # every prompt in one batched call
    return built


def test_prompt_ensembling_averages_unit_prompt_embeddings(bank) -> None:
    food = l2_normalise(text_vectors(["a photo of food.", "a photo of a meal."]))
    expected = l2_normalise(food.mean(axis=0))
    np.testing.assert_allclose(bank.text[0], expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(bank.text, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(bank.negatives["topic"], l2_normalise(text_vectors(["a photo."]))[0], atol=1e-6)


def test_sigmoid_scores_follow_the_siglip_formula(bank) -> None:
    images = np.random.default_rng(1).normal(size=(4, DIM)).astype(np.float32)
    scores = zero_shot_scores(images, bank, rule="sigmoid", logit_scale=10.0, logit_bias=-2.0)
    cos = l2_normalise(images) @ bank.text.T
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-(10.0 * cos - 2.0))), rtol=1e-5)
    assert scores.shape == (4, len(TAGS)) and scores.dtype == np.float32


def test_softmax_is_within_exclusive_categories_and_binary_for_multilabel(bank) -> None:
    images = np.random.default_rng(2).normal(size=(5, DIM)).astype(np.float32)
    scores = zero_shot_scores(images, bank, rule="softmax", logit_scale=50.0)
    np.testing.assert_allclose(scores[:, 2:5].sum(axis=1), 1.0, atol=1e-5)  # selfie/group/portrait
    img = l2_normalise(images)
    tag_logit = 50.0 * (img @ bank.text[0])
    neg_logit = 50.0 * (img @ bank.negatives["topic"])
    two_way = np.exp(tag_logit) / (np.exp(tag_logit) + np.exp(neg_logit))
    np.testing.assert_allclose(scores[:, 0], two_way, rtol=1e-4)
    with pytest.raises(ValueError, match="dims"):
        zero_shot_scores(images[:, :8], bank, rule="softmax", logit_scale=50.0)


def test_routing_thresholds_floors_and_exclusive_categories(bank) -> None:
    thresholds = np.array([0.4, 0.4, 0.5, 0.5, 0.5], dtype=np.float32)
    scores = np.array([
        # food  travel selfie group portrait
        [0.90, 0.30, 0.80, 0.60, 0.10],  # food assigned, travel queued (0.2 ≤ 0.3 < 0.4); shot conflict
        [0.10, 0.19, 0.20, 0.30, 0.45],  # nothing assigned; travel under floor; portrait best but < threshold
        [0.40, 0.20, 0.10, 0.05, 0.70],  # food exactly at threshold assigned; travel at floor queued; portrait only
        [0.00, 0.00, 0.24, 0.10, 0.20],  # nothing at all: the best shot tag is under its floor (0.25)
    ], dtype=np.float32)
    r = route(scores, bank, thresholds, floor_ratio=0.5)
    assert r.assigned.tolist() == [
        [True, False, True, False, False],
        [False, False, False, False, False],
        [True, False, False, False, True],
        [False, False, False, False, False],
    ]
    assert r.reason.tolist() == [
        ["", LOW_CONFIDENCE, EXCLUSIVE_CONFLICT, EXCLUSIVE_CONFLICT, ""],
        ["", "", "", "", LOW_CONFIDENCE],
        ["", LOW_CONFIDENCE, "", "", ""],
        ["", "", "", "", ""],
    ]
    np.testing.assert_allclose(r.floors, thresholds * 0.5)
    assert (r.assigned[:, 2:5].sum(axis=1) <= 1).all()  # exclusive keeps at most one


def test_floor_ratio_is_configurable(bank) -> None:
    thresholds = np.full(len(TAGS), 0.5, dtype=np.float32)
    scores = np.array([[0.3, 0.45, 0.0, 0.0, 0.0]], dtype=np.float32)
    assert route(scores, bank, thresholds, floor_ratio=0.5).reason[0, :2].tolist() == [LOW_CONFIDENCE] * 2
    assert route(scores, bank, thresholds, floor_ratio=0.8).reason[0, :2].tolist() == ["", LOW_CONFIDENCE]
    assert not route(scores, bank, thresholds, floor_ratio=1.0).queued.any()
    with pytest.raises(ValueError, match="one threshold per tag"):
        route(scores, bank, thresholds[:3])
