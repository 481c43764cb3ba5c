"""Object tags: ``vision/objects`` (the detector on every ok image), ``warehouse/object_tags`` (its
rows into ``detected_objects``, each with its label's category from ``tag_category_map``) and
``warehouse/object_categories`` (the job ``remap_object_categories``: after reviewers edit the map,
every stored object takes its label's category again; no image is read, no model runs).

The detector is the model registry's ``object_detector`` family (YOLOv8s, COCO classes: see
``gpu_ops/objects.py`` for why). Without its weights the stage records why and writes nothing:
``creatorlens models pull object_detector`` fetches them.
"""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

import creatorlens
from assets.common.keys import CREATOR_IMAGES, OBJECT_CATEGORIES, OBJECT_TAGS, OBJECT_TAGS_PROMOTED, PROMOTED_BATCH
from assets.common.metadata import (
    GROUP_WAREHOUSE,
    Skip,
    batch_asset,
    batch_check,
    check_result,
    stage_ran_check,
    stopwatch,
)
from assets.common.quality import validate_frame
from assets.vision.common import (
    BASE_COLUMNS,
    all_true,
    box_inside,
    coverage_expectations,
    in_unit_range,
    ok_images,
    per_image,
    scale_to_original,
    scan_images,
    stage_asset,
    stage_output,
    status_row,
)
from assets.vision.config import VisionConfig
from creatorlens.queries import load_queries
from gpu_ops.objects import DetectedObject
from gpu_ops.registry import WeightsMissing, pull_command
from resources.blobstore import BlobStore
from resources.models import ModelRegistry
from resources.warehouse import Warehouse

QUERIES = "objects.sql"
GROUP_OBJECT_MAP = "object_categories"
OBJECT_COLUMNS = [*BASE_COLUMNS, "object_idx", "label", "confidence", "x1", "y1", "x2", "y2",
                  "image_width", "image_height", "model_version"]


def object_rows(image: dict[str, Any], array: np.ndarray, found: list[DetectedObject], version: str) -> list[dict]:
    if not found:
        return [status_row(image, "no_object", "none_detected", model_version=version)]
    sx, sy = scale_to_original(image, array)
    w, h = image.get("width") or array.shape[1], image.get("height") or array.shape[0]
    return [status_row(image, "ok", object_idx=i, label=o.label, confidence=o.score,
                       x1=min(o.x1 * sx, w), y1=min(o.y1 * sy, h), x2=min(o.x2 * sx, w), y2=min(o.y2 * sy, h),
                       image_width=w, image_height=h, model_version=version)
            for i, o in enumerate(found)]


@stage_asset(OBJECT_TAGS, ("creator_images", CREATOR_IMAGES), kinds={"python", "pytorch", "pandas"},
             description="Objects on every ok image (YOLOv8, COCO labels) with confidence and box; their categories "
                         "come from tag_category_map at promotion.")
def object_tags(
    context: dg.AssetExecutionContext, creator_images: pd.DataFrame, blobs: BlobStore, models: ModelRegistry,
    vision: VisionConfig,
) -> dg.Output[pd.DataFrame]:
    try:
        detector = models.load("object_detector", conf=vision.object_min_confidence)
    except WeightsMissing as missing:
        context.log.warning(f"object tags skipped: {missing}")
        empty = pd.DataFrame(columns=OBJECT_COLUMNS)
        return dg.Output(empty, metadata={"skipped": str(missing), "objects": 0, "images": 0})
    process = per_image(detector, lambda image, array, found: object_rows(image, array, found, detector.version))
    scan = scan_images(context, ok_images(creator_images), blobs, vision, models.batch_size, process, stage="objects")
    ok = [r for r in scan.rows if r["status"] == "ok"]
    labels = pd.Series([r["label"] for r in ok], dtype=object).value_counts().head(20).to_dict()
    return stage_output(scan, OBJECT_COLUMNS, ints=("object_idx", "image_width", "image_height"), unit="objects",
                        versions={"object_detector": detector.version},
                        extra={"device": str(detector.device), "batch_size": models.batch_size,
                               "top_labels": dg.MetadataValue.json({k: int(v) for k, v in labels.items()}),
                               "skipped": ""})


@batch_check(asset=OBJECT_TAGS, additional_ins={"creator_images": dg.AssetIn(key=CREATOR_IMAGES)},
             description="Every ok image has rows (unless the stage was skipped), boxes inside their image, "
                         "confidences in [0, 1], unique (image, object) keys.")
