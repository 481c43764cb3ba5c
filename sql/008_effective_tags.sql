-- 008: the tags an image carries, defined once: a reviewer's decision beats the model.
--
-- For one model version, an image carries a tag when a reviewer said it does (a 'user' row,
-- present), or when that version's model assigned it (an 'ai' row) and no reviewer decided the
-- pair; a reviewer's "no" (a 'user' row, present = false) removes it whatever the model said.
-- 'user' rows are unversioned (model_version ''), so a decision holds for every model version;
-- 'vlm' rows (escalation answers) never count. Search filters, the keyword ranking, tag counts, an
-- image's tags and the review module all read this function; none spells the rule out again.
--
-- One row per (image, tag) that a reviewer decided or the model version tagged. present is false
-- only on a reviewer's "no"; readers asking what an image carries keep `present` rows. On a
-- reviewer's row, source is 'user', model_version '' and reviewer the person; confidence and
-- threshold are always the model version's own for the pair (NULL where it did not tag it).
--
-- A single SELECT over one table in LANGUAGE sql, STABLE and not STRICT: the planner inlines it
-- into the calling statement and flattens it into a scan of image_tags with this filter, so a
-- caller's conditions and joins on image_id, tag_id and present reach image_tags' indexes (a join
-- to the tags a keyword matches becomes an index scan per tag). The veto of a model's row sits
-- inside the OR, so it stays a per-row index probe of the reviewer rows, made for that version's
-- 'ai' rows only. (A UNION ALL of the two kinds of rows reads more naturally, but the planner can
-- neither flatten it nor push a join into it: the keyword ranking then hashed every tag row of the
-- version, 2 -> 11 ms on bench/search.py's 20,000 images.) The model's score beside a reviewer's
-- row is a scalar subquery the planner runs only where a caller reads it.
CREATE OR REPLACE FUNCTION effective_image_tags(for_model_version text)
RETURNS TABLE (image_id bigint, tag_id integer, present boolean, source text, model_version text,
               confidence real, threshold real, reviewer text)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT t.image_id, t.tag_id, t.present, t.source, t.model_version,
           CASE WHEN t.source = 'user'
                THEN (SELECT a.confidence FROM image_tags a
                      WHERE a.image_id = t.image_id AND a.tag_id = t.tag_id
                        AND a.source = 'ai' AND a.model_version = for_model_version)
                ELSE t.confidence END,
           CASE WHEN t.source = 'user'
                THEN (SELECT a.threshold FROM image_tags a
                      WHERE a.image_id = t.image_id AND a.tag_id = t.tag_id
                        AND a.source = 'ai' AND a.model_version = for_model_version)
                ELSE t.threshold END,
           CASE WHEN t.source = 'user' THEN t.reviewer END
    FROM image_tags t
    WHERE t.source = 'user'  -- a reviewer's decision (at most one per pair: image_tags' key)
       OR (t.source = 'ai' AND t.model_version = for_model_version  -- the version's tag on a pair
           AND NOT EXISTS (SELECT 1 FROM image_tags u                -- that no reviewer decided
                           WHERE u.image_id = t.image_id AND u.tag_id = t.tag_id AND u.source = 'user'))
$$;

-- The reviewer rows the veto probes and a tag's reviewer rows: few next to the model's rows, so a
-- small index (the primary key leads with image_id; image_tags_tag_idx holds present rows only,
-- and a reviewer's "no" is not present).
CREATE INDEX IF NOT EXISTS image_tags_user_idx ON image_tags (tag_id, image_id) WHERE source = 'user';
