"""``warehouse/promoted_batch``: one transaction per batch into PostgreSQL.

Runs only after every blocking check upstream passed: a failed check means Dagster skips this
step, so nothing of the batch reaches the warehouse.
"""


import dagster as dg
import pandas as pd

import creatorlens
from assets.common.keys import CREATOR_IMAGES, IMAGE_DUPLICATES, PROMOTED_BATCH, RAW_POSTS, RAW_PROFILES
from assets.common.metadata import GROUP_WAREHOUSE, batch_asset, promotion_metadata
from assets.common.promotion import promote
from resources.warehouse import Warehouse


@batch_asset(
    key=PROMOTED_BATCH,
    ins={
        "raw_profiles": dg.AssetIn(key=RAW_PROFILES),
        "raw_posts": dg.AssetIn(key=RAW_POSTS),
        "creator_images": dg.AssetIn(key=CREATOR_IMAGES),
        "image_duplicates": dg.AssetIn(key=IMAGE_DUPLICATES),
    },
    group_name=GROUP_WAREHOUSE,
    kinds={"postgres"},
    description="Creators, posts, images (with failures) and duplicate pairs of the batch, upserted in one "
    "transaction (COPY into staging tables, then INSERT … ON CONFLICT on natural keys).",
    code_version=creatorlens.__version__,
)
def promoted_batch(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    raw_profiles: pd.DataFrame,
    raw_posts: pd.DataFrame,
    creator_images: pd.DataFrame,
    image_duplicates: pd.DataFrame,
) -> dg.MaterializeResult:
    with warehouse.raw_connection() as conn:
        result = promote(
            conn,
            context.partition_key,
            creators=raw_profiles,
            posts=raw_posts,
            images=creator_images,
            duplicates=image_duplicates,
            run_id=context.run.run_id,
            code_version=creatorlens.__version__,
        )
    context.log.info(
        f"promoted {context.partition_key}: staged {result.staged}, written {result.written}, "
        f"removed stale {result.deleted} in {result.seconds:.2f}s"
    )
    return dg.MaterializeResult(metadata=promotion_metadata(result, creatorlens.__version__))
