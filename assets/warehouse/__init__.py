"""Stage: warehouse. The per-batch promotion of creators, posts, images and duplicates."""
