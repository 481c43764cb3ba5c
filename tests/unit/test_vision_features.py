"""Face clustering on synthetic embeddings, and the rule-based image features and tags."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gpu_ops.faces import cluster_embeddings
from gpu_ops.features import ImageFeatures, PersonObservation, framing, image_features, shot_type
from gpu_ops.pose import LANDMARK_NAMES


def _identities(rng: np.random.Generator, sizes: list[int], noise: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(len(sizes), 512))
    vectors, truth = [], []
    for k, n in enumerate(sizes):
        vectors.append(centres[k] + rng.normal(scale=noise, size=(n, 512)) * np.linalg.norm(centres[k]) / np.sqrt(512))
        truth += [k] * n
    return np.vstack(vectors), np.array(truth)


def test_clustering_recovers_identities_and_leaves_one_off_faces_as_noise() -> None:
    rng = np.random.default_rng(7)
    faces, truth = _identities(rng, [3, 7, 5])
    strangers = rng.normal(size=(4, 512))  # four one-off faces, unrelated to anyone
    x = np.vstack([faces, strangers])
    order = rng.permutation(len(x))
    labels = cluster_embeddings(x[order])[np.argsort(order)]

    assert (labels[len(faces):] == -1).all()
    found = labels[: len(faces)]
    for k in range(3):  # each identity is exactly one cluster, and no cluster mixes identities
        assert len(set(found[truth == k])) == 1
    assert len(set(found)) == 3
    assert found[truth == 1][0] == 0 and found[truth == 2][0] == 1 and found[truth == 0][0] == 2  # by size
    # Same input, same labels; scale does not matter (cosine).
    assert (cluster_embeddings(x[order] * 3.0) == cluster_embeddings(x[order])).all()


def test_clustering_edge_cases() -> None:
    assert cluster_embeddings(np.zeros((0, 512))).tolist() == []
    one = np.ones((1, 512))
    assert cluster_embeddings(one).tolist() == [-1]  # one face is not a cluster …
    assert cluster_embeddings(one, min_samples=1).tolist() == [0]  # … unless allowed
    pair = np.vstack([one, one * 2])
    assert cluster_embeddings(pair).tolist() == [0, 0]
    opposite = np.vstack([one, -one])
    assert cluster_embeddings(opposite).tolist() == [-1, -1]


def _visibility(*names: str) -> np.ndarray:
    vis = np.full(33, 0.05)
    for name in names:
        vis[LANDMARK_NAMES.index(name)] = 0.95
    return vis


HEAD = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (HEAD + ("left_shoulder", "right_shoulder"), "close-up"),
        (HEAD + ("left_shoulder", "left_hip", "right_hip"), "half-body"),
        (HEAD + ("left_hip", "left_knee"), "half-body"),
        (HEAD + ("left_hip", "left_knee", "right_ankle", "right_heel"), "full-body"),
        ((), "unknown"),
    ],
)
def test_shot_type_follows_the_visible_landmarks(visible: tuple[str, ...], expected: str) -> None:
    assert shot_type(_visibility(*visible)) == expected


def test_a_large_face_without_a_pose_is_a_close_up_and_framing_uses_thirds() -> None:
    assert shot_type(None, relative_face_size=0.2) == "close-up"
    assert shot_type(None, relative_face_size=0.01) == "unknown"
    assert framing((0, 0, 100, 100), 600) == "left"
    assert framing((250, 0, 350, 100), 600) == "center"
    assert framing((500, 0, 600, 100), 600) == "right"
    assert framing(None, 600) == "none"


def test_image_features_and_rule_tags() -> None:
    solo = PersonObservation((200, 50, 400, 600), 0.9, _visibility(*HEAD, "left_hip", "left_knee", "left_ankle"))
    small = PersonObservation((0, 0, 50, 100), 0.8, None)
    f = image_features(600, 800, [small, solo], [(260, 60, 340, 160)], text_lines=2)
    assert f.person_count == 2 and f.face_count == 1 and f.text_lines == 2
    assert f.shot_type == "full-body" and f.framing == "center"  # the main person is the largest
    assert f.relative_face_size == pytest.approx(80 * 100 / (600 * 800))
    assert f.pose_visibility == pytest.approx(float(solo.visibility.mean()))
    assert f.tags == ["people:duo", "shot:full-body", "framing:center", "text:present"]

    selfie = image_features(400, 400, [], [(100, 80, 300, 320)])
    assert selfie.shot_type == "close-up" and selfie.framing == "center" and selfie.pose_visibility is None
    assert selfie.tags == ["people:none", "shot:close-up", "framing:center", "face:prominent"]

    empty = image_features(400, 300, [], [])
    assert (empty.shot_type, empty.framing, empty.relative_face_size, empty.tags) == ("unknown", "none", None,
                                                                                     ["people:none"])


def test_features_describe_the_shot_never_the_body() -> None:
    """Tagging policy: no body-proportion or body-size features (DESIGN.md)."""
    names = {f.name for f in dataclasses.fields(ImageFeatures)}
    assert names == {"person_count", "face_count", "shot_type", "framing", "pose_visibility",
                     "relative_face_size", "text_lines", "tags"}
    banned = ("ratio", "width", "height", "size_of", "bust", "waist", "hip", "chest", "leg", "weight", "bmi")
    assert not [n for n in names for word in banned if word in n]
