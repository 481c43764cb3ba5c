"""VLM escalation against a loopback OpenAI-compatible vision server, and per-creator tag history.

The batch is synthetic (hand-made tag rows, as in test_tag_review), its images real PNG blobs; the
escalation asset is materialised on a real Dagster instance against a real warehouse.
"""

from __future__ import annotations

import base64
import hashlib
import io
import time
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
import psycopg
import pytest
import yaml
from PIL import Image

from assets.common.keys import TAG_ESCALATIONS
from assets.common.partitions import register_batches
from assets.common.promotion import promote
from assets.tagging.config import TaggingConfig
from assets.tagging.escalation import PROMPT_VERSION, tag_escalations
from assets.tagging.history import tag_history
from assets.tagging.queue_order import rank_queue
from assets.tagging.review import accept, effective_tags
from assets.tagging.scoring import TAG_COLUMNS, creator_tag_rows
from assets.tagging.store import promote_tags
from assets.tagging.taxonomy import parse_taxonomy
from resources.blobstore import BlobStore
from resources.vlm import VisionChat, VlmClient
from resources.warehouse import Warehouse
from tests.support.vlm_server import FakeVlm, serve_vlm

BATCH = "batch-00001"
VERSION = "test-model@1"
MODEL = "tiny-vlm"
TAXONOMY_DOC = {
    "name": "escalation-test",
    "defaults": {"templates": ["a photo of {}."], "threshold": 0.5},
    "categories": {
        "topic": {"tags": {"food": ["food", "a meal"], "travel": ["travel"]}},
        "shot": {"exclusive": True, "tags": {"selfie": ["a selfie"], "group": ["a group photo"],
                                             "portrait": ["a portrait"]}},
    },
}
TAXONOMY = parse_taxonomy(TAXONOMY_DOC)
# Image 3 is the same picture as image 0 (another post): one cached answer serves both.
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 30, 30)]


def png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), colour).save(buf, format="PNG")
    return buf.getvalue()


def ingest_frames(blobs: BlobStore) -> dict[str, pd.DataFrame]:
    now = datetime.now(UTC)
    rows = []
    for i, colour in enumerate(COLOURS):
        data = png(colour)
        sha = hashlib.sha256(data).hexdigest()
        rows.append({"image_key": f"instagram:{i}", "platform": "instagram", "post_id": str(i), "username": "alice",
                     "rank": i + 1, "engagement": i, "status": "ok", "sha256": sha, "pdq_hash": f"{i:064x}",
                     "pdq_quality": 90, "processed_at": now, "blob_key": blobs.put(data, "originals", "png", sha)})
    creators = pd.DataFrame([{"platform": "instagram", "username": "alice", "sources": ["a.csv"]}])
    posts = pd.DataFrame([{"platform": "instagram", "post_id": str(i), "username": "alice", "likes": i, "comments": 0,
                           "media_url": f"/x/{i}.jpg", "is_video": False} for i in range(len(COLOURS))])
    return {"creators": creators, "posts": posts, "images": pd.DataFrame(rows),
            "duplicates": pd.DataFrame(columns=["image_key_a", "image_key_b", "distance", "kind"])}


def tag_row(image: int, tag: str, category: str, confidence: float, assigned: bool, reason: str | None,
            version: str = VERSION) -> dict:
    return {"image_key": f"instagram:{image}", "platform": "instagram", "username": "alice", "tag": tag,
            "category": category, "exclusive": category == "shot", "confidence": confidence, "threshold": 0.5,
            "threshold_source": "taxonomy", "review_floor": 0.25, "assigned": assigned, "review_reason": reason,
            "model_version": version, "taxonomy_version": TAXONOMY.version}


ROWS = [
    tag_row(0, "travel", "topic", 0.30, False, "low_confidence"),
    tag_row(1, "selfie", "shot", 0.80, True, "exclusive_conflict"),
    tag_row(1, "group", "shot", 0.70, False, "exclusive_conflict"),
    tag_row(2, "portrait", "shot", 0.40, False, "low_confidence"),
    tag_row(3, "travel", "topic", 0.35, False, "low_confidence"),
    tag_row(0, "food", "topic", 0.90, True, None),
]


