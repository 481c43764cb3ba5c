"""``warehouse/vision``: one transaction per batch from the vision stages into PostgreSQL.

It runs after ``warehouse/promoted_batch`` (the images its rows reference must exist) and only
when every blocking vision check passed: a failed check means Dagster skips this step and none
of the batch's vision rows reach the warehouse.
"""

import dagster as dg
import pandas as pd

import creatorlens
from assets.common.keys import FACES, IMAGE_FEATURES, KEYPOINTS, OCR, PERSONS, PROMOTED_BATCH, VISION_PROMOTED
from assets.common.metadata import GROUP_WAREHOUSE, batch_asset, promotion_metadata
from assets.vision.store import promote_vision, warehouse_frames
from resources.warehouse import Warehouse


@batch_asset(
    key=VISION_PROMOTED,
    ins={
        "image_features": dg.AssetIn(key=IMAGE_FEATURES),
        "persons": dg.AssetIn(key=PERSONS),
        "keypoints": dg.AssetIn(key=KEYPOINTS),
        "ocr": dg.AssetIn(key=OCR),
        "faces": dg.AssetIn(key=FACES),
    },
    deps=[PROMOTED_BATCH],
    group_name=GROUP_WAREHOUSE,
    kinds={"postgres"},
    description="Per-image vision features and statuses, persons, keypoints, OCR text and faces of the batch, "
    "upserted in one transaction (COPY into staging tables, then INSERT … ON CONFLICT on natural keys).",
    code_version=creatorlens.__version__,
)
def vision_promoted(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    image_features: pd.DataFrame,
    persons: pd.DataFrame,
    keypoints: pd.DataFrame,
    ocr: pd.DataFrame,
    faces: pd.DataFrame,
) -> dg.MaterializeResult:
    frames = warehouse_frames(image_features, persons, keypoints, ocr, faces)
    with warehouse.raw_connection() as conn:
        record = context.instance.get_run_record_by_id(context.run.run_id)
        result = promote_vision(conn, context.partition_key, frames, run_id=context.run.run_id,
                                code_version=creatorlens.__version__,
                                flags_before=record.create_timestamp if record else None)
    context.log.info(
        f"vision {context.partition_key}: staged {result.staged}, written {result.written}, "
        f"removed stale {result.deleted} in {result.seconds:.2f}s"
    )
    return dg.MaterializeResult(metadata=promotion_metadata(result, creatorlens.__version__))
