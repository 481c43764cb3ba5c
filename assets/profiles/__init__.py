"""Stage: profiles. Enrichment from the profile API, LLM-written profiles, profile embeddings, promotion."""
