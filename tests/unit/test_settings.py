"""One configuration path: every stage knob is declared once in Settings and reaches its config resource."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from assets.images.config import IngestConfig
from assets.tagging.config import TaggingConfig
from assets.vision.config import VisionConfig
from creatorlens.settings import Settings

CONFIGS = (IngestConfig, VisionConfig, TaggingConfig)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.__name__)
def test_every_config_field_is_a_settings_knob_with_the_same_default(config):
    knobs = config.knobs()
    assert set(knobs) == set(config.model_fields), "a config field not declared in Settings"
    for name, setting in knobs.items():
        declared = Settings.model_fields[setting].default
        default = config.model_fields[name].default
        assert default == (str(declared) if hasattr(declared, "as_posix") else declared), name
        assert config.model_fields[name].description == Settings.model_fields[setting].description


def test_the_environment_reaches_each_stage_config(monkeypatch):
    monkeypatch.setenv("CREATORLENS_TOP_N_IMAGES", "3")
    monkeypatch.setenv("CREATORLENS_VISION_MAX_SIDE", "800")
    monkeypatch.setenv("CREATORLENS_VISION_DECODE_WORKERS", "2")
    monkeypatch.setenv("CREATORLENS_HNSW_EF_SEARCH", "77")
    monkeypatch.setenv("CREATORLENS_TAG_DECODE_WORKERS", "1")
    settings = Settings()
    assert IngestConfig.from_settings(settings).top_n_images == 3
    vision = VisionConfig.from_settings(settings)
    assert (vision.max_side, vision.decode_workers) == (800, 2)
    tagging = TaggingConfig.from_settings(settings)
    assert (tagging.hnsw_ef_search, tagging.decode_workers) == (77, 1)
    assert tagging.taxonomy_path == str(settings.taxonomy_path)


def test_bounds_hold_for_settings_and_for_ui_overrides(monkeypatch):
    monkeypatch.setenv("CREATORLENS_VISION_CROP_MARGIN", "3")
    with pytest.raises(ValidationError, match="vision_crop_margin"):
        Settings()
    with pytest.raises(ValidationError):
        VisionConfig(crop_margin=3)  # what a Dagster UI override of the resource goes through
    assert VisionConfig(crop_margin=0.3).crop_margin == 0.3
