"""The warehouse stage's definitions, as ``orchestration/definitions.py`` collects them."""

from assets.warehouse.assets import promoted_batch

ASSETS = [promoted_batch]
CHECKS: list = []
