"""The one partitioning scheme: creator batches, registered dynamically as creators arrive."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

CREATOR_BATCHES = "creator_batches"

creator_batches = dg.DynamicPartitionsDefinition(name=CREATOR_BATCHES)


def missing_partitions(instance: dg.DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Keys not yet registered with the instance, in the given order."""
    known = set(instance.get_dynamic_partitions(CREATOR_BATCHES))
    return [k for k in dict.fromkeys(keys) if k not in known]


def register_batches(instance: dg.DagsterInstance, keys: Iterable[str]) -> list[str]:
    """Register warehouse batches as partitions (idempotent); returns the keys added now."""
    missing = missing_partitions(instance, keys)
    if missing:
        instance.add_dynamic_partitions(CREATOR_BATCHES, missing)
    return missing
