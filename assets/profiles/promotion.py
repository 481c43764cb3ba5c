"""``warehouse/promoted_profiles``: one transaction per batch for the profile stage.

Runs after ``warehouse/promoted_batch`` (so every creator row exists) and only after the
blocking checks of the three profile assets passed. It fills empty creator fields from the
profile API (never overwriting), records the enrichment outcome, and upserts
``creator_profiles`` and ``profile_embeddings`` on ``(platform, username)``: a rerun writes nothing.
"""


import dagster as dg
import pandas as pd

import creatorlens
from assets.common.keys import ENRICHED_PROFILES, LLM_PROFILES, PROFILE_EMBEDDINGS, PROMOTED_BATCH, PROMOTED_PROFILES
from assets.common.metadata import GROUP_WAREHOUSE, batch_asset
from assets.profiles.store import profile_json, promote_profiles
from resources.warehouse import Warehouse


@batch_asset(
    key=PROMOTED_PROFILES,
    ins={
        "enriched_profiles": dg.AssetIn(key=ENRICHED_PROFILES),
        "llm_profiles": dg.AssetIn(key=LLM_PROFILES),
        "profile_embeddings": dg.AssetIn(key=PROFILE_EMBEDDINGS),
    },
    deps=[PROMOTED_BATCH],
    group_name=GROUP_WAREHOUSE,
    kinds={"postgres"},
    description="Enrichment columns of creators, creator_profiles and profile_embeddings of the batch, upserted "
    "in one transaction after the batch's creators were promoted.",
    code_version=creatorlens.__version__,
)
def promoted_profiles(context: dg.AssetExecutionContext, warehouse: Warehouse, enriched_profiles: pd.DataFrame,
                      llm_profiles: pd.DataFrame, profile_embeddings: pd.DataFrame) -> dg.MaterializeResult:
    profiles = llm_profiles.assign(profile=llm_profiles["profile"].map(profile_json))
    with warehouse.raw_connection() as conn:
        result = promote_profiles(conn, context.partition_key, enriched=enriched_profiles, profiles=profiles,
                                  embeddings=profile_embeddings)
    context.log.info(f"promoted profiles of {context.partition_key}: staged {result.staged}, "
                     f"written {result.written} in {result.seconds:.2f}s")
    return dg.MaterializeResult(metadata={
        **{f"rows_{k}": v for k, v in result.staged.items()},
        "rows_changed": dg.MetadataValue.json(result.written),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "code_version": creatorlens.__version__,
    })
