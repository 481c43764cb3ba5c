"""Software-defined assets, one module per stage.

Dagster features acknowledged once for every asset module, here, because any of them may be
imported first (the CLI reaches them through ``orchestration.runs`` before ``definitions``):
partitioned asset checks (``partitions_def`` on a check: what lets a blocking check gate one
batch) are a preview in Dagster 1.13, and ``backfill_policy`` on an asset is beta.
"""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", message="Specifying a partitions_def on an AssetCheckSpec", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
