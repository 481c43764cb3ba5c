"""Embeddings and zero-shot tags, per creator batch, plus the taxonomy and calibrated thresholds.

```
images/creator_images ─► images/embeddings ─► images/tags ─► creators/tags ─► warehouse/promoted_tags
                          (SigLIP/OpenCLIP)    (zero-shot,      (share of images,   (one transaction, after
                                                thresholds,      mean confidence)    warehouse/promoted_batch)
tagging/taxonomy ┐                              review routing)
tagging/thresholds ┘ (unpartitioned, group "taxonomy": validated YAML; thresholds calibrated from labels)
```

Without embedding weights in the model cache (``creatorlens models pull image_embedder``), the
embeddings asset materialises an empty table and says so in its metadata (``skipped``, with the
pull command); the tag assets and the promotion then skip too. Nothing is faked.
"""


import dagster as dg
import numpy as np
import pandas as pd

from assets.common.keys import (
    CREATOR_IMAGES,
    CREATOR_TAGS,
    IMAGE_EMBEDDINGS,
    IMAGE_TAGS,
    PROMOTED_BATCH,
    PROMOTED_TAGS,
    TAG_TAXONOMY,
    TAG_THRESHOLDS,
)
from assets.common.metadata import (
    GPU_POOL,
    GROUP_TAGGING,
    GROUP_WAREHOUSE,
    Skip,
    batch_asset,
    batch_check,
    check_result,
    preview_table,
    reason_counts,
    stage_ran_check,
    stopwatch,
    throughput_metadata,
)
from assets.common.quality import column, gxe, validate_frame
from assets.tagging.calibration import (
    calibrate,
    labels_needed,
    png_markdown,
    pr_curve_png,
    read_labels_csv,
    report_markdown,
    results_frame,
)
from assets.tagging.config import TaggingConfig
from assets.tagging.scoring import (
    CREATOR_TAG_COLUMNS,
    EMBEDDING_COLUMNS,
    TAG_COLUMNS,
    creator_tag_rows,
    empty_frame,
    tag_images,
)
from assets.tagging.store import promote_tags, upsert_taxonomy
from assets.tagging.thresholds import calibrated_thresholds, labelled_scores, write_thresholds
from gpu_ops.embeddings import ImageEmbedder
from gpu_ops.loader import decode_rgb, image_batches
from gpu_ops.registry import WeightsMissing, pull_command
from resources.blobstore import BlobStore
from resources.models import ModelRegistry
from resources.warehouse import Warehouse

GROUP_TAXONOMY = "taxonomy"
FAMILY = "image_embedder"
SKIPPED_NO_EMBEDDINGS = "no embeddings in this batch (embedding skipped, or no ok images)"


def _skipped_metadata(reason: str, **extra: object) -> dict[str, object]:
    return {"skipped": True, "skip_reason": reason, **extra}


def _unloaded_embedder(models: ModelRegistry) -> ImageEmbedder:
    """The configured embedder, not loaded: identity and declared dimension without touching weights."""
    return models.backend(FAMILY)


# ---------------------------------------------------------------------------------------------
# Unpartitioned: the taxonomy and the calibrated thresholds
# ---------------------------------------------------------------------------------------------
@dg.asset(
    key=TAG_TAXONOMY,
    group_name=GROUP_TAXONOMY,
    kinds={"python", "yaml", "postgres"},
    description="The tag taxonomy (validated YAML: categories, tags, prompts, thresholds), published with its "
    "content hash to the warehouse `tags` and `tag_taxonomies` tables.",
)
def tag_taxonomy(
    context: dg.AssetExecutionContext, tagging: TaggingConfig, warehouse: Warehouse
) -> dg.Output[pd.DataFrame]:
    taxonomy = tagging.taxonomy()
    with warehouse.raw_connection() as conn, conn.transaction(), conn.cursor() as cur:
        changed = upsert_taxonomy(cur, taxonomy)
    frame = pd.DataFrame(taxonomy.records())
    per_category = frame.groupby("category", sort=False).size().to_dict()
    context.log.info(f"taxonomy {taxonomy.name} {taxonomy.version}: {len(frame)} tags, {changed} changed")
    return dg.Output(frame, metadata={
        "taxonomy_version": taxonomy.version,
        "source": taxonomy.source,
        "tags": len(frame),
        "tags_changed": changed,
        "categories": dg.MetadataValue.json({
            c.name: {"exclusive": c.exclusive, "tags": per_category.get(c.name, 0)} for c in taxonomy.categories}),
        "preview": preview_table(frame.assign(prompts=frame["prompts"].map(len)),
                                 ["category", "tag", "exclusive", "prompts", "threshold_sigmoid",
                                  "threshold_softmax"], limit=100),
    })


