"""Every asset key of the graph, in one place: the declared outputs through which stages connect.

A stage names its upstream by key, never by importing another stage's module; the keys are the
users' lineage and history (``tests/snapshots/definitions.json``), so they never change.
"""

from __future__ import annotations

import dagster as dg

# sources
RAW_PROFILES = dg.AssetKey(["raw", "profiles"])
RAW_POSTS = dg.AssetKey(["raw", "posts"])
# images
CREATOR_IMAGES = dg.AssetKey(["images", "creator_images"])
IMAGE_DUPLICATES = dg.AssetKey(["images", "duplicates"])
# vision
PERSONS = dg.AssetKey(["vision", "persons"])
KEYPOINTS = dg.AssetKey(["vision", "keypoints"])
OCR = dg.AssetKey(["vision", "ocr"])
FACES = dg.AssetKey(["vision", "faces"])
IMAGE_FEATURES = dg.AssetKey(["vision", "image_features"])
VISION_PROMOTED = dg.AssetKey(["warehouse", "vision"])
OBJECT_TAGS = dg.AssetKey(["vision", "objects"])
OBJECT_TAGS_PROMOTED = dg.AssetKey(["warehouse", "object_tags"])
OBJECT_CATEGORIES = dg.AssetKey(["warehouse", "object_categories"])
# tagging
TAG_TAXONOMY = dg.AssetKey(["tagging", "taxonomy"])
TAG_THRESHOLDS = dg.AssetKey(["tagging", "thresholds"])
IMAGE_EMBEDDINGS = dg.AssetKey(["images", "embeddings"])
IMAGE_TAGS = dg.AssetKey(["images", "tags"])
CREATOR_TAGS = dg.AssetKey(["creators", "tags"])
PROMOTED_TAGS = dg.AssetKey(["warehouse", "promoted_tags"])
TAG_ESCALATIONS = dg.AssetKey(["tagging", "escalations"])
# profiles
ENRICHED_PROFILES = dg.AssetKey(["profiles", "enriched"])
LLM_PROFILES = dg.AssetKey(["profiles", "llm"])
PROFILE_EMBEDDINGS = dg.AssetKey(["profiles", "embeddings"])
PROMOTED_PROFILES = dg.AssetKey(["warehouse", "promoted_profiles"])
# warehouse
PROMOTED_BATCH = dg.AssetKey(["warehouse", "promoted_batch"])
