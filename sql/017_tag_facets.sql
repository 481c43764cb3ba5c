-- 017: the creator's category on image_tags, so a tag and a category filter meet in one index range.
--
-- With both filters on (bench/search.py, 500,000 images, all four filters), the exact ranking read
-- the tag's whole id set and intersected it with the category's: 148,000 index entries of a common
-- tag against 20,000 of a category in the last year, 25 ms of the semantic half's ~50 before a
-- single vector was read. image_tags.creator_category, a copy of images.creator_category (itself
-- lower(creators.category), sql/016_search_facets.sql), makes the tag's images within the category
-- one range of image_tags_tag_category_idx: 12,000 entries, 7 to 12 ms for the whole intersection.
--
-- Upkeep, for every way the copy could go stale:
--   * a tag row written without it (every INSERT but promote_tags.sql upsert_image_tags, which
--     takes it from the images row it joins anyway: reviewers' rows, the VLM's, fixtures) gets it from
--     its images row (BEFORE INSERT, only when NULL);
--   * an image whose creator_category changes (a creator's new category through sql/016's trigger,
--     promotion's sync_image_facets) passes it to its tag rows (AFTER UPDATE OF creator_category, per
--     changed row: PostgreSQL allows no transition table on a trigger with a column list, and the WHEN
--     clause keeps every other images UPDATE, a promotion's upserts included, free of it).
-- tag_facets_drift (sql/queries/search.sql) lists the rows that disagree; the tests check it.
ALTER TABLE image_tags ADD COLUMN IF NOT EXISTS creator_category text;

UPDATE image_tags t SET creator_category = i.creator_category
FROM images i
WHERE i.image_id = t.image_id AND t.creator_category IS DISTINCT FROM i.creator_category;

-- The tag filter's set within a category (search.sql ids_tag_category), from the index alone. The
-- model version follows the category (the range is one tag and one category; the version and source
-- are checked on the entries), and the image and the source are included as in image_tags_tag_rank_idx.
CREATE INDEX IF NOT EXISTS image_tags_tag_category_idx ON image_tags (tag_id, creator_category, model_version)
    INCLUDE (image_id, source) WHERE present;

CREATE OR REPLACE FUNCTION image_tags_category_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT i.creator_category INTO NEW.creator_category FROM images i WHERE i.image_id = NEW.image_id;
    RETURN NEW;
END $$;
DROP TRIGGER IF EXISTS image_tags_category_insert ON image_tags;
CREATE TRIGGER image_tags_category_insert BEFORE INSERT ON image_tags
    FOR EACH ROW WHEN (NEW.creator_category IS NULL)
    EXECUTE FUNCTION image_tags_category_on_insert();

CREATE OR REPLACE FUNCTION image_tags_category_from_images() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE image_tags t SET creator_category = NEW.creator_category
    WHERE t.image_id = NEW.image_id AND t.creator_category IS DISTINCT FROM NEW.creator_category;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS image_tags_category_images ON images;
CREATE TRIGGER image_tags_category_images AFTER UPDATE OF creator_category ON images
    FOR EACH ROW WHEN (OLD.creator_category IS DISTINCT FROM NEW.creator_category)
    EXECUTE FUNCTION image_tags_category_from_images();