@dg.asset(
    key=TAG_THRESHOLDS,
    deps=[TAG_TAXONOMY],
    group_name=GROUP_TAXONOMY,
    kinds={"python", "postgres", "matplotlib"},
    description="Per-tag thresholds calibrated on labelled examples (a labelled CSV plus reviewers' tag_feedback) "
    "for the current embedding model: best F1, or best recall at a precision floor. Written to `tag_thresholds`; "
    "the next tagging run uses them.",
)
def tag_thresholds(
    context: dg.AssetExecutionContext, tagging: TaggingConfig, models: ModelRegistry, warehouse: Warehouse
) -> dg.Output[pd.DataFrame]:
    empty = results_frame([])
    try:
        models.spec(FAMILY)
    except WeightsMissing as exc:
        return dg.Output(empty, metadata=_skipped_metadata(str(exc), pull_command=pull_command(FAMILY)))
    embedder = models.load(FAMILY)
    taxonomy = tagging.taxonomy()
    csv_labels, rejects = (read_labels_csv(tagging.labels_csv) if tagging.labels_csv
                           else (pd.DataFrame(columns=["image_key", "tag", "label"]), []))
    with stopwatch() as elapsed, warehouse.raw_connection() as conn:
        labelled, unmatched = labelled_scores(conn, embedder, taxonomy, csv_labels)
        results, curves = calibrate(labelled, precision_floor=tagging.precision_floor,
                                    min_positives=tagging.min_labels, min_negatives=tagging.min_labels)
        written = write_thresholds(conn, embedder.version, taxonomy, results)
    frame = results_frame(results).assign(model_version=embedder.version, taxonomy_version=taxonomy.version)
    metadata: dict[str, object] = {
        "model_version": embedder.version,
        "taxonomy_version": taxonomy.version,
        "labelled_examples": len(labelled),
        "labels_by_source": dg.MetadataValue.json(
            labelled["source"].value_counts().to_dict() if len(labelled) else {}),
        "unmatched_labels": dg.MetadataValue.json(unmatched),
        "rejected_csv_lines": dg.MetadataValue.json([{"line": n, "reason": r} for n, r in rejects[:50]]),
        "tags_calibrated": written,
        "method": "precision_floor" if tagging.precision_floor is not None else "max_f1",
        "report": dg.MetadataValue.md(report_markdown(results)),
        "labels_needed": dg.MetadataValue.json(labels_needed(
            results, precision_floor=tagging.precision_floor, min_labels=tagging.min_labels,
            tags=[t.name for t in taxonomy.tags])),
        **throughput_metadata(len(labelled), elapsed(), "labels"),
    }
    if curves:
        metadata["pr_curves"] = dg.MetadataValue.md(png_markdown(pr_curve_png(curves, results)))
    context.log.info(f"calibrated {written} tags from {len(labelled)} labelled examples")
    return dg.Output(frame, metadata=metadata)


