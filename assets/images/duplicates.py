"""``images/duplicates``: exact (sha256) and near (PDQ Hamming ≤ threshold) duplicate pairs,
including mirrored and rotated reposts (a new image's dihedral hashes), with the transform.

Compared within the batch and against every ok image of other batches already promoted.
"""


import dagster as dg
import pandas as pd

from assets.common.keys import CREATOR_IMAGES, IMAGE_DUPLICATES
from assets.common.metadata import (
    GROUP_INGEST,
    batch_asset,
    batch_check,
    check_result,
    preview_table,
    stopwatch,
    throughput_metadata,
)
from assets.common.quality import gxe, validate_frame
from assets.images.config import IngestConfig
from assets.images.pdq import TRANSFORMS, near_duplicate_pairs
from creatorlens.queries import load_queries
from resources.warehouse import Warehouse

HASH_COLUMNS = ["image_key", "sha256", "pdq_hash", "pdq_quality"]


@batch_asset(
    key=IMAGE_DUPLICATES,
    ins={"creator_images": dg.AssetIn(key=CREATOR_IMAGES)},
    group_name=GROUP_INGEST,
    kinds={"python", "numpy", "postgres"},
    description="Exact (sha256) and near (PDQ) duplicate pairs, within the batch and across the warehouse.",
)
def image_duplicates(
    context: dg.AssetExecutionContext, creator_images: pd.DataFrame, warehouse: Warehouse, ingest: IngestConfig
) -> dg.Output[pd.DataFrame]:
    transforms = ingest.pdq_match_transforms and "pdq_dihedral" in creator_images.columns
    columns = [*HASH_COLUMNS, *(["pdq_dihedral"] if transforms else [])]
    new = creator_images.loc[creator_images["status"] == "ok", columns].reset_index(drop=True)
    with stopwatch() as elapsed:
        with warehouse.get_engine().connect() as conn:
            rows = conn.exec_driver_sql(
                load_queries("duplicates.sql")["existing_hashes"], {"batch_key": context.partition_key}
            ).all()
        existing = pd.DataFrame(rows, columns=HASH_COLUMNS)
        pairs = near_duplicate_pairs(
            new, existing, max_distance=ingest.pdq_max_distance, min_quality=ingest.pdq_min_quality
        )
    n_exact = int((pairs["kind"] == "exact").sum())
    n_cross = int((~pairs["image_key_a"].isin(new["image_key"]) | ~pairs["image_key_b"].isin(new["image_key"])).sum())
    context.log.info(
        f"{len(pairs)} duplicate pairs ({n_exact} exact, {n_cross} against earlier batches) among "
        f"{len(new)} new and {len(existing)} existing images in {elapsed():.2f}s"
    )
    return dg.Output(
        pairs,
        metadata={
            "pairs": len(pairs),
            "exact_pairs": n_exact,
            "near_pairs": len(pairs) - n_exact,
            "cross_batch_pairs": n_cross,
            "transformed_pairs": dg.MetadataValue.json(
                pairs.loc[pairs["transform"] != "none", "transform"].value_counts().to_dict()),
            "compared_new": len(new),
            "compared_existing": len(existing),
            # Images of the batch left out of the near-duplicate comparison, and why.
            "near_skipped_by_reason": dg.MetadataValue.json({
                reason: n for reason, n in (
                    ("image_failed", int((creator_images["status"] != "ok").sum())),
                    ("pdq_quality_below_min", int((new["pdq_quality"] < ingest.pdq_min_quality).sum())),
                ) if n
            }),
            "max_distance": ingest.pdq_max_distance,
            "matched_transforms": transforms,
            "min_quality": ingest.pdq_min_quality,
            **throughput_metadata(len(new), elapsed(), "images"),
            "preview": preview_table(pairs, ["image_key_a", "image_key_b", "distance", "kind"]),
        },
    )


@batch_check(asset=IMAGE_DUPLICATES,
                description="Each unordered pair once, distances within the threshold.")
def image_duplicates_valid(image_duplicates: pd.DataFrame, ingest: IngestConfig) -> dg.AssetCheckResult:
    return check_result(
        validate_frame(
            image_duplicates,
            [
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["image_key_a", "image_key_b"]),
                gxe.ExpectColumnValuesToBeBetween(column="distance", min_value=0, max_value=ingest.pdq_max_distance),
                gxe.ExpectColumnValuesToBeInSet(column="kind", value_set=["exact", "near"]),
                gxe.ExpectColumnValuesToBeInSet(column="transform", value_set=list(TRANSFORMS)),
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="image_key_b", column_B="image_key_a"),
            ],
            name="image_duplicates",
        )
    )
