-- 013: source warnings, and the transform of near duplicates found through a rotated or flipped hash.

-- What a source said with a caveat (a CSV decoded as Windows-1252, a follower count that could
-- not be parsed and was kept as unknown, a known field with no column, a post whose owner differs
-- from the file's user). The record is kept; the note is kept here, like source_rejects.
CREATE TABLE IF NOT EXISTS source_warnings (
    source        text        NOT NULL,
    record        text        NOT NULL,
    message       text        NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, record, message)
);

-- Near duplicates found through a rotated or flipped hash (assets/images/pdq.py DIHEDRAL_TRANSFORMS):
-- which transform of the newer image matched. 'none' for an untransformed match and exact copies.
ALTER TABLE image_duplicates ADD COLUMN IF NOT EXISTS transform text NOT NULL DEFAULT 'none'
    CHECK (transform IN ('none', 'rotate_90', 'rotate_180', 'rotate_270', 'flip_vertical', 'flip_horizontal',
                         'transpose', 'transverse'));