# ---------------------------------------------------------------------------------------------
# Per batch: embeddings → tags → creator tags
# ---------------------------------------------------------------------------------------------
@batch_asset(
    key=IMAGE_EMBEDDINGS,
    ins={"creator_images": dg.AssetIn(key=CREATOR_IMAGES)},
    group_name=GROUP_TAGGING,
    kinds={"python", "pytorch"},
    pool=GPU_POOL,
    description="One L2-normalised image embedding per ok image (SigLIP or OpenCLIP), with model id and revision. "
    "Skipped, with the pull command in the metadata, while no weights are in the model cache.",
)
def image_embeddings(
    context: dg.AssetExecutionContext,
    creator_images: pd.DataFrame,
    models: ModelRegistry,
    blobs: BlobStore,
    tagging: TaggingConfig,
) -> dg.Output[pd.DataFrame]:
    ok = creator_images[creator_images["status"] == "ok"].reset_index(drop=True)
    try:
        models.spec(FAMILY)
    except WeightsMissing as exc:
        context.log.warning(f"image embeddings skipped: {exc}")
        return dg.Output(empty_frame(EMBEDDING_COLUMNS), metadata=_skipped_metadata(
            f"no weights for {FAMILY}", detail=str(exc), pull_command=pull_command(FAMILY), images=len(ok),
            embedded=0))
    embedder = models.load(FAMILY)
    model_id, _ = embedder.identity()
    base = {"model_version": embedder.version, "model_id": model_id, "backend": embedder.spec.backend,
            "scoring": embedder.scoring, "dim": embedder.dim}
    max_side = tagging.decode_max_side or (2 * embedder.input_size if embedder.input_size else None)

    def read(row: dict) -> np.ndarray:
        return decode_rgb(blobs.path(row["blob_key"]), max_side=max_side)

    rows: list[dict] = []
    with stopwatch() as elapsed:
        if tagging.ray_address:  # on a Ray cluster (resources/ray_cluster.py); unset: in this process, below
            rows = _embed_on_ray(ok.to_dict("records"), models, blobs, tagging, max_side, base)
        else:
            for batch in image_batches(ok.to_dict("records"), read, models.batch_size,
                                       workers=tagging.decode_workers):
                if batch.arrays:
                    vectors = embedder.embed_images(batch.arrays, batch_size=models.batch_size)
                    rows += [{**_image_cols(item), "status": "ok", "error_reason": None, "error": None, **base,
                              "embedding": vec} for item, vec in zip(batch.items, vectors, strict=True)]
                rows += [{**_image_cols(item), "status": "failed", "error_reason": "decode_error",
                          "error": f"{type(exc).__name__}: {exc}"[:1000], **base, "embedding": None}
                         for item, exc in batch.failures]
    frame = pd.DataFrame(rows, columns=list(EMBEDDING_COLUMNS)) if rows else empty_frame(EMBEDDING_COLUMNS)
    failed = frame[frame["status"] == "failed"]
    by_reason = reason_counts(failed["error_reason"])
    context.log.info(f"{len(frame) - len(failed)} embeddings ({embedder.version}, {embedder.dim}-d on "
                     f"{embedder.device}), {len(failed)} failed {by_reason} in {elapsed():.2f}s")
    return dg.Output(frame, metadata={
        "skipped": False,
        "images": len(ok),
        "embedded": len(frame) - len(failed),
        "failed": len(failed),
        "failures_by_reason": dg.MetadataValue.json(by_reason),
        "model_version": embedder.version,
        "backend": embedder.spec.backend,
        "dim": int(embedder.dim or 0),
        "device": str(embedder.device),
        "batch_size": models.batch_size,
        **throughput_metadata(len(frame), elapsed(), "images"),
    })


def _embed_on_ray(items: list[dict], models: ModelRegistry, blobs: BlobStore, tagging: TaggingConfig,
                  max_side: int | None, base: dict) -> list[dict]:
    """The same rows as the in-process loop, computed by Ray Data: decode tasks, one replica per actor."""
    import functools

    from resources.ray_cluster import RayEmbedding, load_registry_embedder, registry_fields

    ray = RayEmbedding.from_config(tagging, models.batch_size)
    result = ray.embed_paths([str(blobs.path(row["blob_key"])) for row in items],
                             functools.partial(load_registry_embedder, registry_fields(models)), max_side)
    return [{**_image_cols(item), "status": "ok" if err is None else "failed",
             "error_reason": None if err is None else "decode_error", "error": err, **base, "embedding": vec}
            for item, vec, err in zip(items, result.vectors, result.errors, strict=True)]


def _image_cols(row: dict) -> dict:
    return {"image_key": row["image_key"], "platform": row["platform"], "username": row["username"]}


