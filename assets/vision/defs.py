"""The vision stage's definitions, as ``orchestration/definitions.py`` collects them."""

from assets.vision.faces import faces, faces_ran, faces_valid
from assets.vision.features import image_features_asset, image_features_valid
from assets.vision.objects import (
    object_categories,
    object_tags,
    object_tags_promoted,
    object_tags_ran,
    object_tags_valid,
)
from assets.vision.ocr import ocr, ocr_valid
from assets.vision.persons import keypoints, keypoints_valid, persons, persons_valid
from assets.vision.promotion import vision_promoted

ASSETS = [persons, keypoints, ocr, faces, image_features_asset, vision_promoted, object_tags, object_tags_promoted,
          object_categories]
CHECKS = [persons_valid, keypoints_valid, ocr_valid, faces_valid, image_features_valid, faces_ran, object_tags_valid,
          object_tags_ran]
