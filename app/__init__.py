"""creatorlens review and search app (FastAPI): tag API, creators, hybrid search, review UI."""