def promote_rows(conn, rows, *, version: str = VERSION, run_id: str = "run-1", analysed_at=None, seed: int = 0):
    vectors = np.random.default_rng(seed).normal(size=(len(COLOURS), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embeddings = pd.DataFrame({
        "image_key": [f"instagram:{i}" for i in range(len(COLOURS))], "platform": "instagram", "username": "alice",
        "status": "ok", "error_reason": None, "error": None, "model_version": version, "model_id": "test-model",
        "backend": "siglip", "scoring": "sigmoid", "dim": 8, "embedding": list(vectors)})
    tags = pd.DataFrame(rows, columns=list(TAG_COLUMNS))
    return promote_tags(conn, BATCH, taxonomy=TAXONOMY, embeddings=embeddings, image_tags=tags,
                        creator_tags=creator_tag_rows(tags, embeddings), run_id=run_id, analysed_at=analysed_at,
                        history_change=0.2)


@pytest.fixture
def blobs(tmp_path) -> BlobStore:
    return BlobStore(root=str(tmp_path / "blobs"))


@pytest.fixture
def conn(database_url, blobs):
    with psycopg.connect(database_url.replace("+psycopg", "")) as connection:
        promote(connection, BATCH, **ingest_frames(blobs), run_id="ingest", code_version="test")
        yield connection


def resources(database_url, blobs, tmp_path, vlm: VlmClient) -> dict:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(TAXONOMY_DOC, sort_keys=False))
    return {"vlm": vlm, "tagging": TaggingConfig(taxonomy_path=str(path)),
            "warehouse": Warehouse(database_url=database_url), "blobs": blobs}


def run_escalation(instance, res) -> dict:
    register_batches(instance, [BATCH])
    assert dg.materialize([tag_escalations], partition_key=BATCH, resources=res, instance=instance).success
    event = instance.get_latest_materialization_event(TAG_ESCALATIONS).asset_materialization
    return {k: v.value for k, v in event.metadata.items()}


def choose(schema: dict, question: str) -> dict:
    """The VLM's view: the photos are group shots about travel (it contradicts the reviewer on image 1)."""
    return {"answer": "selfie" if "ONE" in question else ["travel"]}


def outcomes(conn) -> dict[tuple[str, str], tuple[str, bool | None]]:
    with conn.transaction():
        rows = conn.execute("""SELECT i.image_key, g.name, o.status, o.present FROM escalation_outcomes o
                               JOIN tag_review_queue q USING (review_id) JOIN images i ON i.image_id = q.image_id
                               JOIN tags g ON g.tag_id = q.tag_id""").fetchall()
    return {(k, t): (s, p) for k, t, s, p in rows}


def test_escalation_asks_constrained_questions_caches_retries_and_never_overrides_a_reviewer(
        conn, database_url, blobs, tmp_path, dagster_instance) -> None:
    promote_rows(conn, ROWS)
    with conn.transaction():
        group = conn.execute("SELECT review_id FROM tag_review_queue q JOIN tags g USING (tag_id) "
                             "JOIN images i USING (image_id) WHERE g.name = 'group' AND i.image_key = 'instagram:1'"
                             ).fetchone()[0]
    accept(conn, group, "rita")  # the reviewer: a group photo, so not a selfie (that item is superseded)

    # Items nearest their threshold first: image 2 (shot) meets a 429 then is answered, image 3 (topic) gets a
    # malformed answer, image 0 (same picture, topic) is asked again and answered.
    with serve_vlm(FakeVlm(script=["429", "valid", "malformed"], choose=choose)) as vlm:
        client = VlmClient(base_url=vlm.base_url, model=MODEL, max_calls=10, rate_limit="100/second", backoff_s=0)
        res = resources(database_url, blobs, tmp_path, client)
        meta = run_escalation(dagster_instance, res)
        assert vlm.refused == []
        first = vlm.requests[0]
        parts = first["messages"][-1]["content"]
        assert [p["type"] for p in parts] == ["text", "image_url"]
        assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
        assert first["response_format"]["type"] == "json_schema"
        assert first["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"] == [
            "selfie", "group", "portrait", "none"]
        assert first["model"] == MODEL
        assert len(vlm.requests) == 4  # 429 + retry, malformed, the same picture again
        assert meta["calls"] == 3 and meta["http_requests"] == 4 and meta["cache_hits"] == 0
        assert meta["outcomes"] == {"answered": 2, "malformed": 1}
        assert meta["malformed_answers"][0]["image_key"] == "instagram:3"
        assert "not JSON" in meta["malformed_answers"][0]["reason"]
        assert outcomes(conn) == {("instagram:2", "portrait"): ("answered", False),
                                  ("instagram:3", "travel"): ("malformed", None),
                                  ("instagram:0", "travel"): ("answered", True)}
        with conn.transaction():
            stored = conn.execute("SELECT status, error, raw_answer, model, prompt_version, latency_ms > 0 "
                                  "FROM vlm_answers ORDER BY answer_id").fetchall()
        assert [s[0] for s in stored] == ["ok", "malformed", "ok"]
        assert stored[1][2].startswith("I think the answer is yes") and "not JSON" in stored[1][1]
        assert all(s[3] == MODEL and s[4] == PROMPT_VERSION and s[5] for s in stored)

        # The reviewer's decision stands: image 1 was never asked, its tags are the reviewer's.
        assert effective_tags(conn, "instagram:1", VERSION) == {"group": (True, "user"), "selfie": (False, "user")}
        assert effective_tags(conn, "instagram:0", VERSION) == {"food": (True, "ai")}  # a vlm row never counts
        with conn.transaction():
            assert conn.execute("SELECT count(*) FROM image_tags WHERE source = 'vlm'").fetchone()[0] == 2
            assert conn.execute("SELECT count(*) FROM tag_review_queue WHERE status = 'pending' "
                                "AND escalated_at IS NOT NULL").fetchone()[0] == 2

        # Re-run: the two pictures' answers are cached (image 3 is image 0's picture): no new call.
        meta = run_escalation(dagster_instance, res)
        assert len(vlm.requests) == 4
        assert meta["calls"] == 0 and meta["cache_hits"] == 3
        assert outcomes(conn)[("instagram:3", "travel")] == ("cached", True)

    # The review page's view: the VLM's suggestion beside each item, and why it is next.
    ranked = {(r.image_key, r.tag): r for r in rank_queue(conn)}
    assert ranked["instagram:0", "travel"].vlm.present is True and ranked["instagram:0", "travel"].vlm.model == MODEL
    assert "threshold 0.50" in ranked["instagram:2", "portrait"].why


def test_budget_skips_are_recorded_and_picked_up_next_run(conn, database_url, blobs, tmp_path,
                                                          dagster_instance) -> None:
    promote_rows(conn, ROWS)
    with serve_vlm(FakeVlm(choose=choose)) as vlm:
        res = resources(database_url, blobs, tmp_path,
                        VlmClient(base_url=vlm.base_url, model=MODEL, max_calls=1, rate_limit="100/second"))
        meta = run_escalation(dagster_instance, res)
        assert len(vlm.requests) == 1 and meta["calls"] == 1
        # image 2 asked; image 3 over budget; image 0 is image 3's picture: also over budget; image 1 over budget.
        assert meta["outcomes"] == {"answered": 1, "skipped_budget": 4}
        assert outcomes(conn)[("instagram:1", "selfie")] == ("skipped_budget", None)
        meta = run_escalation(dagster_instance, res)  # the next run spends its budget on what was skipped
        # image 2 cached; image 3 asked; image 0 (image 3's picture) now cached; image 1 over budget again.
        assert len(vlm.requests) == 2 and meta["cache_hits"] == 2
        assert meta["outcomes"] == {"cached": 2, "answered": 1, "skipped_budget": 2}


def test_no_model_or_a_remote_endpoint_disables_escalation(conn, database_url, blobs, tmp_path,
                                                          dagster_instance) -> None:
    promote_rows(conn, ROWS)
    meta = run_escalation(dagster_instance, resources(database_url, blobs, tmp_path, VlmClient(model=None)))
    assert meta["escalation"] == "disabled" and "CREATORLENS_VLM_MODEL" in meta["skip_reason"]
    remote = VlmClient(base_url="https://api.example.com/v1", model="gpt-4o")
    assert "CREATORLENS_VLM_ALLOW_REMOTE" in remote.disabled_reason()
    assert VlmClient(base_url="https://api.example.com/v1", model="gpt-4o", allow_remote=True).disabled_reason() is None
    with conn.transaction():
        assert conn.execute("SELECT count(*) FROM escalation_outcomes").fetchone()[0] == 0


def test_retry_after_is_honoured() -> None:
    slept: list[float] = []
    with serve_vlm(FakeVlm(script=["429"], retry_after="2")) as vlm:
        chat = VisionChat(vlm.base_url, MODEL, retries=2, rate_limit="100/second", sleep=slept.append)
        schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["a", "b"]}}}
        data_url = "data:image/png;base64," + base64.b64encode(png((1, 2, 3))).decode()
        answer = chat.ask(data_url, "Which?", schema)
    assert slept == [2.0] and answer.requests == 2 and answer.content == '{"answer": "a"}'


