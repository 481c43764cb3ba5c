"""Tagging promotion, the review API and threshold calibration against the real warehouse.

The batch here is synthetic (hand-made tag rows, so every routing case is present); the
calibration test scores real images with a tiny SigLIP and materialises the real asset.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest
import yaml

from assets.common.keys import TAG_THRESHOLDS
from assets.common.promotion import promote
from assets.tagging.assets import tag_taxonomy, tag_thresholds
from assets.tagging.config import TaggingConfig
from assets.tagging.review import (
    ReviewError,
    accept,
    correct,
    effective_tags,
    pending_reviews,
    record_model_answer,
    reject,
)
from assets.tagging.scoring import TAG_COLUMNS, creator_tag_rows, tag_images
from assets.tagging.store import promote_tags
from assets.tagging.taxonomy import parse_taxonomy
from assets.tagging.thresholds import calibrated_thresholds
from resources.models import ModelRegistry
from resources.warehouse import Warehouse
from tests.support.tiny_models import build_tiny_siglip

BATCH = "batch-00001"
VERSION = "test-model@1"
TAXONOMY_DOC = {
    "name": "review-test",
    "defaults": {"templates": ["a photo of {}."], "threshold": 0.5},
    "categories": {
        "topic": {"tags": {"food": ["food", "a meal"], "travel": ["travel"]}},
        "shot": {"exclusive": True, "tags": {"selfie": ["a selfie"], "group": ["a group photo"],
                                             "portrait": ["a portrait"]}},
    },
}
TAXONOMY = parse_taxonomy(TAXONOMY_DOC)
N_IMAGES = 6


def ingest_frames() -> dict[str, pd.DataFrame]:
    now = datetime.now(UTC)
    creators = pd.DataFrame([{"platform": "instagram", "username": "alice", "sources": ["a.csv"]}])
    posts = pd.DataFrame([{"platform": "instagram", "post_id": str(i), "username": "alice", "likes": i, "comments": 0,
                           "media_url": f"/x/{i}.jpg", "is_video": False} for i in range(N_IMAGES)])
    images = pd.DataFrame([{"image_key": f"instagram:{i}", "platform": "instagram", "post_id": str(i),
                            "username": "alice", "rank": i + 1, "engagement": i, "status": "ok",
                            "sha256": f"{i:064x}", "pdq_hash": f"{i:064x}", "pdq_quality": 90, "processed_at": now}
                           for i in range(N_IMAGES)])
    return {"creators": creators, "posts": posts, "images": images,
            "duplicates": pd.DataFrame(columns=["image_key_a", "image_key_b", "distance", "kind"])}


def embeddings_frame(vectors: np.ndarray, version: str = VERSION) -> pd.DataFrame:
    return pd.DataFrame({
        "image_key": [f"instagram:{i}" for i in range(len(vectors))], "platform": "instagram", "username": "alice",
        "status": "ok", "error_reason": None, "error": None, "model_version": version, "model_id": "test-model",
        "backend": "siglip", "scoring": "sigmoid", "dim": vectors.shape[1], "embedding": list(vectors),
    })


def tag_row(image: int, tag: str, category: str, confidence: float, assigned: bool, reason: str | None) -> dict:
    return {"image_key": f"instagram:{image}", "platform": "instagram", "username": "alice", "tag": tag,
            "category": category, "exclusive": category == "shot", "confidence": confidence, "threshold": 0.5,
            "threshold_source": "taxonomy", "review_floor": 0.25, "assigned": assigned, "review_reason": reason,
            "model_version": VERSION, "taxonomy_version": TAXONOMY.version}


ROWS = [
    tag_row(0, "food", "topic", 0.9, True, None),
    tag_row(0, "travel", "topic", 0.3, False, "low_confidence"),
    tag_row(1, "selfie", "shot", 0.8, True, "exclusive_conflict"),
    tag_row(1, "group", "shot", 0.7, False, "exclusive_conflict"),
    tag_row(2, "portrait", "shot", 0.4, False, "low_confidence"),
    tag_row(3, "food", "topic", 0.6, True, None),
]


def promote_synthetic(conn: psycopg.Connection, rows: list[dict], run_id: str = "run-1", dim: int = 8):
    vectors = np.random.default_rng(0).normal(size=(N_IMAGES, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embeddings = embeddings_frame(vectors)
    tags = pd.DataFrame(rows, columns=list(TAG_COLUMNS))
    return promote_tags(conn, BATCH, taxonomy=TAXONOMY, embeddings=embeddings, image_tags=tags,
                        creator_tags=creator_tag_rows(tags, embeddings), run_id=run_id)


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url.replace("+psycopg", "")) as connection:
        promote(connection, BATCH, **ingest_frames(), run_id="ingest", code_version="test")
        yield connection


def scalar(conn: psycopg.Connection, sql: str, params: tuple = ()) -> object:
    with conn.transaction():
        return conn.execute(sql, params).fetchone()[0]


def test_review_decisions_are_user_rows_plus_feedback_in_one_transaction(conn) -> None:
    first = promote_synthetic(conn, ROWS)
    assert first.written["image_tags"] == 3 and first.written["tag_review_queue"] == 4
    assert first.written["creator_tags"] == 2  # food on 2 of 6 images, selfie on 1
    assert scalar(conn, "SELECT share FROM creator_tags JOIN tags USING (tag_id) WHERE name = 'food'") \
        == pytest.approx(2 / 6)
    items = {(i.image_key, i.tag): i for i in pending_reviews(conn, model_version=VERSION)}
    assert {(k, v.reason) for k, v in items.items()} == {
        (("instagram:0", "travel"), "low_confidence"), (("instagram:1", "selfie"), "exclusive_conflict"),
        (("instagram:1", "group"), "exclusive_conflict"), (("instagram:2", "portrait"), "low_confidence")}

    outcome = accept(conn, items["instagram:0", "travel"].review_id, "rita")
    assert outcome.status == "accepted" and outcome.decisions == {"travel": True}

    # Exclusive conflict: the person picks 'group'; the model's 'selfie' becomes a user 'absent'.
    outcome = accept(conn, items["instagram:1", "group"].review_id, "rita", note="four people")
    assert outcome.decisions == {"group": True, "selfie": False} and outcome.superseded == 1
    assert effective_tags(conn, "instagram:1", VERSION) == {"group": (True, "user"), "selfie": (False, "user")}

    # Escalation hook: a VLM answer is its own row, the item stays pending for a person.
    portrait = items["instagram:2", "portrait"].review_id
    record_model_answer(conn, portrait, model="qwen2.5-vl-7b", present=True, confidence=0.7)
    assert scalar(conn, "SELECT status FROM tag_review_queue WHERE review_id = %s", (portrait,)) == "pending"
    assert scalar(conn, "SELECT count(*) FROM image_tags WHERE source = 'vlm' AND model_version = 'qwen2.5-vl-7b'") == 1

    feedback = scalar(conn, "SELECT count(*) FROM tag_feedback")
    with pytest.raises(ReviewError, match="unknown tag 'no_such_tag'"):
        correct(conn, portrait, "sam", "no_such_tag")
    assert scalar(conn, "SELECT count(*) FROM tag_feedback") == feedback  # the failed decision left nothing
    assert scalar(conn, "SELECT status FROM tag_review_queue WHERE review_id = %s", (portrait,)) == "pending"

    outcome = correct(conn, portrait, "rita", "selfie")
    assert outcome.status == "corrected" and outcome.decisions == {"portrait": False, "selfie": True}
    assert effective_tags(conn, "instagram:2", VERSION) == {"portrait": (False, "user"), "selfie": (True, "user")}

    with pytest.raises(ReviewError, match="already corrected"):
        reject(conn, portrait, "sam")
    with pytest.raises(ReviewError, match="already superseded"):
        reject(conn, items["instagram:1", "selfie"].review_id, "sam")
    with conn.transaction():
        labels = conn.execute(
            """SELECT i.image_key, g.name, f.label, f.action, f.reviewer FROM tag_feedback f
               JOIN images i USING (image_id) JOIN tags g USING (tag_id) ORDER BY f.feedback_id""").fetchall()
    assert labels == [
        ("instagram:0", "travel", True, "accepted", "rita"),
        ("instagram:1", "group", True, "accepted", "rita"),
        ("instagram:1", "selfie", False, "removed", "rita"),
        ("instagram:2", "portrait", False, "rejected", "rita"),
        ("instagram:2", "selfie", True, "added", "rita"),
    ]
    assert pending_reviews(conn) == []

    # A rerun of the same model never reopens a decided pair nor touches a person's rows ...
    again = promote_synthetic(conn, ROWS, run_id="run-2")
    assert again.written["tag_review_queue"] == 0 and again.written["image_tags"] == 0
    assert pending_reviews(conn) == []
    # ... and when the model drops a tag, only the model's row goes.
    promote_synthetic(conn, [r for r in ROWS if not (r["image_key"] == "instagram:1" and r["tag"] == "selfie")],
                      run_id="run-3")
    assert effective_tags(conn, "instagram:1", VERSION) == {"group": (True, "user"), "selfie": (False, "user")}
    assert scalar(conn, "SELECT count(*) FROM image_tags WHERE source = 'user'") == 5


def test_a_failing_promotion_leaves_the_warehouse_as_it_was(conn) -> None:
    promote_synthetic(conn, ROWS)
    before = scalar(conn, "SELECT count(*) FROM image_tags") + scalar(conn, "SELECT count(*) FROM image_embeddings")
    with pytest.raises(ValueError, match="registered with 8 dims"):
        promote_synthetic(conn, ROWS[:1], run_id="run-2", dim=9)  # same version, other dimension
    after = scalar(conn, "SELECT count(*) FROM image_tags") + scalar(conn, "SELECT count(*) FROM image_embeddings")
    assert after == before and scalar(conn, "SELECT count(*) FROM tag_promotions") == 1


def test_tag_thresholds_calibrates_from_labels_and_feedback(conn, database_url, dagster_instance, tmp_path) -> None:
    weights = build_tiny_siglip(tmp_path / "tiny-siglip")
    models = ModelRegistry(cache_dir=str(tmp_path / "cache"), device="cpu", backends={"image_embedder": "siglip"},
                           weights={"image_embedder": str(weights)})
    embedder = models.load("image_embedder")
    rng = np.random.default_rng(3)
    vectors = embedder.embed_images([rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(N_IMAGES)])
    embeddings = embeddings_frame(vectors, embedder.version)
    taxonomy_path = tmp_path / "taxonomy.yaml"
    taxonomy_path.write_text(yaml.safe_dump(TAXONOMY_DOC))
    tags = tag_images(embedder, TAXONOMY, embeddings)
    promote_tags(conn, BATCH, taxonomy=TAXONOMY, embeddings=embeddings, image_tags=tags,
                 creator_tags=creator_tag_rows(tags, embeddings), run_id="run-1")

    # Labels with a known optimum: 'food' applies exactly to the 3 images the model scores highest.
    food = tags_scores(embedder, embeddings)
    order = np.argsort(-food)
    positives = {f"instagram:{i}" for i in order[:3]}
    csv_path = tmp_path / "labels.csv"
    lines = ["image_key,tag,label"] + [f"instagram:{i},food,{int(f'instagram:{i}' in positives)}"
                                       for i in range(N_IMAGES)]
    lines += ["instagram:0,travel,1", "instagram:9,food,1", "instagram:1,nope,1", "instagram:2,food,perhaps"]
    csv_path.write_text("\n".join(lines) + "\n")
    # A reviewer confirms one CSV label (feedback wins over the CSV for the same pair).
    with conn.transaction():
        conn.execute("""INSERT INTO tag_feedback (image_id, tag_id, label, action, reviewer)
                        SELECT i.image_id, g.tag_id, true, 'added', 'rita' FROM images i, tags g
                        WHERE i.image_key = %s AND g.name = 'food'""", (f"instagram:{order[0]}",))

    resources = {"models": models, "warehouse": Warehouse(database_url=database_url),
                 "tagging": TaggingConfig(taxonomy_path=str(taxonomy_path), labels_csv=str(csv_path), min_labels=2)}
    result = dg.materialize([tag_taxonomy, tag_thresholds], resources=resources, instance=dagster_instance)
    assert result.success
    meta = {k: v.value for k, v in
            dagster_instance.get_latest_materialization_event(TAG_THRESHOLDS).asset_materialization.metadata.items()}
    assert meta["tags_calibrated"] == 1 and meta["labelled_examples"] == N_IMAGES + 1  # 6 food + 1 travel
    assert meta["labels_by_source"] == {"csv": N_IMAGES, "feedback": 1}
    assert meta["unmatched_labels"] == {"unknown_tag": 1, "no_embedding_for_model": 1}
    assert meta["rejected_csv_lines"] == [{"line": 11, "reason": "label 'perhaps' is not one of 1/0/true/false/yes/no"}]
    assert "| food | calibrated | max_f1 |" in meta["report"] and "| travel | too_few_labels |" in meta["report"]
    needed = {n["tag"]: n["more_labels"] for n in meta["labels_needed"]}
    assert needed["food"] == 0 and needed["travel"] > 0 and needed["selfie"] == 4  # selfie: no labels, 2 + 2 short
    assert "data:image/png;base64," in meta["pr_curves"]

    calibrated = calibrated_thresholds(conn, embedder.version, TAXONOMY.version)
    assert set(calibrated) == {"food"}
    assert food[order[3]] < calibrated["food"] < food[order[2]]  # between the classes: F1 = 1
    assert scalar(conn, "SELECT f1 FROM tag_thresholds") == pytest.approx(1.0)
    retagged = tag_images(embedder, TAXONOMY, embeddings, calibrated=calibrated)
    food_rows = retagged[retagged["tag"] == "food"]
    assert set(food_rows.loc[food_rows["assigned"], "image_key"]) == positives
    assert set(food_rows["threshold_source"]) == {"calibrated"}
    assert calibrated_thresholds(conn, "another-model@1", TAXONOMY.version) == {}  # per model version


def tags_scores(embedder, embeddings: pd.DataFrame) -> np.ndarray:
    """The model's 'food' score per image, straight from the zero-shot scorer."""
    from assets.tagging.scoring import embedding_matrix, prompt_bank, score_images

    bank = prompt_bank(embedder, TAXONOMY)
    return score_images(embedder, bank, embedding_matrix(embeddings))[:, bank.names.index("food")]


def test_taxonomy_asset_publishes_tags_and_version(database_url, dagster_instance, tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(TAXONOMY_DOC))
    resources = {"warehouse": Warehouse(database_url=database_url), "tagging": TaggingConfig(taxonomy_path=str(path))}
    assert dg.materialize([tag_taxonomy], resources=resources, instance=dagster_instance).success
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        tags = conn.execute("SELECT name, category, exclusive, taxonomy_version FROM tags ORDER BY name").fetchall()
        stored = conn.execute("SELECT content->>'name' FROM tag_taxonomies").fetchall()
    assert tags == [("food", "topic", False, TAXONOMY.version), ("group", "shot", True, TAXONOMY.version),
                    ("portrait", "shot", True, TAXONOMY.version), ("selfie", "shot", True, TAXONOMY.version),
                    ("travel", "topic", False, TAXONOMY.version)]
    assert stored == [("review-test",)]
