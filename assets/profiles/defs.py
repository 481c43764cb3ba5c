"""The profiles stage's definitions, as ``orchestration/definitions.py`` collects them."""

from assets.profiles.enrichment import enriched_profiles, enriched_profiles_ran, enriched_profiles_valid
from assets.profiles.llm_profiles import (
    llm_profiles,
    llm_profiles_ran,
    llm_profiles_valid,
    profile_embeddings,
    profile_embeddings_valid,
)
from assets.profiles.promotion import promoted_profiles

ASSETS = [enriched_profiles, llm_profiles, profile_embeddings, promoted_profiles]
CHECKS = [enriched_profiles_valid, llm_profiles_valid, profile_embeddings_valid, enriched_profiles_ran,
          llm_profiles_ran]
