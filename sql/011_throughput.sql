-- 011: throughput at 500,000 images.
--
-- Embeddings inline. A halfvec(1152) (SigLIP SO400M) is 2,308 bytes, over PostgreSQL's 2,032-byte
-- TOAST threshold, so with the type's default EXTENDED storage every row's vector went to the TOAST
-- table: an exact ranking (filters that leave few images, the recall baselines) fetched each vector
-- through the TOAST index, one extra index probe and heap page per row. STORAGE MAIN keeps the value
-- in the row (random vectors do not compress, so they stay inline uncompressed) and toast_tuple_target
-- = 8160 (the maximum) stops the toaster from even trying below a full page: every halfvec up to
-- 4,000 dims (8,008 bytes, the HNSW limit the embedding_models CHECK enforces) fits a page with the
-- row's other columns. Only rows written after this migration are stored this way; a warehouse that
-- already holds embeddings rewrites them with VACUUM FULL image_embeddings (or re-promotes).
ALTER TABLE image_embeddings ALTER COLUMN embedding SET STORAGE MAIN;
ALTER TABLE image_embeddings SET (toast_tuple_target = 8160);

-- Promotion throughput: every index on images is upkeep for each promoted row (about half the
-- upsert's time in bench/promotion.py). The sha256 hash index serves no query: exact duplicates are
-- found in Python from the batch's and the warehouse's hashes (duplicates.sql reads every ok row's
-- hash: a sequential scan), and erasure.sql's shared_sha256 compares sha256::text, which this index
-- on char(64) cannot serve. It goes. The indexes that stay, each with the query that needs it:
--   images_pkey (image_id)           image_embeddings / image_tags / image_objects join and cascade on it
--                                    (search.sql nearest_images: JOIN images i ON i.image_id = e.image_id)
--   images_image_key_key (image_key) the natural key: promote_batch.sql upsert_images ON CONFLICT (image_key);
--                                    the vision tables' foreign keys (image_vision, persons, ocr_texts, faces)
--   images_batch_key_idx (batch_key) promote_batch.sql delete_stale_images (WHERE i.batch_key = <batch>),
--                                    promote_tags.sql / promote_vision.sql / objects.sql by-batch reads
--   images_username_idx (platform, username)
--                                    app.sql creator pages (WHERE i.platform = c.platform AND i.username = ...),
--                                    search.sql filter_category (a category's creators' images), erasure.sql
--   images_failed_idx (error_reason) WHERE status = 'failed'
--                                    app.sql failure report (FROM images WHERE status = 'failed'); a partial
--                                    index: ok rows, nearly all of them, cost it nothing
DROP INDEX IF EXISTS images_sha256_idx;
