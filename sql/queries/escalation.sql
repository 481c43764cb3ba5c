-- VLM escalation of pending review items (assets/tagging/escalation.py) and the review queue's
-- stored order (assets/tagging/queue_order.py).

-- name: pending_for_batch
-- The batch's pending items, nearest their threshold first; reviewed: a person already decided the pair.
SELECT q.review_id, q.image_id, i.image_key, i.sha256, i.blob_key, g.name, g.category, g.exclusive, q.confidence,
       q.threshold, q.model_version,
       EXISTS (SELECT 1 FROM image_tags u WHERE u.image_id = q.image_id AND u.tag_id = q.tag_id
                                           AND u.source = 'user') AS reviewed
FROM tag_review_queue q
JOIN images i ON i.image_id = q.image_id
JOIN tags g ON g.tag_id = q.tag_id
WHERE q.batch_key = %(batch_key)s AND q.status = 'pending'
ORDER BY abs(q.confidence - q.threshold), q.review_id;

-- name: cached_answer
SELECT answer_id, answer FROM vlm_answers
WHERE sha256 = %(sha256)s AND prompt_version = %(prompt_version)s AND model = %(model)s
  AND category = %(category)s AND choices_hash = %(choices_hash)s AND status = 'ok';

-- name: upsert_answer
-- An 'ok' answer is the cache entry of its question; a failed attempt (malformed, error) is a row of its own.
INSERT INTO vlm_answers (sha256, prompt_version, model, category, choices_hash, status, answer, raw_answer, error,
                         latency_ms, requests, endpoint)
VALUES (%(sha256)s, %(prompt_version)s, %(model)s, %(category)s, %(choices_hash)s, %(status)s, %(answer)s,
        %(raw_answer)s, %(error)s, %(latency_ms)s, %(requests)s, %(endpoint)s)
ON CONFLICT (sha256, prompt_version, model, category, choices_hash) WHERE status = 'ok' DO UPDATE SET
    status = EXCLUDED.status, answer = EXCLUDED.answer, raw_answer = EXCLUDED.raw_answer, error = EXCLUDED.error,
    latency_ms = EXCLUDED.latency_ms, requests = EXCLUDED.requests, endpoint = EXCLUDED.endpoint, updated_at = now()
RETURNING answer_id;

-- name: upsert_outcome
INSERT INTO escalation_outcomes (review_id, status, answer_id, model, prompt_version, present, detail, batch_key,
                                 run_id)
VALUES (%(review_id)s, %(status)s, %(answer_id)s, %(model)s, %(prompt_version)s, %(present)s, %(detail)s,
        %(batch_key)s, %(run_id)s)
ON CONFLICT (review_id) DO UPDATE SET
    status = EXCLUDED.status, answer_id = EXCLUDED.answer_id, model = EXCLUDED.model,
    prompt_version = EXCLUDED.prompt_version, present = EXCLUDED.present, detail = EXCLUDED.detail,
    batch_key = EXCLUDED.batch_key, run_id = EXCLUDED.run_id, updated_at = now();

-- name: suggestions
-- The VLM's latest word on each of these queue items (for the review page).
SELECT o.review_id, o.status, o.model, o.prompt_version, o.present, o.detail, a.raw_answer, a.latency_ms
FROM escalation_outcomes o LEFT JOIN vlm_answers a ON a.answer_id = o.answer_id
WHERE o.review_id = ANY(%(review_ids)s);

-- name: queue_candidates
-- Pending items nearest their threshold first (the pool the expected-value order picks from).
SELECT q.review_id, i.image_key, i.username, i.thumb_key, g.name, g.category, g.exclusive, q.reason,
       q.confidence, q.threshold, q.model_version, q.created_at, q.image_id
FROM tag_review_queue q
JOIN images i ON i.image_id = q.image_id
JOIN tags g ON g.tag_id = q.tag_id
WHERE q.status = 'pending' AND (%(model_version)s::text IS NULL OR q.model_version = %(model_version)s)
ORDER BY abs(q.confidence - q.threshold) / q.threshold, q.review_id
LIMIT %(pool)s;

-- name: labels_per_tag
-- Labelled images per tag (the latest decision per image and tag counts once).
SELECT g.name, count(DISTINCT f.image_id) FROM tag_feedback f JOIN tags g ON g.tag_id = f.tag_id GROUP BY g.name;

-- name: labelled_embeddings
-- Embeddings of images a reviewer labelled, for one model version (newest labels first).
SELECT e.image_id, e.embedding FROM image_embeddings e
WHERE e.model_version = %(model_version)s
  AND e.image_id IN (SELECT f.image_id FROM tag_feedback f ORDER BY f.created_at DESC LIMIT %(limit)s);

-- name: image_embeddings_of
SELECT e.image_id, e.embedding FROM image_embeddings e
WHERE e.model_version = %(model_version)s AND e.image_id = ANY(%(image_ids)s);

-- name: clear_priorities
DELETE FROM review_priorities;

-- name: store_priority
INSERT INTO review_priorities (review_id, rank, score, cluster, reason)
VALUES (%(review_id)s, %(rank)s, %(score)s, %(cluster)s, %(reason)s)
ON CONFLICT (review_id) DO UPDATE SET rank = EXCLUDED.rank, score = EXCLUDED.score, cluster = EXCLUDED.cluster,
    reason = EXCLUDED.reason, computed_at = now();
