"""COPY + upsert promotion against the real warehouse: atomic, idempotent, keyed on natural keys."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import psycopg
import pytest

from assets.common.promotion import promote, with_facets
from creatorlens.queries import load_queries


def _frames(n_images: int = 3, batch_user: str = "alice"):
    creators = pd.DataFrame(
        [{"platform": "instagram", "username": batch_user, "full_name": "Alice", "bio": "hi", "category": "Art",
          "country": "FR", "followers": 1200, "is_business": True, "is_verified": None, "sources": ["a.csv", "b.json"]}]
    )
    posts = pd.DataFrame(
        [{"platform": "instagram", "post_id": str(i), "username": batch_user, "shortcode": f"s{i}",
          "taken_at": datetime(2024, 1, i + 1, tzinfo=UTC), "caption": f"c{i}", "likes": 10 * i, "comments": i,
          "media_url": f"/x/{i}.jpg", "is_video": False} for i in range(n_images)]
    )
    images = pd.DataFrame(
        [{"image_key": f"instagram:{i}", "platform": "instagram", "post_id": str(i), "username": batch_user,
          "rank": i + 1, "engagement": 11 * i, "source_uri": f"/x/{i}.jpg",
          "status": "ok" if i else "failed", "error_reason": None if i else "truncated",
          "error": None if i else "image file is truncated",
          "sha256": f"{i:064x}" if i else None, "pdq_hash": f"{i:064x}" if i else None,
          "pdq_quality": 90 if i else None, "width": 10, "height": 10, "processed_at": datetime.now(UTC)}
         for i in range(n_images)]
    )
    images["pdq_quality"] = images["pdq_quality"].astype("Int64")
    dups = pd.DataFrame([{"image_key_a": "instagram:1", "image_key_b": "instagram:2", "distance": 4, "kind": "near"}])
    return creators, posts, images, dups


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed names
                for t in ("creators", "posts", "images", "image_duplicates", "promotions")}


def _promote(conn, frames, run_id="run-1"):
    creators, posts, images, dups = frames
    return promote(conn, "batch-00001", creators=creators, posts=posts, images=images, duplicates=dups,
                   run_id=run_id, code_version="test")


def test_promotion_writes_every_table_and_rerun_changes_nothing(database_url):
    url = database_url.replace("+psycopg", "")
    frames = _frames()
    with psycopg.connect(url) as conn:
        first = _promote(conn, frames)
        second = _promote(conn, frames, run_id="run-2")
    assert first.staged == {"creators": 1, "posts": 3, "images": 3, "image_duplicates": 1}
    assert first.written == {"creators": 1, "posts": 3, "images": 3, "image_duplicates": 1}
    assert second.written == {"creators": 0, "posts": 0, "images": 0, "image_duplicates": 0}
    assert _counts(database_url) == {"creators": 1, "posts": 3, "images": 3, "image_duplicates": 1, "promotions": 2}
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT sources, followers, is_business, is_verified FROM creators").fetchone()
        failed = conn.execute("SELECT status, error_reason FROM images WHERE post_id = '0'").fetchone()
    assert row == (["a.csv", "b.json"], 1200, True, None)
    assert failed == ("failed", "truncated")


def test_rerun_with_fewer_rows_removes_this_batchs_stale_rows_only(database_url):
    url = database_url.replace("+psycopg", "")
    with psycopg.connect(url) as conn:
        _promote(conn, _frames(n_images=3))
        creators, posts, images, _ = _frames(n_images=2)
        result = promote(conn, "batch-00001", creators=creators, posts=posts, images=images,
                         duplicates=pd.DataFrame(columns=["image_key_a", "image_key_b", "distance", "kind"]),
                         run_id="run-2", code_version="test")
    assert result.deleted == {"posts": 1, "images": 1, "image_duplicates": 1}
    counts = _counts(database_url)
    assert (counts["posts"], counts["images"], counts["image_duplicates"]) == (2, 2, 0)


def test_a_failing_statement_rolls_back_the_whole_batch(database_url):
    url = database_url.replace("+psycopg", "")
    creators, posts, images, dups = _frames()
    images.loc[1, "sha256"] = None  # violates images_ok_has_hashes, after creators/posts were upserted
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        _promote(conn, (creators, posts, images, dups))
    assert _counts(database_url) == {"creators": 0, "posts": 0, "images": 0, "image_duplicates": 0, "promotions": 0}


def test_source_value_fills_but_missing_value_never_erases(database_url):
    url = database_url.replace("+psycopg", "")
    frames = _frames()
    with psycopg.connect(url) as conn:
        _promote(conn, frames)
        creators = frames[0].assign(bio=None, followers=1500)
        _promote(conn, (creators, *frames[1:]), run_id="run-2")
        assert conn.execute("SELECT bio, followers FROM creators").fetchone() == ("hi", 1500)


def test_a_cross_batch_pair_has_one_stable_owner_whichever_batch_reruns(database_url):
    """The pair belongs to the later batch; re-running the earlier batch, which sees it too, rewrites nothing."""
    url = database_url.replace("+psycopg", "")
    c1, p1, i1, _ = _frames(n_images=2, batch_user="alice")
    c2, p2, i2, _ = _frames(n_images=2, batch_user="bob")
    p2["post_id"] = i2["post_id"] = ["10", "11"]
    i2["image_key"] = ["instagram:10", "instagram:11"]
    pair = pd.DataFrame([{"image_key_a": "instagram:1", "image_key_b": "instagram:11", "distance": 3, "kind": "near"}])
    none = pair.iloc[0:0]
    with psycopg.connect(url) as conn:
        promote(conn, "batch-00001", creators=c1, posts=p1, images=i1, duplicates=none, run_id="r1", code_version="t")
        promote(conn, "batch-00002", creators=c2, posts=p2, images=i2, duplicates=pair, run_id="r2", code_version="t")
        owner = conn.execute("SELECT batch_key, updated_at FROM image_duplicates").fetchone()
        again = promote(conn, "batch-00001", creators=c1, posts=p1, images=i1, duplicates=pair, run_id="r3",
                        code_version="t")
        after = conn.execute("SELECT batch_key, updated_at FROM image_duplicates").fetchone()
    assert owner[0] == "batch-00002"
    assert again.written["image_duplicates"] == 0 and again.deleted["image_duplicates"] == 0
    assert after == owner  # same owner, same updated_at: nothing rewritten


def _images(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT image_key, batch_key, username, engagement, error, updated_at "
                            "FROM images ORDER BY image_key").fetchall()


def test_an_image_that_moves_batch_takes_the_staging_path_and_moves(database_url):
    """A first promotion of a batch COPYs straight into images; a key another batch already holds makes the
    unique index refuse that COPY, and the rows are upserted instead: nothing fails, nothing is doubled."""
    url = database_url.replace("+psycopg", "")
    creators, posts, images, _ = _frames(n_images=3)
    none = pd.DataFrame(columns=["image_key_a", "image_key_b", "distance", "kind"])
    with psycopg.connect(url) as conn:
        promote(conn, "batch-00001", creators=creators, posts=posts, images=images.iloc[:2], duplicates=none,
                run_id="r1", code_version="t")
        moved = promote(conn, "batch-00002", creators=creators, posts=posts, images=images.iloc[1:], duplicates=none,
                        run_id="r2", code_version="t")
    assert moved.written["images"] == 2
    assert [(k, b) for k, b, *_ in _images(url)] == [
        ("instagram:0", "batch-00001"), ("instagram:1", "batch-00002"), ("instagram:2", "batch-00002")]


def test_a_rerun_rewrites_only_rows_whose_compared_columns_changed(database_url):
    """The first promotion COPYs straight into images, a re-run upserts: a changed engagement is written, a
    changed username alone is not (as the upsert's WHERE has it), the rest is left as it was."""
    url = database_url.replace("+psycopg", "")
    frames = _frames(n_images=3)
    with psycopg.connect(url) as conn:
        _promote(conn, frames)
        before = _images(url)
        images = frames[2].copy()
        images.loc[1, "engagement"] = 999
        images.loc[2, "username"] = "renamed"
        result = _promote(conn, (frames[0], frames[1], images, frames[3]), run_id="run-2")
    after = _images(url)
    assert result.staged["images"] == 3
    assert result.written["images"] == 1
    assert after[1][3] == 999 and after[1][5] > before[1][5]
    assert after[0] == before[0] and after[2] == before[2]  # row 2: not rewritten, username kept


def test_text_that_copy_escapes_round_trips_and_reruns_unchanged(database_url):
    """Backslashes, tabs, newlines and control characters in text survive both COPY paths (straight into
    images, and staged), and a rerun of the same frame writes nothing."""
    url = database_url.replace("+psycopg", "")
    frames = _frames(n_images=3)
    odd = "C:\\temp\tcol\nline\r\x08bell \\N é"
    frames[2].loc[0, "error"] = odd
    frames[2].loc[2, "source_uri"] = "tab\there"
    with psycopg.connect(url) as conn:
        _promote(conn, frames)
        again = _promote(conn, frames, run_id="run-2")
        stored = conn.execute("SELECT error FROM images WHERE image_key = 'instagram:0'").fetchone()[0]
    assert stored == odd
    assert again.written["images"] == 0


def test_a_first_promotion_streamed_in_chunks_lands_every_row_once(database_url, monkeypatch):
    """The first promotion's COPY is built and sent a chunk at a time: rows on both sides of every chunk
    boundary arrive, once, with the batch key, and a re-run of the same frame writes nothing."""
    from assets.common import promotion

    monkeypatch.setattr(promotion, "COPY_CHUNK_ROWS", 7)
    url = database_url.replace("+psycopg", "")
    frames = _frames(n_images=30)
    with psycopg.connect(url) as conn:
        first = _promote(conn, frames)
        again = _promote(conn, frames, run_id="run-2")
        stored = conn.execute("SELECT image_key, batch_key, engagement FROM images ORDER BY image_id").fetchall()
    assert first.written["images"] == 30 and again.written["images"] == 0
    assert stored == [(f"instagram:{i}", "batch-00001", 11 * i) for i in range(30)]


def test_a_chunk_the_vectorised_copy_cannot_write_goes_row_by_row_in_the_same_copy(database_url, monkeypatch):
    """Each chunk picks its own path: creators whose first chunk has no sources (all NULL, vectorised) and
    whose later chunks carry source lists (arrays: the per-row path) all land, with their lists."""
    from assets.common import promotion

    monkeypatch.setattr(promotion, "COPY_CHUNK_ROWS", 7)
    url = database_url.replace("+psycopg", "")
    creators = pd.DataFrame([{"platform": "instagram", "username": f"user{i:02d}", "category": "Art",
                              "sources": None if i < 7 else [f"s{i}.csv"]} for i in range(20)])
    empty = {"posts": pd.DataFrame(columns=["platform", "post_id"]),
             "images": pd.DataFrame(columns=["image_key", "platform", "post_id", "username"]),
             "duplicates": pd.DataFrame(columns=["image_key_a", "image_key_b", "distance", "kind"])}
    with psycopg.connect(url) as conn:
        result = promote(conn, "batch-00001", creators=creators, run_id="r1", code_version="t", **empty)
        stored = conn.execute("SELECT username, sources FROM creators ORDER BY username").fetchall()
    assert result.written["creators"] == 20
    assert stored == [(f"user{i:02d}", [] if i < 7 else [f"s{i}.csv"]) for i in range(20)]


def _facets(conn) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in conn.execute(
        "SELECT image_key, creator_category, taken_at, is_duplicate FROM images ORDER BY image_key").fetchall()}