@batch_asset(
    key=IMAGE_TAGS,
    ins={"image_embeddings": dg.AssetIn(key=IMAGE_EMBEDDINGS)},
    deps=[TAG_TAXONOMY, TAG_THRESHOLDS],
    group_name=GROUP_TAGGING,
    kinds={"python", "numpy"},
    pool=GPU_POOL,
    description="Zero-shot tags per image (SigLIP: sigmoid, multi-label; OpenCLIP: softmax within exclusive "
    "categories), thresholded per tag (calibrated when available), exclusive categories keeping the highest; "
    "low-confidence and conflicting tags routed to the review queue.",
)
def image_tags(
    context: dg.AssetExecutionContext,
    image_embeddings: pd.DataFrame,
    models: ModelRegistry,
    tagging: TaggingConfig,
    warehouse: Warehouse,
) -> dg.Output[pd.DataFrame]:
    if not (image_embeddings["status"] == "ok").any():
        return dg.Output(empty_frame(TAG_COLUMNS), metadata=_skipped_metadata(SKIPPED_NO_EMBEDDINGS))
    embedder = models.load(FAMILY)
    versions = set(image_embeddings.loc[image_embeddings["status"] == "ok", "model_version"])
    if versions != {embedder.version}:
        raise ValueError(f"embeddings were made by {sorted(versions)} but the configured model is now "
                         f"{embedder.version}; re-materialise images/embeddings for this batch")
    taxonomy = tagging.taxonomy()
    with stopwatch() as elapsed:
        with warehouse.raw_connection() as conn:
            calibrated = calibrated_thresholds(conn, embedder.version, taxonomy.version)
        frame = tag_images(embedder, taxonomy, image_embeddings, calibrated=calibrated,
                           floor_ratio=tagging.review_floor_ratio)
    assigned = frame[frame["assigned"].astype(bool)]
    queued = frame[frame["review_reason"].notna()]
    n_images = int((image_embeddings["status"] == "ok").sum())
    top = assigned.groupby("tag").size().sort_values(ascending=False).rename("images").reset_index()
    context.log.info(f"{len(assigned)} tags on {n_images} images, {len(queued)} queued for review "
                     f"({taxonomy.version}, {embedder.version}) in {elapsed():.2f}s")
    return dg.Output(frame, metadata={
        "skipped": False,
        "images": n_images,
        "tags_assigned": len(assigned),
        "tags_per_image": dg.MetadataValue.float(round(len(assigned) / n_images, 2)),
        "queued_for_review": len(queued),
        "queued_by_reason": dg.MetadataValue.json(reason_counts(queued["review_reason"])),
        "calibrated_tags": len(calibrated),
        "review_floor_ratio": tagging.review_floor_ratio,
        "scoring": embedder.scoring,
        "model_version": embedder.version,
        "taxonomy_version": taxonomy.version,
        **throughput_metadata(n_images, elapsed(), "images"),
        "top_tags": preview_table(top, ["tag", "images"], limit=15),
    })


@batch_asset(
    key=CREATOR_TAGS,
    ins={"image_tags": dg.AssetIn(key=IMAGE_TAGS), "image_embeddings": dg.AssetIn(key=IMAGE_EMBEDDINGS)},
    group_name=GROUP_TAGGING,
    kinds={"python", "pandas"},
    description="Per creator and tag: share of the creator's analysed images carrying the tag, and its mean "
    "confidence, with model and taxonomy version.",
)
def creator_tags(
    context: dg.AssetExecutionContext, image_tags: pd.DataFrame, image_embeddings: pd.DataFrame
) -> dg.Output[pd.DataFrame]:
    if not (image_embeddings["status"] == "ok").any():
        return dg.Output(empty_frame(CREATOR_TAG_COLUMNS), metadata=_skipped_metadata(SKIPPED_NO_EMBEDDINGS))
    with stopwatch() as elapsed:
        frame = creator_tag_rows(image_tags, image_embeddings)
    creators = frame["username"].nunique() if len(frame) else 0
    context.log.info(f"{len(frame)} creator tags for {creators} creators")
    return dg.Output(frame, metadata={
        "skipped": False,
        "creators": creators,
        "creator_tags": len(frame),
        **throughput_metadata(len(frame), elapsed(), "rows"),
        "preview": preview_table(frame, ["username", "tag", "share", "mean_confidence", "images_tagged",
                                         "images_analysed"], limit=20),
    })


