"""Small helpers shared by the stage modules (metadata formatting, timing)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pandas as pd

from assets.common.partitions import creator_batches
from assets.common.promotion import PromotionResult
from assets.common.quality import QualityReport

GROUP_INGEST = "ingest"
GROUP_WAREHOUSE = "warehouse"
GROUP_VISION = "vision"
GROUP_TAGGING = "tagging"
GROUP_PROFILES = "profiles"

# Groups whose assets are partitioned per creator batch and make up the per-batch job.
# Unpartitioned assets (taxonomy, thresholds) live in other groups.
BATCH_GROUPS = (GROUP_INGEST, GROUP_VISION, GROUP_TAGGING, GROUP_PROFILES, GROUP_WAREHOUSE)

# Steps that use the GPU declare ``pool=GPU_POOL``; dagster.yaml limits the
# pool to one step at a time per GPU across all runs.
GPU_POOL = "gpu"
# On Kubernetes (k8s_job_executor: one pod per step) a GPU-pool step asks for one GPU and lands on the
# GPU nodes through the ``dagster-k8s/config`` op tag; other executors ignore the tag. Node label and
# taint are the NVIDIA GPU operator's defaults plus our pool label (deploy/k8s/README: label your nodes).
K8S_NODE_POOL_LABEL = "creatorlens.io/node-pool"
# The same steps run their CPU models on a worker pool fed through /dev/shm (gpu_ops.pool): a pod's own
# /dev/shm is 64 MiB, so they mount a memory-backed one (counted against the pod's memory limit).
K8S_SHM_SIZE = "2Gi"
GPU_K8S_CONFIG = {
    "container_config": {
        "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}},
        "volume_mounts": [{"name": "dshm", "mount_path": "/dev/shm"}],
    },
    "pod_spec_config": {
        "node_selector": {K8S_NODE_POOL_LABEL: "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "volumes": [{"name": "dshm", "empty_dir": {"medium": "Memory", "size_limit": K8S_SHM_SIZE}}],
    },
}
# Stage assets read ``context.partition_key``: a backfill must give every batch its own run.
BATCH_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
# For assets doing network I/O: a few step retries, spaced out, with jitter against lockstep.
NETWORK_RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


@contextmanager
def stopwatch():
    """``with stopwatch() as t: ...`` then ``t()`` gives elapsed seconds."""
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())


def reason_counts(reasons: Iterable[str | None]) -> dict[str, int]:
    return dict(Counter(r for r in reasons if r).most_common())


def throughput_metadata(n: int, seconds: float, unit: str) -> dict[str, dg.MetadataValue]:
    rate = n / seconds if seconds > 0 else 0.0
    return {
        "seconds": dg.MetadataValue.float(round(seconds, 3)),
        f"{unit}_per_second": dg.MetadataValue.float(round(rate, 2)),
    }


def check_result(report: QualityReport, *, extra: dict | None = None) -> dg.AssetCheckResult:
    """AssetCheckResult (severity ERROR, so a blocking check stops promotion) from a GX report."""
    failures = [o.describe() for o in report.failures]
    return dg.AssetCheckResult(
        passed=report.success,
        severity=dg.AssetCheckSeverity.ERROR,
        description=("; ".join(failures) if failures else f"all expectations met on {report.rows} rows"),
        metadata={
            "rows": report.rows,
            "failed_expectations": len(failures),
            "expectations": dg.MetadataValue.md(report.markdown()),
            **(extra or {}),
        },
    )


def preview_table(df: pd.DataFrame, columns: list[str], limit: int = 10) -> dg.MetadataValue:
    sub = df[[c for c in columns if c in df.columns]].head(limit)
    return dg.MetadataValue.md(sub.to_markdown(index=False) if len(sub) else "_empty_")


def promotion_metadata(result: PromotionResult, code_version: str) -> dict[str, dg.MetadataValue | int | str]:
    """What a warehouse promotion asset shows: rows staged per table, changed, removed as stale, timing."""
    return {
        **{f"rows_{k}": v for k, v in result.staged.items()},
        "rows_changed": dg.MetadataValue.json(result.written),
        "rows_removed_stale": dg.MetadataValue.json(result.deleted),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
        "rows_per_second": dg.MetadataValue.float(round(result.rows_per_second, 1)),
        "code_version": code_version,
    }


Skip = tuple[str, str] | None  # (why the stage could not run, the command or setting that fixes it)


def stage_ran_check(asset: dg.AssetKey, name: str, resource: str, skip: Callable[[Any], Skip],
                    ran: str) -> dg.AssetChecksDefinition:
    """A WARN check (never blocks) that fails while ``asset``'s stage cannot run for want of
    configuration: no weights, no endpoint. A skipped stage materialises an empty, valid table,
    so without it the UI would show a green materialisation with 0 rows and no hint why.

    ``skip(resource)`` says why and what fixes it, or ``None`` when the stage runs.
    """
    # blocking=True like every check of the graph; a WARN failure never blocks anything downstream.
    @dg.asset_check(asset=asset, name=name, partitions_def=creator_batches, required_resource_keys={resource},
                    blocking=True, description="WARN when this stage could not run (missing weights or endpoint), with the reason "
                                "and the command or setting that fixes it. Never blocks promotion.")
    def _ran(context) -> dg.AssetCheckResult:  # noqa: ANN001 - Dagster reads no string annotation here
        found = skip(getattr(context.resources, resource))
        if found is None:
            return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN, description=ran)
        reason, fix = found
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"skipped: {reason}. To run it: {fix}",
                                   metadata={"skipped": True, "skip_reason": reason, "fix": fix})

    return _ran


def batch_asset(**kwargs: Any) -> Callable:
    """``@dg.asset`` for a per-batch asset: partitioned by ``creator_batches``, one batch per run in
    a backfill (the stages read ``context.partition_key``). A ``gpu``-pool asset also carries
    :data:`GPU_K8S_CONFIG` as its ``dagster-k8s/config`` op tag."""
    if kwargs.get("pool") == GPU_POOL:
        kwargs["op_tags"] = {"dagster-k8s/config": json.dumps(GPU_K8S_CONFIG), **(kwargs.get("op_tags") or {})}
    return dg.asset(partitions_def=creator_batches, backfill_policy=BATCH_BACKFILL_POLICY, **kwargs)


def batch_check(**kwargs: Any) -> Callable:
    """``@dg.asset_check`` for a per-batch asset: partitioned like it and blocking, so an ERROR
    failure stops the promotion it gates (a WARN never blocks)."""
    return dg.asset_check(partitions_def=creator_batches, blocking=True, **kwargs)
