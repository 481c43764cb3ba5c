"""Which part of the ``Definitions`` a code location serves (``CREATORLENS_CODE_LOCATION``).

* ``all`` (default): everything, one location. Local development, tests, ``make ui``.
* ``gpu``: the per-batch pipeline, i.e. every asset in ``BATCH_GROUPS`` with its checks, the jobs
  over them and the sensors/schedules that launch those jobs. Production serves it from the
  gRPC server that holds the NVIDIA device; with the ``DockerRunLauncher`` each run container
  of this location gets the device too (the location's container context, docker-compose.yml).
  One run per batch keeps the blocking checks in the same run as the promotion they gate.
* ``cpu``: everything else (unpartitioned assets such as the tag taxonomy and thresholds), plus
  the sensors that target no job (the run-failure sensor, which watches every location).

The halves share no asset key: Dagster allows one materialisable definition per key across a
workspace. Upstream assets of the other location are loaded through the shared IO manager.
"""

from __future__ import annotations

import dagster as dg

from assets.common.metadata import BATCH_GROUPS

CODE_LOCATIONS = ("all", "cpu", "gpu")


def _in_batch_pipeline(item: object) -> bool:
    return isinstance(item, dg.AssetsDefinition) and any(spec.group_name in BATCH_GROUPS for spec in item.specs)


def _job_name(target: dg.SensorDefinition | dg.ScheduleDefinition) -> str | None:
    if isinstance(target, dg.SensorDefinition) and not target.has_jobs:
        return None  # run-status sensors and the like
    return target.job_name


def for_location(defs: dg.Definitions, location: str) -> dg.Definitions:
    """The part of ``defs`` that ``location`` serves (``all``: ``defs`` itself)."""
    if location not in CODE_LOCATIONS:
        raise ValueError(f"unknown code location {location!r}; expected one of {CODE_LOCATIONS}")
    if location == "all":
        return defs
    batches = location == "gpu"
    assets = [a for a in defs.assets or [] if _in_batch_pipeline(a) == batches]
    keys = {k for a in assets for k in (a.keys if isinstance(a, dg.AssetsDefinition) else [a.key])}
    checks = [c for c in defs.asset_checks or [] if all(k.asset_key in keys for k in c.check_keys)]
    graph = dg.Definitions(assets=assets, asset_checks=checks, resources=defs.resources).resolve_asset_graph()
    jobs = [j for j in defs.jobs or [] if not hasattr(j, "selection") or j.selection.resolve(graph)]
    job_names = {j.name for j in jobs}

    def keep(target) -> bool:
        name = _job_name(target)
        return name in job_names if name else not batches

    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=jobs,
        sensors=[s for s in defs.sensors or [] if keep(s)],
        schedules=[s for s in defs.schedules or [] if keep(s)],
        resources=defs.resources,
        loggers=defs.loggers,
        executor=defs.executor,
    )