def object_tags_valid(object_tags: pd.DataFrame, creator_images: pd.DataFrame,
                      vision: VisionConfig) -> dg.AssetCheckResult:
    import great_expectations.expectations as gxe

    if object_tags.empty:  # skipped for want of weights: nothing to check, nothing promoted
        return dg.AssetCheckResult(passed=True, metadata={"rows": 0})
    frame = object_tags.assign(
        box_in_image=box_inside(object_tags),
        object_key=object_tags["image_key"] + "#" + object_tags["object_idx"].astype("string").fillna("-"),
    )
    expectations = [*coverage_expectations(frame, creator_images, ["ok", "no_object"], vision),
                    *in_unit_range("confidence"), all_true("box_in_image"),
                    gxe.ExpectColumnValuesToBeUnique(column="object_key")]
    return check_result(validate_frame(frame, expectations, name="object_tags"))


@batch_asset(
    key=OBJECT_TAGS_PROMOTED, ins={"object_tags": dg.AssetIn(key=OBJECT_TAGS)}, deps=[PROMOTED_BATCH],
    group_name=GROUP_WAREHOUSE, kinds={"postgres"}, code_version=creatorlens.__version__,
    description="The batch's detected objects into detected_objects (replacing that model version's rows of the "
                "batch, in one transaction), each with its label's category from tag_category_map.",
)
def object_tags_promoted(context: dg.AssetExecutionContext, warehouse: Warehouse,
                         object_tags: pd.DataFrame) -> dg.MaterializeResult:
    q = load_queries(QUERIES)
    ok = object_tags[object_tags["status"] == "ok"] if len(object_tags) else object_tags
    versions = sorted(set(ok["model_version"])) if len(ok) else sorted(set(object_tags.get("model_version", [])))
    written = deleted = 0
    with stopwatch() as elapsed, warehouse.raw_connection() as conn, conn.transaction():
        for version in versions:
            deleted += conn.execute(q["delete_batch_version"], {"batch_key": context.partition_key,
                                                                "model_version": version}).rowcount
            rows = ok[ok["model_version"] == version]
            if len(rows):
                written += conn.execute(q["insert_objects"], {
                    "batch_key": context.partition_key, "model_version": version,
                    "image_keys": rows["image_key"].tolist(), "idx": rows["object_idx"].astype(int).tolist(),
                    "labels": rows["label"].tolist(), "conf": rows["confidence"].astype(float).tolist(),
                    **{c: rows[c].astype(float).tolist() for c in ("x1", "y1", "x2", "y2")},
                }).rowcount
    context.log.info(f"object tags {context.partition_key}: {written} written, {deleted} replaced")
    return dg.MaterializeResult(metadata={"written": written, "replaced": deleted, "model_versions":
                                          dg.MetadataValue.json(versions), "seconds": round(elapsed(), 3)})


def _counts(conn) -> dict[str, dict[str, int]]:
    return {c: {"objects": int(n), "images": int(i)}
            for c, n, i in conn.execute(load_queries(QUERIES)["category_counts"]).fetchall()}


def remap_categories(conn) -> dict[str, Any]:
    """Re-apply tag_category_map to every stored object, in one transaction: before/after per category."""
    with conn.transaction():
        before = _counts(conn)
        changed = conn.execute(load_queries(QUERIES)["remap"]).rowcount
        after = _counts(conn)
    return {"before": before, "after": after, "changed": changed}


def object_detector_skip(models: ModelRegistry) -> Skip:
    """Why the batch gets no object tags now, or None."""
    try:
        models.spec("object_detector")
    except WeightsMissing:
        return "no weights for the object_detector: no object tags", pull_command("object_detector")
    return None


object_tags_ran = stage_ran_check(OBJECT_TAGS, "object_tags_ran", "models", object_detector_skip,
                                  "the object detector's weights are in the model cache")


@dg.asset(key=OBJECT_CATEGORIES, group_name=GROUP_OBJECT_MAP, kinds={"postgres"},
          description="Every stored object tag re-mapped to its label's category in tag_category_map (after a "
                      "reviewer's edit): no image is read. Metadata: objects and images per category before/after.")
def object_categories(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    with warehouse.raw_connection() as conn:
        out = remap_categories(conn)
    context.log.info(f"object categories: {out['changed']} objects re-mapped")
    return dg.MaterializeResult(metadata={
        "changed": out["changed"],
        "before": dg.MetadataValue.json(out["before"]),
        "after": dg.MetadataValue.json(out["after"]),
        "objects": sum(v["objects"] for v in out["after"].values()),
    })