# ---------------------------------------------------------------------------------------------
# Blocking checks
# ---------------------------------------------------------------------------------------------
def _skipped_check(what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.ERROR,
                               description=f"nothing to check: {what}", metadata={"skipped": True})


@batch_check(asset=IMAGE_EMBEDDINGS,
                description="Unit-norm vectors, every vector as long as the model's declared dimension, one row per "
                            "image, the configured model version on every row, a reason on every failure.")
def image_embeddings_valid(image_embeddings: pd.DataFrame, models: ModelRegistry) -> dg.AssetCheckResult:
    if image_embeddings.empty:
        return _skipped_check("no embeddings in this batch")
    embedder = _unloaded_embedder(models)
    declared = embedder.declared_dim(embedder.weights)
    frame = image_embeddings.drop(columns=["embedding"]).assign(
        norm=[float(np.linalg.norm(v)) if v is not None else None for v in image_embeddings["embedding"]],
        length=[len(v) if v is not None else None for v in image_embeddings["embedding"]],
    )
    ok = column("status") == "ok"
    expectations = [
        gxe.ExpectColumnValuesToBeUnique(column="image_key"),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "failed"]),
        gxe.ExpectColumnValuesToBeInSet(column="model_version", value_set=[embedder.version]),
    ]
    if (frame["status"] == "ok").any():
        expectations += [
            gxe.ExpectColumnValuesToBeBetween(column="norm", min_value=0.999, max_value=1.001, row_condition=ok),
            gxe.ExpectColumnValuesToBeInSet(column="length", value_set=[declared], row_condition=ok),
            gxe.ExpectColumnValuesToBeInSet(column="dim", value_set=[declared], row_condition=ok),
        ]
    if (frame["status"] == "failed").any():
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column="error_reason",
                                                              row_condition=column("status") == "failed"))
    return check_result(validate_frame(frame, expectations, name="image_embeddings"),
                        extra={"declared_dim": declared, "model_version": embedder.version})


@batch_check(asset=IMAGE_TAGS,
                description="Confidences in [0, 1], thresholds in (0, 1], assigned tags at or over their threshold, "
                            "queued tags at or over their review floor, at most one tag per image in an exclusive "
                            "category, and the current taxonomy version recorded on every row.")
def image_tags_valid(image_tags: pd.DataFrame, tagging: TaggingConfig) -> dg.AssetCheckResult:
    if image_tags.empty:
        return _skipped_check("no tags in this batch")
    taxonomy = tagging.taxonomy()
    assigned = column("assigned") == True  # noqa: E712 - a GX condition, not a Python comparison
    frame = image_tags.assign(exclusive_assigned=image_tags["assigned"].astype(bool)
                              & image_tags["exclusive"].astype(bool),
                              queued=image_tags["review_reason"].notna())
    expectations = [
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["image_key", "tag"]),
        gxe.ExpectColumnValuesToBeBetween(column="confidence", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnValuesToBeBetween(column="threshold", min_value=1e-9, max_value=1.0),
        gxe.ExpectColumnValuesToBeInSet(column="taxonomy_version", value_set=[taxonomy.version]),
        gxe.ExpectColumnValuesToBeInSet(column="tag", value_set=[t.name for t in taxonomy.tags]),
        gxe.ExpectColumnValuesToNotBeNull(column="model_version"),
        gxe.ExpectColumnValuesToBeInSet(column="review_reason", value_set=["low_confidence", "exclusive_conflict"]),
    ]
    if frame["assigned"].astype(bool).any():
        expectations.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="confidence", column_B="threshold", or_equal=True, row_condition=assigned))
    if frame["queued"].any():
        expectations.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="confidence", column_B="review_floor", or_equal=True,
            row_condition=column("queued") == True))  # noqa: E712
    if frame["exclusive_assigned"].any():
        expectations.append(gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["image_key", "category"], row_condition=column("exclusive_assigned") == True))  # noqa: E712
    return check_result(validate_frame(frame, expectations, name="image_tags"),
                        extra={"taxonomy_version": taxonomy.version})


