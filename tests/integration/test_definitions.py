"""Snapshot of the asset graph (keys, checks, jobs, partitions, kinds) and `dagster definitions validate`."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from assets.common.metadata import BATCH_GROUPS
from assets.common.partitions import CREATOR_BATCHES
from creatorlens.settings import REPO_ROOT, Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import prepare_dagster_home

EXPECTED_ASSETS = {
    "raw/profiles": set(),
    "raw/posts": set(),
    "images/creator_images": {"raw/posts"},
    "images/duplicates": {"images/creator_images"},
    "warehouse/promoted_batch": {"raw/profiles", "raw/posts", "images/creator_images", "images/duplicates"},
    # profiles
    "profiles/enriched": {"raw/profiles"},
    "profiles/llm": {"profiles/enriched", "raw/posts"},
    "profiles/embeddings": {"profiles/enriched", "profiles/llm"},
    "warehouse/promoted_profiles": {"profiles/enriched", "profiles/llm", "profiles/embeddings",
                                    "warehouse/promoted_batch"},
    # vision
    "vision/persons": {"images/creator_images"},
    "vision/keypoints": {"vision/persons"},
    "vision/ocr": {"images/creator_images"},
    "vision/faces": {"images/creator_images"},
    "vision/image_features": {"images/creator_images", "vision/persons", "vision/keypoints", "vision/faces",
                              "vision/ocr"},
    "warehouse/vision": {"vision/image_features", "vision/persons", "vision/keypoints", "vision/ocr",
                         "vision/faces", "warehouse/promoted_batch"},
}
GPU_POOL = {"vision/persons", "vision/keypoints", "vision/ocr", "vision/faces", "images/embeddings", "images/tags"}
# Tagging. Unpartitioned: the taxonomy and the calibrated thresholds.
EXPECTED_ASSETS |= {
    "images/embeddings": {"images/creator_images"},
    "images/tags": {"images/embeddings", "tagging/taxonomy", "tagging/thresholds"},
    "creators/tags": {"images/tags", "images/embeddings"},
    "warehouse/promoted_tags": {"images/embeddings", "images/tags", "creators/tags", "warehouse/promoted_batch"},
    "tagging/escalations": {"warehouse/promoted_tags"},
}
UNPARTITIONED = {"tagging/taxonomy": set(), "tagging/thresholds": {"tagging/taxonomy"}}
# Object tags (issue 16): detector per batch, its promotion, and the unpartitioned re-map of categories.
EXPECTED_ASSETS |= {
    "vision/objects": {"images/creator_images"},
    "warehouse/object_tags": {"vision/objects", "warehouse/promoted_batch"},
}
GPU_POOL |= {"vision/objects"}
UNPARTITIONED |= {"warehouse/object_categories": set()}
EXPECTED_CHECKS = {
    ("raw/profiles", "raw_profiles_valid"),
    ("raw/posts", "raw_posts_valid"),
    ("images/creator_images", "creator_images_quality"),
    ("images/duplicates", "image_duplicates_valid"),
    # profiles
    ("profiles/enriched", "enriched_profiles_valid"),
    ("profiles/llm", "llm_profiles_valid"),
    ("profiles/embeddings", "profile_embeddings_valid"),
    ("vision/persons", "persons_valid"),
    ("vision/keypoints", "keypoints_valid"),
    ("vision/ocr", "ocr_valid"),
    ("vision/faces", "faces_valid"),
    ("vision/image_features", "image_features_valid"),
    ("images/embeddings", "image_embeddings_valid"),
    ("images/tags", "image_tags_valid"),
    ("creators/tags", "creator_tags_valid"),
    ("vision/objects", "object_tags_valid"),
}
# WARN checks: a stage that cannot run for want of weights or an endpoint says so, never blocking.
EXPECTED_CHECKS |= {
    ("images/embeddings", "image_embeddings_ran"),
    ("vision/faces", "faces_embedded"),
    ("profiles/enriched", "enriched_profiles_ran"),
    ("profiles/llm", "llm_profiles_ran"),
    ("tagging/escalations", "tag_escalations_ran"),
    ("vision/objects", "object_tags_ran"),
}


def test_asset_graph_snapshot(tmp_path):
    defs = build_definitions(Settings(state_dir=tmp_path))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string(): k for k in graph.get_all_asset_keys()}
    assert set(keys) == set(EXPECTED_ASSETS) | set(UNPARTITIONED)
    for name, parents in EXPECTED_ASSETS.items():
        node = graph.get(keys[name])
        assert {p.to_user_string() for p in node.parent_keys} == parents, name
        assert isinstance(node.partitions_def, dg.DynamicPartitionsDefinition)
        assert node.partitions_def.name == CREATOR_BATCHES
    for name, parents in UNPARTITIONED.items():
        node = graph.get(keys[name])
        assert {p.to_user_string() for p in node.parent_keys} == parents, name
        assert node.partitions_def is None and node.group_name not in BATCH_GROUPS, name
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert checks == EXPECTED_CHECKS
    for spec in defs.resolve_all_asset_specs():
        assert spec.group_name in {"ingest", "warehouse", "profiles", "vision", "tagging", "taxonomy",
                                   "object_categories"} and spec.kinds, spec.key
    pools = {k.to_user_string() for k in graph.get_all_asset_keys()
             if graph.get(k).pools and "gpu" in graph.get(k).pools}
    assert pools == GPU_POOL


def test_every_check_is_blocking_and_partitioned(tmp_path):
    defs = build_definitions(Settings(state_dir=tmp_path))
    specs = [s for checks in defs.asset_checks or [] for s in checks.check_specs]
    assert len(specs) == len(EXPECTED_CHECKS)
    assert all(s.blocking for s in specs)
    assert all(s.partitions_def is not None and s.partitions_def.name == CREATOR_BATCHES for s in specs)


def test_ingest_job_targets_the_whole_batch_pipeline(tmp_path):
    job = build_definitions(Settings(state_dir=tmp_path)).resolve_job_def(INGEST_JOB)
    assert job.partitions_def is not None and job.partitions_def.name == CREATOR_BATCHES
    steps = {n.name for n in job.graph.node_defs}
    assert {"raw_sources", "images__creator_images", "images__duplicates", "warehouse__promoted_batch"} <= steps
    assert {"vision__persons", "vision__keypoints", "vision__ocr", "vision__faces", "vision__image_features",
            "warehouse__vision"} <= steps
    assert {"images__embeddings", "images__tags", "creators__tags", "warehouse__promoted_tags"} <= steps
    assert not {"tagging__taxonomy", "tagging__thresholds"} & steps  # unpartitioned: their own job


def test_dagster_definitions_validate_passes(tmp_path):
    home = prepare_dagster_home(Settings(state_dir=tmp_path / "state"))
    env = {**os.environ, "DAGSTER_HOME": str(home), "CREATORLENS_STATE_DIR": str(tmp_path / "state")}
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    done = subprocess.run([dagster, "definitions", "validate", "-w", "workspace.yaml"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Validation successful" in done.stdout + done.stderr
