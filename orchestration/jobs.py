"""Jobs: the whole per-batch pipeline, from sources to the warehouse."""

from __future__ import annotations

import dagster as dg

from assets.common.metadata import BATCH_GROUPS, K8S_NODE_POOL_LABEL
from assets.tagging.assets import GROUP_TAXONOMY
from assets.vision.objects import GROUP_OBJECT_MAP

INGEST_JOB = "ingest_batch"

ingest_batch_job = dg.define_asset_job(
    name=INGEST_JOB,
    selection=dg.AssetSelection.groups(*BATCH_GROUPS),
    description=(
        "Every stage of one creator batch: sources → images and duplicates → vision, embeddings and tags, "
        "profiles → blocking checks → one-transaction promotions into the warehouse."
    ),
    tags={"creatorlens/area": "ingest"},
)

CALIBRATE_JOB = "calibrate_tags"

calibrate_tags_job = dg.define_asset_job(
    name=CALIBRATE_JOB,
    selection=dg.AssetSelection.groups(GROUP_TAXONOMY),
    description="Publish the tag taxonomy and calibrate per-tag thresholds from labels and reviewer feedback.",
    tags={"creatorlens/area": "tagging"},
)

REMAP_OBJECTS_JOB = "remap_object_categories"

remap_object_categories_job = dg.define_asset_job(
    name=REMAP_OBJECTS_JOB,
    selection=dg.AssetSelection.groups(GROUP_OBJECT_MAP),  # warehouse/object_categories
    description="Re-apply tag_category_map to every stored object tag after an edit (no image is read); "
                "before/after counts per category in the metadata.",
    tags={"creatorlens/area": "tagging"},
)


def executor_for(kind: str, max_concurrent: int = 2) -> dg.ExecutorDefinition:
    """The executor of every job (``CREATORLENS_RUN_EXECUTOR``).

    ``in_process`` (default): the run worker executes its steps one after another, in its own
    process, exactly as ``creatorlens run`` does, so a run launched from the UI or the daemon
    costs one process start and one import of the code location, not one per step (~33 of them
    for a batch). Parallelism comes from runs: one run per batch, up to ``max_concurrent_runs``
    at once, and the ``gpu`` pool still serialises GPU steps across all runs (pools are claimed
    by the in-process executor too).

    ``multiprocess``: a process per step, forked from a forkserver that has already imported the
    code location (``preload_modules``), for deployments where steps of one run should overlap.

    ``k8s``: dagster-k8s's ``k8s_job_executor`` (the ``k8s`` extra), a Kubernetes Job per step
    (deploy/k8s): CPU steps on the CPU nodes (:data:`K8S_STEP_CONFIG`), GPU-pool steps on the GPU
    nodes with one ``nvidia.com/gpu`` each (their ``dagster-k8s/config`` tag, assets/common/metadata.py).
    """
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "k8s":
        from dagster_k8s import k8s_job_executor  # optional: pip install -e ".[k8s]"

        return k8s_job_executor.configured(k8s_executor_config(max_concurrent), name="k8s")
    return dg.multiprocess_executor.configured({
        "max_concurrent": max_concurrent,
        "start_method": {"forkserver": {"preload_modules": ["orchestration.definitions"]}},
    })



# Every step pod of the k8s executor: on a CPU node, with requests the scheduler can pack. A GPU
# step's tag (assets/common/metadata.GPU_K8S_CONFIG) deep-merges over it: same node-selector key
# (so it moves to the GPU nodes), plus the GPU limit and the GPU taint's toleration.
K8S_STEP_CONFIG = {
    "container_config": {"resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "8Gi"}}},
    "pod_spec_config": {"node_selector": {K8S_NODE_POOL_LABEL: "cpu"}},
}


def k8s_executor_config(max_concurrent: int = 2) -> dict:
    """The ``k8s_job_executor`` config (validated by tests/unit/test_k8s_profile.py against its own schema)."""
    return {"max_concurrent": max_concurrent, "step_k8s_config": K8S_STEP_CONFIG,
            # Step pods go with their run pod (garbage collection when the run pod is deleted).
            "enable_owner_references": True}
