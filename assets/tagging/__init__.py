"""Stage: tagging. Taxonomy, embeddings, zero-shot tags, creator tags, calibration, review and search."""
