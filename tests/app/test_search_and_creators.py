"""Hybrid search, image → image search and the creators API, through the real app over a warehouse the
pipeline filled: OCR text, captions, bios and LLM profiles from the sample creators; image vectors and
query vectors from the same tiny SigLIP (random weights: semantic ranks are arbitrary but consistent,
so the tests check the mechanics — exact nearest order, RRF arithmetic, filters — not relevance)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from app.main import create_app
from app.search import RRF_K, HybridSearch, SearchFilters, SearchTuning, rrf
from tests.app.conftest import bearer


@pytest.fixture
def client(web_app, tokens) -> TestClient:
    return TestClient(web_app, headers=bearer(tokens["viewer"]))


def test_rrf_adds_reciprocal_ranks() -> None:
    fused = rrf([[10, 20, 30], [30, 10]])
    assert fused[10] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[30] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[20] == pytest.approx(1 / 62)
    assert sorted(fused, key=lambda i: -fused[i]) == [10, 30, 20]


def test_keyword_search_finds_ocr_text_captions_bios_and_llm_profiles(client, app_engine) -> None:
    with app_engine.connect() as conn:
        ocr_key = conn.execute(text("SELECT image_key FROM ocr_texts WHERE text = 'sofluffy'")).scalar_one()
        astro_images = set(conn.execute(text(
            "SELECT image_key FROM images WHERE username = 'astro.sam' AND status = 'ok'")).scalars())
        science = set(conn.execute(text(
            "SELECT i.image_key FROM images i JOIN creators c USING (platform, username) "
            "WHERE c.category = 'Science' AND i.status = 'ok'")).scalars())
    hit = client.get("/api/search", params={"q": "sofluffy", "mode": "keyword"}).json()
    assert hit["hits"][0]["image_key"] == ocr_key and hit["hits"][0]["fields"] == ["ocr"]
    assert len(hit["hits"]) == 1 and "keyword_ms" in hit["timings_ms"] and "embed_ms" not in hit["timings_ms"]

    captions = client.get("/api/search", params={"q": "astro", "mode": "keyword"}).json()["hits"]
    assert {h["image_key"] for h in captions} >= astro_images
    assert all("caption" in h["fields"] for h in captions if h["image_key"] in astro_images)

    # "science": the category is in the bio vector and the LLM wrote "a science creator".
    found = client.get("/api/search", params={"q": "science", "mode": "keyword", "limit": 100}).json()["hits"]
    assert {h["image_key"] for h in found} == science
    assert all({"bio", "llm_profile"} <= set(h["fields"]) for h in found)


def test_semantic_and_hybrid_fuse_by_reciprocal_rank(client, web_app, app_engine) -> None:
    semantic = client.get("/api/search", params={"q": "a photo of the moon", "mode": "semantic", "limit": 10}).json()
    assert semantic["timings_ms"]["embed_ms"] > 0 and len(semantic["hits"]) == 10
    distances = [h["distance"] for h in semantic["hits"]]
    assert distances == sorted(distances)
    # The exact order: cosine distances from the same query vector, computed in numpy.
    embedder = web_app.state.embedder
    query = embedder.embed_texts(["a photo of the moon"])[0]
    with app_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT i.image_key, e.embedding::text FROM image_embeddings e JOIN images i USING (image_id)")).all()
    vectors = np.array([np.array(v.strip("[]").split(","), dtype=np.float32) for _, v in rows])
    sims = vectors @ query / np.linalg.norm(vectors, axis=1) / np.linalg.norm(query)
    exact = [rows[i][0] for i in np.argsort(-sims)[:10]]
    assert [h["image_key"] for h in semantic["hits"]] == exact

    hybrid = client.get("/api/search", params={"q": "astro", "limit": 50}).json()
    assert hybrid["mode"] == "hybrid" and {"keyword_ms", "semantic_ms", "embed_ms"} <= set(hybrid["timings_ms"])
    for h in hybrid["hits"]:
        expected = sum(1 / (RRF_K + r) for r in (h["keyword_rank"], h["semantic_rank"]) if r)
        assert h["score"] == pytest.approx(expected, abs=1e-6)
    assert [h["score"] for h in hybrid["hits"]] == sorted((h["score"] for h in hybrid["hits"]), reverse=True)
    both = [h for h in hybrid["hits"] if h["keyword_rank"] and h["semantic_rank"]]
    assert both, "an image found by both halves"


def test_search_filters_apply_inside_both_halves(client, app_engine) -> None:
    with app_engine.connect() as conn:
        hidden = set(conn.execute(text("SELECT image_key_b FROM image_duplicates")).scalars())
        tag = conn.execute(text(
            "SELECT g.name FROM image_tags t JOIN tags g USING (tag_id) WHERE t.source = 'ai' "
            "GROUP BY g.name ORDER BY count(*) ASC, g.name LIMIT 1")).scalar_one()
        tagged = set(conn.execute(text(
            "SELECT i.image_key FROM image_tags t JOIN tags g USING (tag_id) JOIN images i USING (image_id) "
            "WHERE g.name = :t AND t.present"), {"t": tag}).scalars())
        dates = conn.execute(text("SELECT min(taken_at), max(taken_at) FROM posts")).one()
    for mode in ("semantic", "hybrid"):
        all_hits = client.get("/api/search", params={"q": "sample", "mode": mode, "limit": 100}).json()["hits"]
        deduped = client.get("/api/search", params={"q": "sample", "mode": mode, "limit": 100,
                                                    "hide_duplicates": True}).json()["hits"]
        assert hidden & {h["image_key"] for h in all_hits} and not hidden & {h["image_key"] for h in deduped}
        only_tag = client.get("/api/search", params={"q": "sample", "mode": mode, "tag": tag}).json()["hits"]
        assert {h["image_key"] for h in only_tag} == tagged
        science = client.get("/api/search", params={"q": "sample", "mode": mode, "category": "science"}).json()
        assert science["hits"] and {h["username"] for h in science["hits"]} <= {
            "astro.sam", "moon.watch", "rocket.launches", "hubble.fan"}
    middle = dates[0] + (dates[1] - dates[0]) / 2
    late = client.get("/api/search", params={"q": "sample", "mode": "semantic", "limit": 100,
                                             "date_from": middle.isoformat()}).json()["hits"]
    assert late and all(h["taken_at"] >= middle.isoformat()[:10] for h in late)
    unknown = client.get("/api/search", params={"q": "sample", "tag": "no-such-tag"})  # a filter naming no tag
    assert unknown.status_code == 404 and "unknown tag" in unknown.json()["detail"]
    assert client.get("/api/search", params={"q": "sample\x00"}).status_code == 422  # no NUL in text
    assert client.get("/api/search", params={"q": "sample", "mode": "fuzzy"}).status_code == 422
    assert client.get("/api/search", params={"q": "   "}).status_code == 422
    nul = client.get("/api/search", params={"q": "bad\x00byte", "mode": "keyword"})
    assert nul.status_code == 422 and "NUL" in nul.json()["detail"]  # refused up front (app.nul_bytes)


def test_the_exact_ranking_and_the_filtered_index_scan_agree(web_app, app_engine) -> None:
    """The two spellings of the filters (per-row for the HNSW scan, ANDed fragments for the exact
    ranking) must select the same images: force each path and compare."""
    embedder = web_app.state.embedder
    vector = embedder.embed_texts(["a photo of the moon"])[0]
    version, dim = HybridSearch(app_engine, embedder).model()
    with app_engine.connect() as conn:
        tag = conn.execute(text("SELECT g.name FROM image_tags t JOIN tags g USING (tag_id) GROUP BY g.name "
                                "ORDER BY count(*) DESC, g.name LIMIT 1")).scalar_one()
    index = HybridSearch(app_engine, embedder, tuning=SearchTuning(exact_below=-1, max_scan_tuples=100_000))
    exact = HybridSearch(app_engine, embedder, tuning=SearchTuning(exact_below=10**9))
    for flt in (SearchFilters(tag=tag), SearchFilters(category="science", hide_duplicates=True),
                SearchFilters(tag=tag, category="photography")):
        via_index, _ = index.nearest(vector, flt, version, dim, limit=10)
        via_exact, _ = exact.nearest(vector, flt, version, dim, limit=10)
        assert via_index and [i for i, _ in via_index] == [i for i, _ in via_exact], flt


def test_every_filter_path_matches_a_brute_force_over_the_source_tables(web_app, app_engine) -> None:
    """The search filters read images' own copies of the creator's category, the post's date and the
    duplicate flag (sql/016_search_facets.sql) and, for the exact ranking, intersect the tag and
    category sets. Each path (HNSW scan, exact by intersected sets, exact per row) must give the
    exact k nearest of the images that the source tables say pass: creators.category, posts.taken_at,
    image_duplicates and the effective tags, filtered and ranked here in Python."""
    embedder = web_app.state.embedder
    vector = embedder.embed_texts(["a photo of the moon"])[0]
    version, dim = HybridSearch(app_engine, embedder).model()
    with app_engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT i.image_id, i.image_key, lower(c.category), p.taken_at, e.embedding::text "
            "FROM images i JOIN image_embeddings e USING (image_id) "
            "LEFT JOIN creators c ON c.platform = i.platform AND c.username = i.username "
            "LEFT JOIN posts p ON p.platform = i.platform AND p.post_id = i.post_id "
            "WHERE i.status = 'ok' AND e.model_version = :v"), {"v": version}).all()
        hidden = set(conn.execute(text("SELECT image_key_b FROM image_duplicates")).scalars())
        tag = conn.execute(text("SELECT g.name FROM image_tags t JOIN tags g USING (tag_id) WHERE t.present "
                                "GROUP BY g.name ORDER BY count(*) DESC, g.name LIMIT 1")).scalar_one()
        tagged = set(conn.execute(text(
            "SELECT t.image_id FROM effective_image_tags(:v) t JOIN tags g USING (tag_id) "
            "WHERE g.name = :t AND t.present"), {"v": version, "t": tag}).scalars())
    counted: dict[str, int] = {}
    for r in rows:
        if r[2] is not None:
            counted[r[2]] = counted.get(r[2], 0) + 1
    categories = sorted(counted, key=lambda c: (-counted[c], c))[:2]  # the two with most searchable images
    dates = sorted(r[3] for r in rows if r[3] is not None)
    middle = dates[len(dates) // 2]
    second = sorted(r[3] for r in rows if r[3] is not None and r[2] == categories[1])
    vectors = np.array([np.array(r[4].strip("[]").split(","), dtype=np.float32) for r in rows])
    distance = 1 - vectors @ vector / np.linalg.norm(vectors, axis=1) / np.linalg.norm(vector)

    def expected(f: SearchFilters, k: int) -> list[int]:
        keep = [n for n, r in enumerate(rows)
                if (f.category is None or r[2] == f.category.lower())
                and (f.tag is None or r[0] in tagged)
                and (f.date_from is None or (r[3] is not None and r[3] >= f.date_from))
                and not (f.hide_duplicates and r[1] in hidden)]
        return [rows[n][0] for n in sorted(keep, key=lambda n: distance[n])[:k]]

    paths = {"index": SearchTuning(exact_below=-1, max_scan_tuples=100_000),
             "exact": SearchTuning(exact_below=10**9)}
    cases = [SearchFilters(tag=tag), SearchFilters(category=categories[0].upper()),
             SearchFilters(category=categories[1], date_from=second[len(second) // 2]),
             SearchFilters(date_from=middle, hide_duplicates=True),
             SearchFilters(category=categories[0], tag=tag, date_from=dates[0], hide_duplicates=True)]
    for flt in cases:
        want = expected(flt, 10)
        assert want and len(expected(flt, len(rows))) < len(rows), flt  # each case filters something out
        for name, tuning in paths.items():
            got, _ = HybridSearch(app_engine, embedder, tuning=tuning).nearest(vector, flt, version, dim, limit=10)
            assert [i for i, _ in got] == want, (name, flt)


def test_the_tag_and_category_sets_honour_reviewers_and_object_categories(web_app, app_engine) -> None:
    """The exact ranking's id sets (search.sql ids_tag, ids_tag_category, ids_tag_vetoed) against the
    per-row filters and a brute force over the source tables, with the cases the sets treat apart: a
    reviewer's "no" on the model's nearest tagged image (taken out after the intersection), a
    reviewer's "yes" on an untagged image, and an image of another creator category that is in the
    category through an object (the tag's rows within the category come from image_tags'
    copy of the category, sql/017, plus the objects' images)."""
    embedder = web_app.state.embedder
    vector = embedder.embed_texts(["a photo of the moon"])[0]
    version, dim = HybridSearch(app_engine, embedder).model()
    with app_engine.connect() as conn:
        # a tag on some of a category's images (not all) and on images outside it
        tag_id, tag, category = conn.execute(text(
            "WITH tagged AS (SELECT t.tag_id, t.image_id FROM effective_image_tags(:v) t WHERE t.present), "
            "     imgs AS (SELECT i.image_id, i.creator_category FROM images i JOIN image_embeddings e USING (image_id) "
            "              WHERE i.status = 'ok' AND e.model_version = :v AND i.creator_category IS NOT NULL) "
            "SELECT g.tag_id, g.name, c.creator_category FROM tags g CROSS JOIN (SELECT DISTINCT creator_category FROM imgs) c "
            "WHERE EXISTS (SELECT 1 FROM imgs m JOIN tagged t USING (image_id) "
            "              WHERE t.tag_id = g.tag_id AND m.creator_category = c.creator_category) "
            "  AND EXISTS (SELECT 1 FROM imgs m WHERE m.creator_category = c.creator_category AND NOT EXISTS "
            "              (SELECT 1 FROM tagged t WHERE t.image_id = m.image_id AND t.tag_id = g.tag_id)) "
            "  AND EXISTS (SELECT 1 FROM imgs m JOIN tagged t USING (image_id) "
            "              WHERE t.tag_id = g.tag_id AND m.creator_category <> c.creator_category) "
            "ORDER BY (SELECT count(*) FROM tagged t WHERE t.tag_id = g.tag_id) DESC, g.name, 3 LIMIT 1"),
            {"v": version}).one()

        def nearest_first(where: str, conn=conn) -> list[int]:
            return list(conn.execute(text(
                "SELECT i.image_id, e.embedding <=> CAST(:q AS halfvec) FROM images i JOIN image_embeddings e USING (image_id) "
                f"WHERE i.status = 'ok' AND e.model_version = :v AND {where} "
                "ORDER BY e.embedding <=> CAST(:q AS halfvec), i.image_id"),
                {"v": version, "t": tag_id, "c": category, "q": str(list(map(float, vector)))}).all())

        tagged = "EXISTS (SELECT 1 FROM effective_image_tags(:v) t WHERE t.image_id = i.image_id AND t.tag_id = :t AND t.present)"
        vetoed = nearest_first(f"i.creator_category = :c AND {tagged}")[0][0]
        added = nearest_first(f"i.creator_category = :c AND NOT {tagged}")[0][0]
        through_object = nearest_first(f"i.creator_category IS DISTINCT FROM :c AND {tagged}")[0][0]
    inserted = []
    try:
        with app_engine.begin() as conn:
            for image_id, present in ((vetoed, False), (added, True)):
                conn.execute(text("INSERT INTO image_tags (image_id, tag_id, source, model_version, present, reviewer) "
                                  "VALUES (:i, :t, 'user', '', :p, 'rita')"), {"i": image_id, "t": tag_id, "p": present})
            conn.execute(text(
                "INSERT INTO detected_objects (image_id, model_version, object_idx, label, confidence, x1, y1, x2, y2, "
                "                              category, batch_key) "
                "VALUES (:i, 'test-objects', 0, 'thing', 0.9, 0, 0, 1, 1, :c, 'test')"), {"i": through_object, "c": category})
            inserted = [vetoed, added]
        with app_engine.connect() as conn:
            every_tagged = nearest_first(tagged, conn)
            want_tag = every_tagged[:10]
            in_category = ("(i.creator_category = :c OR EXISTS (SELECT 1 FROM detected_objects o "
                           "WHERE o.image_id = i.image_id AND lower(o.category) = :c))")
            want_both = [i for i, _ in nearest_first(f"{in_category} AND {tagged}", conn)]
        assert vetoed not in want_both and added in want_both and through_object in want_both
        paths = {"index": SearchTuning(exact_below=-1, max_scan_tuples=100_000), "exact": SearchTuning(exact_below=10**9)}
        for name, tuning in paths.items():
            search = HybridSearch(app_engine, embedder, tuning=tuning)
            got, _ = search.nearest(vector, SearchFilters(tag=tag), version, dim, limit=10)
            # the same distances in order, and the same images wherever a distance is not shared (the
            # sample holds identical photos, whose order at the k-th place is the index scan's)
            assert [round(d, 5) for _, d in got] == [round(d, 5) for _, d in want_tag], name
            ties = {round(d, 5) for _, d in want_tag if sum(round(x, 5) == round(d, 5) for _, x in every_tagged) > 1}
            assert [i for i, d in got if round(d, 5) not in ties] == [i for i, d in want_tag if round(d, 5) not in ties]
            got, _ = search.nearest(vector, SearchFilters(tag=tag, category=category.upper()), version, dim,
                                    limit=len(want_both) + 5)
            assert [i for i, _ in got] == want_both, name
        # the keyword half: the candidates checked against the tag's id set first (a tag on few images,
        # app_search.sql keyword_tagged_candidates) or per row; every match (no GIN sample), same answer
        found = {}
        for below in (0, 10**9):
            search = HybridSearch(app_engine, None, tuning=SearchTuning(keyword_tag_set_below=below,
                                                                        gin_fuzzy_search_limit=0))
            found[below] = [search.keyword(word, SearchFilters(tag=tag), version, limit=1000)[0]
                            for word in ("sample", "photo", tag)]
        assert found[0] == found[10**9] and any(found[0])
        assert vetoed not in {r[0] for rows in found[0] for r in rows}
    finally:
        with app_engine.begin() as conn:
            conn.execute(text("DELETE FROM image_tags WHERE source = 'user' AND reviewer = 'rita' AND tag_id = :t "
                              "AND image_id = ANY(:ids)"), {"t": tag_id, "ids": inserted})
            conn.execute(text("DELETE FROM detected_objects WHERE model_version = 'test-objects'"))


def test_the_keyword_tag_field_keeps_the_best_effective_rows_whatever_reviewers_decided(web_app, app_engine) -> None:
    """The tag field reads a tag's best model rows in confidence order and stops (app_search.sql):
    with reviewers vetoing the model's best rows and adding the tag elsewhere, it must still return
    the per_field best rows of effective_image_tags, as ranking all of them would."""
    per_field = 3
    with app_engine.begin() as conn:
        version = HybridSearch(app_engine, None).model()[0]
        tag_id, name = conn.execute(text(
            "SELECT g.tag_id, g.name FROM image_tags t JOIN tags g USING (tag_id) "
            "WHERE t.present AND t.source = 'ai' AND t.model_version = :v AND g.name ~ '^[a-z]+$' "
            "GROUP BY g.tag_id, g.name ORDER BY count(*) DESC, g.name LIMIT 1"), {"v": version}).one()
        ranked = conn.execute(text(
            "SELECT image_id FROM image_tags WHERE tag_id = :t AND model_version = :v AND source = 'ai' AND present "
            "ORDER BY confidence DESC, image_id"), {"t": tag_id, "v": version}).scalars().all()
        assert len(ranked) > per_field + 2
        untagged = conn.execute(text(
            "SELECT image_id FROM images WHERE status = 'ok' AND image_id <> ALL(:ids) ORDER BY image_id LIMIT 1"),
            {"ids": ranked}).scalar_one()
        # reviewers: "no" on the model's two best rows, "yes" on an image the model did not tag
        for image_id, present in ((ranked[0], False), (ranked[1], False), (untagged, True)):
            conn.execute(text(
                "INSERT INTO image_tags (image_id, tag_id, source, model_version, present, reviewer) "
                "VALUES (:i, :t, 'user', '', :p, 'rita')"), {"i": image_id, "t": tag_id, "p": present})
        expected = conn.execute(text(
            "SELECT image_id FROM effective_image_tags(:v) WHERE tag_id = :t AND present "
            "ORDER BY CASE WHEN source = 'user' THEN 1.0 ELSE confidence END DESC, image_id LIMIT :n"),
            {"v": version, "t": tag_id, "n": per_field}).scalars().all()
    assert expected[0] == untagged and ranked[0] not in expected and ranked[1] not in expected
    search = HybridSearch(app_engine, None, tuning=SearchTuning(per_field=per_field))
    rows, _ = search.keyword(name, SearchFilters(), version, limit=100)
    assert {r[0] for r in rows if "tag" in r[2]} == set(expected)


def test_the_keyword_half_samples_a_frequent_word_only_under_gin_fuzzy_search_limit(app_engine) -> None:
    """SearchTuning.gin_fuzzy_search_limit reaches the keyword half's GIN scans: 6,000 captions hold a
    word, 500 of them three times (ts_rank puts those first). With the limit off (0) or above the
    word's 6,000 matches, the caption field's 500 candidates are exactly those 500; under a limit of
    1,000 the ranking sees a random sixth of the matches and most of them are missed."""
    with app_engine.begin() as conn:
        version = HybridSearch(app_engine, None).model()[0]
        conn.execute(text(
            "INSERT INTO posts (platform, post_id, username, taken_at, caption, batch_key) "
            "SELECT 'instagram', 'gin' || n, 'astro.sam', now(), "
            "       CASE WHEN n <= 500 THEN 'zzfrequent zzfrequent zzfrequent' ELSE 'zzfrequent once' END, 'gin' "
            "FROM generate_series(1, 6000) n"))
        conn.execute(text(
            "INSERT INTO images (image_key, platform, post_id, username, batch_key, rank, engagement, status, sha256, pdq_hash, "
            "                    pdq_quality) "
            "SELECT 'instagram:gin' || n, 'instagram', 'gin' || n, 'astro.sam', 'gin', 1, 0, 'ok', "
            "       lpad(to_hex(n), 64, '0'), lpad(to_hex(n), 64, '0'), 90 FROM generate_series(1, 6000) n"))
        repeated = set(conn.execute(text(
            "SELECT image_id FROM images WHERE post_id IN (SELECT 'gin' || n FROM generate_series(1, 500) n)"))
            .scalars())
        # new rows wait in the GIN index's pending list, read whole, until (auto)vacuum merges them
        conn.execute(text("SELECT gin_clean_pending_list('posts_caption_tsv')"))
        # the sample warehouse is small: make the planner take the GIN index, as on a real one
        conn.execute(text(f"ALTER DATABASE {app_engine.url.database} SET enable_seqscan = off"))
    app_engine.dispose()

    def captions(limit: int) -> set[int]:
        search = HybridSearch(app_engine, None, tuning=SearchTuning(gin_fuzzy_search_limit=limit))
        rows, _ = search.keyword("zzfrequent", SearchFilters(), version, limit=1000)
        return {r[0] for r in rows if "caption" in r[2]}

    assert captions(0) == repeated
    assert captions(10_000) == repeated
    assert len(captions(1_000) & repeated) < 400


def test_the_ef_search_setting_reaches_the_search_transaction(app_engine, filled_warehouse) -> None:
    """create_app(ef_search=...) sets hnsw.ef_search inside the transaction the vector search runs in
    (never below the k asked for); without it the app keeps SearchTuning's default."""
    embedder = filled_warehouse.models.load("image_embedder")
    vector = embedder.embed_texts(["a photo of the moon"])[0]

    def ef_search_seen(ef_search: int, k: int) -> str:
        search = create_app(app_engine, filled_warehouse.settings.blob_root, embedder=embedder,
                            ef_search=ef_search).state.search
        version, dim = search.model()
        with app_engine.connect() as sa_conn:
            conn = sa_conn.connection.driver_connection
            hits = search.vectors.nearest(conn, vector, SearchFilters(), version, dim, k)
            seen = conn.execute("SHOW hnsw.ef_search").fetchone()[0]
            sa_conn.rollback()
        assert len(hits) == k
        return seen

    assert ef_search_seen(123, 10) == "123"
    assert ef_search_seen(7, 10) == "10"
    default = create_app(app_engine, filled_warehouse.settings.blob_root).state.search
    assert default.tuning.ef_search == SearchTuning().ef_search


def test_image_to_image_by_stored_image_and_by_upload(client, app_engine, filled_warehouse) -> None:
    with app_engine.connect() as conn:
        key, blob = conn.execute(text(
            "SELECT image_key, blob_key FROM images WHERE status = 'ok' ORDER BY image_key LIMIT 1")).one()
        exact_dup = conn.execute(text(
            "SELECT image_key_a, image_key_b FROM image_duplicates WHERE kind = 'exact' LIMIT 1")).one()
        copies = {key, *conn.execute(text(
            "SELECT CASE WHEN image_key_a = :k THEN image_key_b ELSE image_key_a END FROM image_duplicates "
            "WHERE :k IN (image_key_a, image_key_b)"), {"k": key}).scalars()}
    similar = client.get(f"/api/search/similar/{exact_dup.image_key_a}", params={"limit": 5}).json()["hits"]
    assert exact_dup.image_key_a not in {h["image_key"] for h in similar}
    assert similar[0]["image_key"] == exact_dup.image_key_b and similar[0]["distance"] < 1e-3
    photo = (filled_warehouse.settings.blob_root / blob).read_bytes()
    uploaded = client.post("/api/search/image", files={"file": ("p.jpg", photo, "image/jpeg")}).json()["hits"]
    # The photo itself, or one of its exact or near duplicates (same content), comes first.
    assert uploaded[0]["image_key"] in copies and uploaded[0]["distance"] < 1e-2, (uploaded[:3], copies)
    corrupt = client.post("/api/search/image", files={"file": ("x.jpg", b"\xff\xd8not a jpeg", "image/jpeg")})
    assert corrupt.status_code == 422 and "not a readable image" in corrupt.json()["detail"]
    assert client.get("/api/search/similar/instagram:nope").status_code == 404


def test_without_an_embedder_hybrid_falls_back_to_keyword_and_semantic_says_why(app_engine, filled_warehouse,
                                                                                tokens) -> None:
    client = TestClient(create_app(app_engine, filled_warehouse.settings.blob_root), headers=bearer(tokens["viewer"]))
    hybrid = client.get("/api/search", params={"q": "sofluffy"}).json()
    assert hybrid["hits"] and "keyword only" in hybrid["notes"][0] and "models pull" in hybrid["notes"][0]
    semantic = client.get("/api/search", params={"q": "sofluffy", "mode": "semantic"})
    assert semantic.status_code == 503 and "models pull image_embedder" in semantic.json()["detail"]
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buf, "PNG")
    assert client.post("/api/search/image", files={"file": ("r.png", buf.getvalue(), "image/png")}).status_code == 503


