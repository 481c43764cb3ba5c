"""The sources stage's definitions, as ``orchestration/definitions.py`` collects them."""

from assets.sources.assets import raw_posts_valid, raw_profiles_valid, raw_sources

ASSETS = [raw_sources]
CHECKS = [raw_profiles_valid, raw_posts_valid]