def _drift(conn) -> list[tuple]:
    return conn.execute(load_queries("search.sql")["search_facets_drift"]).fetchall()


def test_the_search_facets_follow_promotion_corrections_and_other_batches(database_url):
    """images.creator_category / taken_at / is_duplicate (sql/016) agree with creators, posts and
    image_duplicates after a first load, a rerun, a creator without a category in the frame, a
    correction made outside promotion, a pair found by another batch and a pair removed."""
    url = database_url.replace("+psycopg", "")
    creators, posts, images, dups = _frames()
    carousel = images.iloc[[2]].assign(image_key="instagram:2:2", rank=4)  # post 2's second image
    images = pd.concat([images, carousel], ignore_index=True)
    with psycopg.connect(url, autocommit=True) as conn:  # each promote() its own transaction
        first = _promote(conn, (creators, posts, images, dups))
        assert first.written["images"] == 4
        assert _facets(conn) == {
            "instagram:0": ("art", datetime(2024, 1, 1, tzinfo=UTC), False),
            "instagram:1": ("art", datetime(2024, 1, 2, tzinfo=UTC), False),
            "instagram:2": ("art", datetime(2024, 1, 3, tzinfo=UTC), True),  # the larger key of the pair
            "instagram:2:2": ("art", datetime(2024, 1, 3, tzinfo=UTC), False),
        }
        assert _drift(conn) == []
        # a rerun whose creator row says nothing about the category keeps the stored one
        _promote(conn, (creators.assign(category=None), posts, images, dups), run_id="run-2")
        assert {f[0] for f in _facets(conn).values()} == {"art"} and _drift(conn) == []
        # the source changes: a new category, a post re-dated
        creators = creators.assign(category="Photography")
        posts.loc[posts["post_id"] == "1", "taken_at"] = datetime(2025, 5, 5, tzinfo=UTC)
        _promote(conn, (creators, posts, images, dups), run_id="run-3")
        facets = _facets(conn)
        assert {f[0] for f in facets.values()} == {"photography"}
        assert facets["instagram:1"][1] == datetime(2025, 5, 5, tzinfo=UTC)
        # a correction outside promotion (the app, an operator) reaches images through the triggers
        conn.execute("UPDATE creators SET category = 'Travel' WHERE username = 'alice'")
        conn.execute("UPDATE posts SET taken_at = '2023-03-03T00:00:00Z' WHERE post_id = '2'")
        facets = _facets(conn)
        assert {f[0] for f in facets.values()} == {"travel"}
        assert facets["instagram:2"][1] == facets["instagram:2:2"][1] == datetime(2023, 3, 3, tzinfo=UTC)
        assert _drift(conn) == []
        # another batch finds a pair with one of this batch's images as its larger key
        b_creators, b_posts, b_images, _ = _frames(n_images=2, batch_user="bob")
        b_posts = b_posts.iloc[[1]].assign(post_id="b0")
        b_images = b_images.iloc[[1]].assign(post_id="b0", image_key="instagram:00-b0")  # an ok image
        pair = pd.DataFrame([{"image_key_a": "instagram:00-b0", "image_key_b": "instagram:1", "distance": 3,
                              "kind": "near"}])
        promote(conn, "batch-00002", creators=b_creators, posts=b_posts, images=b_images, duplicates=pair,
                run_id="run-b", code_version="test")
        assert _facets(conn)["instagram:1"][2] is True and _drift(conn) == []
        # that batch's rerun no longer finds it: the flag goes with the pair
        promote(conn, "batch-00002", creators=b_creators, posts=b_posts, images=b_images,
                duplicates=pair.iloc[0:0], run_id="run-b2", code_version="test")
        assert _facets(conn)["instagram:1"][2] is False and _drift(conn) == []
        conn.execute("DELETE FROM image_duplicates")
        assert not any(f[2] for f in _facets(conn).values()) and _drift(conn) == []