def creator_tag_sets(conn, min_share: float) -> dict[str, set[str]]:
    rows = conn.execute(text(
        "SELECT c.username, g.name FROM creator_tags ct JOIN creators c USING (creator_id) JOIN tags g USING (tag_id) "
        "WHERE ct.share >= :s"), {"s": min_share}).all()
    out: dict[str, set[str]] = {}
    for user, tag in rows:
        out.setdefault(user, set()).add(tag)
    return out


def test_creators_filter_by_tags_and_or_topics_and_detail(client, app_engine) -> None:
    with app_engine.connect() as conn:
        have = creator_tag_sets(conn, 0.5)
    a, b = sorted({t for tags in have.values() for t in tags})[:2]
    both = {u for u, tags in have.items() if {a, b} <= tags}
    either = {u for u, tags in have.items() if {a, b} & tags}
    got_all = {c["username"] for c in client.get("/api/creators", params={
        "tags_all": [a, b], "min_share": 0.5}).json()}
    got_any = {c["username"] for c in client.get("/api/creators", params={
        "tags_any": [a, b], "min_share": 0.5}).json()}
    assert got_all == both and got_any == either and both < either
    science = {c["username"] for c in client.get("/api/creators", params={"topics": ["Science"]}).json()}
    assert science == {"astro.sam", "moon.watch", "rocket.launches", "hubble.fan"}

    detail = client.get("/api/creators/instagram/astro.sam").json()
    assert detail["llm_profile"]["status"] == "ok" and detail["llm_profile"]["topics"] == ["science", "tutorials"]
    shares = [t["share"] for t in detail["tags"]]
    assert shares == sorted(shares, reverse=True) and all(0 < s <= 1 for s in shares)
    assert all(t["images_tagged"] <= t["images_analysed"] for t in detail["tags"])


