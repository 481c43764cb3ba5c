-- 014: what the sources say about a creator and a video post beyond the first capabilities' fields
-- (issue 13): following and post counts, external URL, privacy; a video's URL, duration and
-- view/play counts (its cover image is the post's image).
ALTER TABLE creators
    ADD COLUMN IF NOT EXISTS following    bigint CHECK (following IS NULL OR following >= 0),
    ADD COLUMN IF NOT EXISTS post_count   bigint CHECK (post_count IS NULL OR post_count >= 0),
    ADD COLUMN IF NOT EXISTS external_url text,
    ADD COLUMN IF NOT EXISTS is_private   boolean;
ALTER TABLE posts
    ADD COLUMN IF NOT EXISTS video_url      text,
    ADD COLUMN IF NOT EXISTS video_duration double precision CHECK (video_duration IS NULL OR video_duration >= 0),
    ADD COLUMN IF NOT EXISTS view_count     bigint CHECK (view_count IS NULL OR view_count >= 0),
    ADD COLUMN IF NOT EXISTS play_count     bigint CHECK (play_count IS NULL OR play_count >= 0);
