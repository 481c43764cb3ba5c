"""The tagging stage's definitions, as ``orchestration/definitions.py`` collects them."""

from assets.tagging.assets import (
    creator_tags,
    creator_tags_valid,
    image_embeddings,
    image_embeddings_ran,
    image_embeddings_valid,
    image_tags,
    image_tags_valid,
    promoted_tags,
    tag_taxonomy,
    tag_thresholds,
)
from assets.tagging.escalation import tag_escalations, tag_escalations_ran

ASSETS = [tag_taxonomy, tag_thresholds, image_embeddings, image_tags, creator_tags, promoted_tags,
          tag_escalations]
CHECKS = [image_embeddings_valid, image_tags_valid, creator_tags_valid, image_embeddings_ran,
          tag_escalations_ran]
