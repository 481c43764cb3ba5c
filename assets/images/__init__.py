"""Stage: images. Top-N images per creator (fetch, decode, thumbnail, sha256, PDQ) and exact/near duplicates."""