@batch_check(asset=CREATOR_TAGS,
                description="One row per creator and tag, shares in (0, 1], mean confidences in [0, 1], "
                            "tagged images never more than analysed images.")
def creator_tags_valid(creator_tags: pd.DataFrame) -> dg.AssetCheckResult:
    if creator_tags.empty:
        return _skipped_check("no creator tags in this batch")
    expectations = [
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["platform", "username", "tag"]),
        gxe.ExpectColumnValuesToBeBetween(column="share", min_value=1e-9, max_value=1.0),
        gxe.ExpectColumnValuesToBeBetween(column="mean_confidence", min_value=0.0, max_value=1.0),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="images_analysed", column_B="images_tagged",
                                                    or_equal=True),
    ]
    return check_result(validate_frame(creator_tags, expectations, name="creator_tags"))


# ---------------------------------------------------------------------------------------------
# Promotion
# ---------------------------------------------------------------------------------------------
@batch_asset(
    key=PROMOTED_TAGS,
    ins={
        "image_embeddings": dg.AssetIn(key=IMAGE_EMBEDDINGS),
        "image_tags": dg.AssetIn(key=IMAGE_TAGS),
        "creator_tags": dg.AssetIn(key=CREATOR_TAGS),
    },
    deps=[PROMOTED_BATCH],
    group_name=GROUP_WAREHOUSE,
    kinds={"postgres", "pgvector"},
    description="Embeddings (halfvec, per-model HNSW index), image tags, review queue items, creator tags and the "
    "analysis history of the batch for one model version, in one transaction (COPY + INSERT … ON CONFLICT). "
    "Runs after the batch's images are in the warehouse.",
)
def promoted_tags(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    tagging: TaggingConfig,
    image_embeddings: pd.DataFrame,
    image_tags: pd.DataFrame,
    creator_tags: pd.DataFrame,
) -> dg.MaterializeResult:
    if not (image_embeddings["status"] == "ok").any():
        context.log.info(f"tagging promotion of {context.partition_key} skipped: {SKIPPED_NO_EMBEDDINGS}")
        return dg.MaterializeResult(metadata=_skipped_metadata(SKIPPED_NO_EMBEDDINGS))
    taxonomy = tagging.taxonomy()
    with warehouse.raw_connection() as conn:
        result = promote_tags(
            conn, context.partition_key, taxonomy=taxonomy, embeddings=image_embeddings, image_tags=image_tags,
            creator_tags=creator_tags, run_id=context.run.run_id, hnsw_m=tagging.hnsw_m,
            hnsw_ef_construction=tagging.hnsw_ef_construction, history_change=tagging.history_change,
        )
    context.log.info(f"promoted tags of {context.partition_key}: staged {result.staged}, written {result.written}, "
                     f"removed stale {result.deleted} in {result.seconds:.2f}s")
    return dg.MaterializeResult(metadata={
        "skipped": False,
        **{f"rows_{k}": v for k, v in result.staged.items()},
        "rows_changed": dg.MetadataValue.json(result.written),
        "rows_removed_stale": dg.MetadataValue.json(result.deleted),
        "model_version": str(image_embeddings["model_version"].dropna().iloc[0]),
        "taxonomy_version": taxonomy.version,
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "rows_per_second": dg.MetadataValue.float(round(result.rows_per_second, 1)),
    })


def embedder_skip(models: ModelRegistry) -> Skip:
    """Why ``images/embeddings`` (and the tags after it) cannot run now, or None."""
    try:
        models.spec(FAMILY)
    except WeightsMissing:
        return f"no weights for the {FAMILY} in the model cache", pull_command(FAMILY)
    return None


image_embeddings_ran = stage_ran_check(IMAGE_EMBEDDINGS, "image_embeddings_ran", "models", embedder_skip,
                                       "the image embedder's weights are in the model cache")