def test_similar_creators_by_profile_and_by_images_and_brief_matching(client, app_engine) -> None:
    by_profile = client.get("/api/creators/instagram/astro.sam/similar", params={"by": "profile"}).json()
    assert by_profile and "astro.sam" not in {s["username"] for s in by_profile}
    sims = [s["similarity"] for s in by_profile]
    assert sims == sorted(sims, reverse=True)
    by_images = client.get("/api/creators/instagram/astro.sam/similar", params={"by": "images"}).json()
    assert by_images and "astro.sam" not in {s["username"] for s in by_images}
    assert [s["similarity"] for s in by_images] == sorted((s["similarity"] for s in by_images), reverse=True)
    assert client.get("/api/creators/instagram/nobody/similar").status_code == 404

    with app_engine.connect() as conn:
        have = creator_tag_sets(conn, 0.1)
    required = sorted(have["astro.sam"])[0]
    preferred = sorted(have["astro.sam"])[1:4]
    matched = client.post("/api/creators/match", json={"required": [required], "preferred": preferred,
                                                        "min_share": 0.1}).json()
    assert {m["username"] for m in matched} == {u for u, tags in have.items() if required in tags}
    expected_pref = {u: len(set(preferred) & tags) for u, tags in have.items() if required in tags}
    assert [m["preferred_matched"] for m in matched] == sorted(expected_pref.values(), reverse=True)
    assert all(m["preferred_matched"] == expected_pref[m["username"]] for m in matched)
    assert client.post("/api/creators/match", json={}).status_code == 422
