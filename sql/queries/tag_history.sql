-- Per-creator tag history (assets/tagging/history.py). The write statements run inside the tagging
-- promotion's transaction, after its staging tables (stage_creator_tags, stage_creator_analysis) are filled.

-- name: upsert_history
-- This analysis (model version + this month) of every analysed creator: one row per tag it has, and a
-- share-0 row for each tag an earlier analysis recorded that it no longer has. Unchanged rows are not touched.
WITH analysed AS (
    SELECT c.creator_id, a.platform, a.username, a.images_analysed
    FROM stage_creator_analysis a JOIN creators c ON c.platform = a.platform AND c.username = a.username
), current_tags AS (
    SELECT an.creator_id, g.tag_id, s.share, s.mean_confidence, an.images_analysed
    FROM analysed an
    JOIN stage_creator_tags s ON s.platform = an.platform AND s.username = an.username
    JOIN tags g ON g.name = s.tag
), dropped AS (
    SELECT DISTINCT h.creator_id, h.tag_id, 0::real AS share, NULL::real AS mean_confidence, an.images_analysed
    FROM creator_tag_history h JOIN analysed an USING (creator_id)
    WHERE h.share > 0
      AND NOT EXISTS (SELECT 1 FROM current_tags t WHERE t.creator_id = h.creator_id AND t.tag_id = h.tag_id)
)
INSERT INTO creator_tag_history AS h (creator_id, tag_id, model_version, month, share, mean_confidence,
                                      images_analysed, batch_key, run_id)
SELECT creator_id, tag_id, %(model_version)s, date_trunc('month', coalesce(%(analysed_at)s::timestamptz, now()))::date, share,
       mean_confidence, images_analysed, %(batch_key)s, %(run_id)s
FROM (SELECT * FROM current_tags UNION ALL SELECT * FROM dropped) rows
ON CONFLICT (creator_id, tag_id, model_version, month) DO UPDATE SET
    share = EXCLUDED.share, mean_confidence = EXCLUDED.mean_confidence, images_analysed = EXCLUDED.images_analysed,
    batch_key = EXCLUDED.batch_key, run_id = EXCLUDED.run_id, recorded_at = now()
WHERE (h.share, h.mean_confidence, h.images_analysed)
      IS DISTINCT FROM (EXCLUDED.share, EXCLUDED.mean_confidence, EXCLUDED.images_analysed);

-- name: record_changes
-- Rows this run wrote, against the creator's previous analysis (the latest other version/month):
-- a share that moved more than the threshold is listed for review (a tag new since then counts from 0).
WITH cur AS (
    SELECT creator_id, tag_id, share, month FROM creator_tag_history
    WHERE model_version = %(model_version)s AND month = date_trunc('month', coalesce(%(analysed_at)s::timestamptz, now()))::date
      AND run_id = %(run_id)s AND batch_key = %(batch_key)s
), prev_key AS (
    SELECT DISTINCT ON (h.creator_id) h.creator_id, h.model_version, h.month
    FROM creator_tag_history h
    WHERE h.creator_id IN (SELECT creator_id FROM cur)
      AND (h.model_version, h.month) <> (%(model_version)s, date_trunc('month', coalesce(%(analysed_at)s::timestamptz, now()))::date)
    ORDER BY h.creator_id, h.recorded_at DESC, h.month DESC
)
INSERT INTO tag_history_changes AS x (creator_id, tag_id, from_version, from_month, to_version, to_month,
                                      share_before, share_after)
SELECT c.creator_id, c.tag_id, k.model_version, k.month, %(model_version)s, c.month, coalesce(p.share, 0), c.share
FROM cur c
JOIN prev_key k USING (creator_id)
LEFT JOIN creator_tag_history p ON p.creator_id = c.creator_id AND p.tag_id = c.tag_id
                               AND p.model_version = k.model_version AND p.month = k.month
WHERE abs(c.share - coalesce(p.share, 0)) > %(threshold)s
ON CONFLICT (creator_id, tag_id, from_version, from_month, to_version, to_month) DO UPDATE SET
    share_before = EXCLUDED.share_before, share_after = EXCLUDED.share_after, status = 'open', created_at = now()
WHERE (x.share_before, x.share_after) IS DISTINCT FROM (EXCLUDED.share_before, EXCLUDED.share_after);

-- name: history_for
-- A creator's series: one row per analysis and tag, oldest analysis first.
SELECT g.name, g.category, h.model_version, h.month, h.share, h.mean_confidence, h.images_analysed, h.recorded_at
FROM creator_tag_history h
JOIN creators c ON c.creator_id = h.creator_id
JOIN tags g ON g.tag_id = h.tag_id
WHERE c.platform = %(platform)s AND c.username = %(username)s
ORDER BY h.month, h.model_version, g.name;

-- name: changes_for
SELECT x.change_id, g.name, x.from_version, x.from_month, x.to_version, x.to_month, x.share_before, x.share_after,
       x.status, x.created_at
FROM tag_history_changes x
JOIN creators c ON c.creator_id = x.creator_id
JOIN tags g ON g.tag_id = x.tag_id
WHERE c.platform = %(platform)s AND c.username = %(username)s
ORDER BY x.created_at DESC, x.change_id DESC;