def _tag_copies(conn) -> dict[tuple[str, str], str | None]:
    return {(r[0], r[1]): r[2] for r in conn.execute(
        "SELECT i.image_key, t.source, t.creator_category FROM image_tags t JOIN images i USING (image_id)").fetchall()}


def test_the_tag_rows_copy_of_the_category_follows_inserts_corrections_and_promotion(database_url):
    """image_tags.creator_category (sql/017) is the category filter's copy for a tag's rows: it is
    filled on insert by every writer (promote_tags.sql's upsert passes it; a reviewer's row, written
    without it, gets it from its image) and follows the image's category through a creator's
    correction, a promotion that changes it and a creator whose category is unknown."""
    url = database_url.replace("+psycopg", "")
    creators, posts, images, dups = _frames()
    queries = load_queries("search.sql")
    with psycopg.connect(url, autocommit=True) as conn:
        _promote(conn, (creators, posts, images, dups))
        tag_id = conn.execute("INSERT INTO tags (name, category, exclusive, origin) "
                              "VALUES ('beach', 'scene', false, 'user') RETURNING tag_id").fetchone()[0]
        conn.execute("INSERT INTO image_tags (image_id, tag_id, source, model_version, present, reviewer) "
                     "SELECT image_id, %s, 'user', '', true, 'rita' FROM images WHERE status = 'ok'", (tag_id,))
        assert set(_tag_copies(conn).values()) == {"art"} and len(_tag_copies(conn)) == 2
        assert conn.execute(queries["tag_facets_drift"]).fetchall() == []
        # a correction outside promotion: creators -> images (sql/016) -> image_tags (sql/017)
        conn.execute("UPDATE creators SET category = 'Travel' WHERE username = 'alice'")
        assert set(_tag_copies(conn).values()) == {"travel"}
        # a promotion that changes the category, then a rerun that leaves it alone
        _promote(conn, (creators.assign(category="Food"), posts, images, dups), run_id="run-2")
        assert set(_tag_copies(conn).values()) == {"food"}
        _promote(conn, (creators.assign(category=None), posts, images, dups), run_id="run-3")
        assert set(_tag_copies(conn).values()) == {"food"}
        # a creator without a category: the copy is NULL, like the image's, and the filter skips it
        conn.execute("UPDATE creators SET category = NULL WHERE username = 'alice'")
        assert set(_tag_copies(conn).values()) == {None}
        assert conn.execute(queries["tag_facets_drift"]).fetchall() == []
        # a row inserted while the image has no category, then the category arrives
        conn.execute("DELETE FROM image_tags")
        conn.execute("INSERT INTO image_tags (image_id, tag_id, source, model_version, present, reviewer) "
                     "SELECT image_id, %s, 'user', '', false, 'rita' FROM images WHERE image_key = 'instagram:1'",
                     (tag_id,))
        conn.execute("UPDATE creators SET category = 'Pets' WHERE username = 'alice'")
        assert _tag_copies(conn) == {("instagram:1", "user"): "pets"}
        assert conn.execute(queries["tag_facets_drift"]).fetchall() == []