def test_rate_limit_spaces_questions_out() -> None:
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        waited.append(seconds)
        time.sleep(seconds)

    with serve_vlm(FakeVlm()) as vlm:
        chat = VisionChat(vlm.base_url, MODEL, rate_limit="2/second", sleep=sleep)
        schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["a"]}}}
        data_url = "data:image/png;base64," + base64.b64encode(png((1, 2, 3))).decode()
        for _ in range(3):
            chat.ask(data_url, "Which?", schema)
    assert len(vlm.requests) == 3 and sum(waited) > 0.5  # the third waited for the window to move on


def test_tag_history_lists_a_change_between_two_analyses(conn) -> None:
    promote_rows(conn, ROWS, analysed_at=datetime(2026, 10, 5, tzinfo=UTC))  # food on 1 of 4 images
    again = promote_rows(conn, ROWS, analysed_at=datetime(2026, 10, 20, tzinfo=UTC), run_id="run-1b")
    assert again.written["creator_tag_history"] == 0  # same analysis month and result: nothing new
    second = [tag_row(i, "food", "topic", 0.9, True, None, "test-model@2") for i in range(3)]  # 3 of 4
    result = promote_rows(conn, second, version="test-model@2", run_id="run-2",
                          analysed_at=datetime(2026, 11, 2, tzinfo=UTC))
    assert result.written["tag_history_changes"] == 2
    history = tag_history(conn, "instagram", "alice")
    assert [a["model_version"] for a in history["analyses"]] == [VERSION, "test-model@2"]
    food = next(s for s in history["series"] if s["tag"] == "food")
    assert [p["share"] for p in food["points"]] == [0.25, 0.75]
    selfie = next(s for s in history["series"] if s["tag"] == "selfie")
    assert [p["share"] for p in selfie["points"]] == [0.25, 0.0]  # gone in the second analysis
    assert sorted((c["tag"], c["share_before"], c["share_after"]) for c in history["changes"]) == [
        ("food", 0.25, 0.75), ("selfie", 0.25, 0.0)]
    assert history["changes"][0]["from"] == {"model_version": VERSION, "month": "2026-10-01"}


