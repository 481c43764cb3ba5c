-- 016: the search filters' columns on images, so filtered search at 500,000 images is index work.
--
-- The search's filters (sql/queries/search.sql) used to reach three other tables per image: the
-- creator's category in creators, the post's date in posts, a duplicate pair in image_duplicates.
-- On bench/search.py's 500,000 images, all four filters at once spent 329 ms p95 in the semantic half:
-- the exact ranking scanned all of images with a hashed (platform, username) lookup per row (104 ms),
-- read the tag's 34,000 rows through 17,000 heap pages (31 ms), then probed posts per survivor; the
-- HNSW scan's per-row check cost ten buffer reads per visited image. Each of those values is now a
-- column of images, kept by promotion and by the triggers below:
--
--   creator_category  lower(creators.category) of the image's creator (the filter is case-insensitive)
--   taken_at          posts.taken_at of the image's post
--   is_duplicate      the image is the larger key of a near-duplicate pair (image_duplicates.image_key_b):
--                     "hide duplicates" keeps one image of each pair, the smaller key
--
-- Upkeep, for every way the three sources change:
--   * promotion sets them for the batch's images in one statement after images and duplicates
--     (promote_batch.sql sync_image_facets), writing only rows whose values differ; a first load COPYs
--     them with the rows (assets.common.promotion), so that statement then writes nothing;
--   * a creator's category, a post's date or a duplicate pair changed by anything else (a correction,
--     an erasure, another batch finding a pair with this batch's image) fires the statement-level
--     triggers below, which update the images concerned, set-wise, from the transition tables.
-- search_facets_drift (sql/queries/search.sql) counts rows that disagree with their sources; the
-- tests compare it after every kind of change.
ALTER TABLE images
    ADD COLUMN IF NOT EXISTS creator_category text,
    ADD COLUMN IF NOT EXISTS taken_at timestamptz,
    ADD COLUMN IF NOT EXISTS is_duplicate boolean NOT NULL DEFAULT false;

UPDATE images i SET creator_category = f.creator_category, taken_at = f.taken_at, is_duplicate = f.is_duplicate
FROM (SELECT i2.image_id, lower(c.category) AS creator_category, p.taken_at,
             EXISTS (SELECT 1 FROM image_duplicates d WHERE d.image_key_b = i2.image_key) AS is_duplicate
      FROM images i2
      LEFT JOIN creators c ON c.platform = i2.platform AND c.username = i2.username
      LEFT JOIN posts p ON p.platform = i2.platform AND p.post_id = i2.post_id) f
WHERE i.image_id = f.image_id
  AND (i.creator_category, i.taken_at, i.is_duplicate) IS DISTINCT FROM (f.creator_category, f.taken_at, f.is_duplicate);

-- The category filter's set (search.sql ids_category): a category's ok images, within the date
-- range when one is given, read from the index alone (image_id and is_duplicate are included).
-- 500,000 images, a category of 39,000 and the last year: a range of 19,500 index entries.
CREATE INDEX IF NOT EXISTS images_search_facets_idx ON images (creator_category, taken_at)
    INCLUDE (image_id, is_duplicate) WHERE status = 'ok';

-- A tag's present rows by model version and confidence, with the image and the row's source in the
-- index: the tag filter's set (search.sql ids_tag, effective_image_tags) is an index-only scan
-- instead of one heap page per row (34,000 rows, 17,000 pages), and the keyword ranking's tag field
-- (app_search.sql keyword) reads a tag's best model rows in confidence order and stops, where it
-- sorted all of them (a tag on 148,000 images: 103 ms). It leads with the old image_tags_tag_idx's
-- columns, so every query that used that one (tag counts, the review queues) can use this one.
CREATE INDEX IF NOT EXISTS image_tags_tag_rank_idx ON image_tags (tag_id, model_version, confidence DESC)
    INCLUDE (image_id, source) WHERE present;
DROP INDEX IF EXISTS image_tags_tag_idx;

-- The triggers. Statement-level with transition tables: one UPDATE per statement, however many rows
-- it changed, and nothing at all for statements that changed none of the three values (a promotion's
-- upserts rewrite only changed rows; the join on old and new keeps only changed categories and dates).
CREATE OR REPLACE FUNCTION images_facets_from_creators() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE images i SET creator_category = lower(n.category)
    FROM new_creators n JOIN old_creators o ON o.platform = n.platform AND o.username = n.username
    WHERE n.category IS DISTINCT FROM o.category
      AND i.platform = n.platform AND i.username = n.username
      AND i.creator_category IS DISTINCT FROM lower(n.category);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS images_facets_creators ON creators;
CREATE TRIGGER images_facets_creators AFTER UPDATE ON creators
    REFERENCING OLD TABLE AS old_creators NEW TABLE AS new_creators
    FOR EACH STATEMENT EXECUTE FUNCTION images_facets_from_creators();

CREATE OR REPLACE FUNCTION images_facets_from_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- every image of the post, a carousel's children too ("<platform>:<post_id>:<n>"), found through
    -- images_username_idx: images has no (platform, post_id) index
    UPDATE images i SET taken_at = n.taken_at
    FROM new_posts n JOIN old_posts o ON o.platform = n.platform AND o.post_id = n.post_id
    WHERE n.taken_at IS DISTINCT FROM o.taken_at
      AND i.platform = n.platform AND i.username = n.username AND i.post_id = n.post_id
      AND i.taken_at IS DISTINCT FROM n.taken_at;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS images_facets_posts ON posts;
CREATE TRIGGER images_facets_posts AFTER UPDATE ON posts
    REFERENCING OLD TABLE AS old_posts NEW TABLE AS new_posts
    FOR EACH STATEMENT EXECUTE FUNCTION images_facets_from_posts();

-- A pair inserted, deleted or changed: its image_key_b (old and new) is recomputed. PostgreSQL
-- allows a transition table on single-event triggers only, so one function serves three triggers.
CREATE OR REPLACE FUNCTION images_facets_from_duplicates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE images i SET is_duplicate = true
        FROM (SELECT DISTINCT image_key_b FROM new_pairs) n
        WHERE i.image_key = n.image_key_b AND NOT i.is_duplicate;
    ELSE
        UPDATE images i SET is_duplicate = EXISTS (SELECT 1 FROM image_duplicates d WHERE d.image_key_b = i.image_key)
        FROM (SELECT DISTINCT image_key_b FROM old_pairs) o
        WHERE i.image_key = o.image_key_b;
        IF TG_OP = 'UPDATE' THEN
            UPDATE images i SET is_duplicate = true
            FROM (SELECT DISTINCT image_key_b FROM new_pairs) n
            WHERE i.image_key = n.image_key_b AND NOT i.is_duplicate;
        END IF;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS images_facets_duplicates_insert ON image_duplicates;
CREATE TRIGGER images_facets_duplicates_insert AFTER INSERT ON image_duplicates
    REFERENCING NEW TABLE AS new_pairs
    FOR EACH STATEMENT EXECUTE FUNCTION images_facets_from_duplicates();
DROP TRIGGER IF EXISTS images_facets_duplicates_update ON image_duplicates;
CREATE TRIGGER images_facets_duplicates_update AFTER UPDATE ON image_duplicates
    REFERENCING OLD TABLE AS old_pairs NEW TABLE AS new_pairs
    FOR EACH STATEMENT EXECUTE FUNCTION images_facets_from_duplicates();
DROP TRIGGER IF EXISTS images_facets_duplicates_delete ON image_duplicates;
CREATE TRIGGER images_facets_duplicates_delete AFTER DELETE ON image_duplicates
    REFERENCING OLD TABLE AS old_pairs
    FOR EACH STATEMENT EXECUTE FUNCTION images_facets_from_duplicates();

ANALYZE images;