def test_a_first_load_copies_the_facets_and_the_sync_then_writes_nothing(database_url):
    """The COPY path carries creator_category and taken_at from the batch's own frames
    (with_facets), so sync_image_facets has nothing to write: the first load stays one write per row."""
    url = database_url.replace("+psycopg", "")
    creators, posts, images, dups = _frames()
    framed = with_facets(images, posts, creators)
    assert list(framed["creator_category"]) == ["art"] * 3
    assert list(framed["taken_at"]) == list(posts["taken_at"])
    assert framed.index.equals(images.index)
    # posts whose ids came through as numbers: no facet from them, no error (the sync fills it)
    assert with_facets(images, posts.assign(post_id=range(3)), creators)["taken_at"].isna().all()
    with psycopg.connect(url, autocommit=True) as conn:
        _promote(conn, (creators, posts, images, dups))
        xmins = dict(conn.execute("SELECT image_key, xmin::text FROM images").fetchall())
        with conn.transaction():
            written = conn.execute(load_queries("promote_batch.sql")["sync_image_facets"],
                                   {"batch_key": "batch-00001"}).rowcount
        after = dict(conn.execute("SELECT image_key, xmin::text FROM images").fetchall())
    assert written == 0
    # instagram:2 was written twice in the promotion (the pair's trigger set is_duplicate); the
    # others once, by the COPY
    assert after == xmins