def test_app_shows_the_suggestion_the_reason_and_the_history(conn, engine, blobs, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from app.auth import create_user, issue_api_token
    from app.main import create_app
    from assets.tagging.escalation import escalate

    promote_rows(conn, ROWS, analysed_at=datetime(2026, 10, 5, tzinfo=UTC))
    with serve_vlm(FakeVlm(choose=choose)) as vlm:
        chat = VisionChat(vlm.base_url, MODEL, rate_limit="100/second")
        escalate(conn, BATCH, chat=chat, taxonomy=TAXONOMY, read_blob=blobs.get, max_calls=10, run_id="r")
    second = [tag_row(i, "food", "topic", 0.9, True, None, "test-model@2") for i in range(3)]
    promote_rows(conn, second, version="test-model@2", run_id="run-2", analysed_at=datetime(2026, 11, 2, tzinfo=UTC))
    conn.commit()
    with engine.begin() as c:
        create_user(c, "vic", "a long enough password", "viewer")
        token = issue_api_token(c, "vic")
    client = TestClient(create_app(engine, blobs.root))
    auth = {"Authorization": f"Bearer {token}"}

    page = client.get("/review", headers=auth)
    assert page.status_code == 200, page.text[:500]
    assert "next because: p=0.40 near threshold 0.50" not in page.text  # 0.40 is 20% off: "vs"
    assert "next because: p=0.40 vs threshold 0.50; 0 labels so far" in page.text
    assert f"VLM suggestion ({MODEL}, {PROMPT_VERSION})" in page.text and "portrait does not apply" in page.text

    page = client.get("/creators/instagram/alice", headers=auth)
    assert page.status_code == 200 and '<svg class="tag-history"' in page.text and "<polyline" in page.text
    assert "Tag changes to review" in page.text and "25% → 75%" in page.text

    api = client.get("/api/creators/alice/tag-history", headers=auth)
    assert api.status_code == 200
    food = next(s for s in api.json()["series"] if s["tag"] == "food")
    assert [(p["model_version"], p["month"], p["share"]) for p in food["points"]] == [
        (VERSION, "2026-10-01", 0.25), ("test-model@2", "2026-11-01", 0.75)]
    assert client.get("/api/creators/nobody/tag-history", headers=auth).status_code == 404
    assert client.get("/api/creators/instagram/alice", headers=auth).status_code == 200  # the old route still works
