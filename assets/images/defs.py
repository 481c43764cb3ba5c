"""The images stage's definitions, as ``orchestration/definitions.py`` collects them."""

from assets.images.assets import creator_images, creator_images_quality
from assets.images.duplicates import image_duplicates, image_duplicates_valid

ASSETS = [creator_images, image_duplicates]
CHECKS = [creator_images_quality, image_duplicates_valid]
