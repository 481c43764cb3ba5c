"""Snapshot of everything Dagster loads: assets, checks, jobs, schedules, sensors, pools, locations.

The expected graph is checked in (tests/snapshots/definitions.json), so a change to it shows up
in review as a diff of that file. After an intended change, regenerate it and commit the diff:

    UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/integration/test_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from creatorlens.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.locations import CODE_LOCATIONS

SNAPSHOT = Path(__file__).resolve().parent.parent / "snapshots" / "definitions.json"


def _policy(policy: dg.BackfillPolicy | None) -> str | None:
    return None if policy is None else f"{policy.policy_type.value}:{policy.max_partitions_per_run}"


def _retry(policy: dg.RetryPolicy | None) -> dict | None:
    if policy is None:
        return None
    return {"max_retries": policy.max_retries, "delay": policy.delay,
            "backoff": policy.backoff.value if policy.backoff else None,
            "jitter": policy.jitter.value if policy.jitter else None}


def _assets(defs: dg.Definitions) -> dict[str, dict]:
    graph = defs.resolve_asset_graph()
    out = {}
    for assets_def in defs.assets or []:
        for key in sorted(assets_def.keys, key=lambda k: k.to_user_string()):
            node = graph.get(key)
            spec = assets_def.specs_by_key[key]
            out[key.to_user_string()] = {
                "group": spec.group_name,
                "deps": sorted(p.to_user_string() for p in node.parent_keys),
                "partitions": getattr(node.partitions_def, "name", None),
                "kinds": sorted(spec.kinds),
                "code_version": spec.code_version,
                "pool": assets_def.op.pool,
                "backfill_policy": _policy(assets_def.backfill_policy),
                "retry_policy": _retry(assets_def.op.retry_policy),
            }
    return dict(sorted(out.items()))


def describe(defs: dg.Definitions) -> dict:
    repo = defs.get_repository_def()
    graph = defs.resolve_asset_graph()
    checks = sorted(
        ({"asset": s.asset_key.to_user_string(), "name": s.name, "blocking": s.blocking}
         for c in defs.asset_checks or [] for s in c.check_specs),
        key=lambda c: (c["asset"], c["name"]),
    )
    jobs = {
        job.name: {
            "assets": sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys),
            "partitions": getattr(job.partitions_def, "name", None),
            "tags": dict(sorted(job.tags.items())),
        }
        for job in repo.get_all_jobs() if not job.name.startswith("__")
    }
    schedules = {
        s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name,
                 "default_status": s.default_status.value}
        for s in repo.schedule_defs
    }
    sensors = {
        s.name: {"type": s.sensor_type.value, "job": s.job_name if s.has_jobs else None,
                 "minimum_interval_seconds": s.minimum_interval_seconds, "default_status": s.default_status.value,
                 "resources": sorted(s.required_resource_keys)}
        for s in repo.sensor_defs
    }
    assets = _assets(defs)
    return {
        "assets": assets,
        "checks": checks,
        "jobs": jobs,
        "schedules": schedules,
        "sensors": sensors,
        "pools": sorted({a["pool"] for a in assets.values() if a["pool"]}),
        "resources": sorted(defs.resources or {}),
        "loggers": sorted(defs.loggers or {}),
        "all_asset_keys": len(graph.get_all_asset_keys()),
    }


def snapshot(tmp_path: Path) -> dict:
    by_location = {loc: build_definitions(Settings(state_dir=tmp_path, code_location=loc)) for loc in CODE_LOCATIONS}
    full = describe(by_location["all"])
    full["locations"] = {
        loc: {
            "assets": sorted(_assets(defs)),
            "jobs": sorted(j.name for j in defs.get_repository_def().get_all_jobs() if not j.name.startswith("__")),
            "schedules": sorted(s.name for s in defs.get_repository_def().schedule_defs),
            "sensors": sorted(s.name for s in defs.get_repository_def().sensor_defs),
        }
        for loc, defs in by_location.items() if loc != "all"
    }
    return full


def test_definitions_match_the_checked_in_snapshot(tmp_path):
    actual = json.dumps(snapshot(tmp_path), indent=2, sort_keys=False, default=str) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(actual)
    assert SNAPSHOT.exists(), f"no snapshot yet: run with UPDATE_SNAPSHOTS=1 to write {SNAPSHOT}"
    expected = SNAPSHOT.read_text()
    assert actual == expected, (
        "the Definitions changed; if intended, regenerate with "
        "`UPDATE_SNAPSHOTS=1 python -m pytest tests/integration/test_snapshot.py` and commit the diff"
    )


def test_locations_split_the_graph_without_overlap(tmp_path):
    snap = snapshot(tmp_path)
    cpu, gpu = (set(snap["locations"][loc]["assets"]) for loc in ("cpu", "gpu"))
    assert not cpu & gpu and cpu | gpu == set(snap["assets"])
    assert set(snap["locations"]["cpu"]["sensors"]) | set(snap["locations"]["gpu"]["sensors"]) == set(snap["sensors"])
