"""``creatorlens status``: every batch with its state, and the last failures.

A batch's state combines the warehouse (``creator_batches``, ``promotions``, ``batch_failures``)
with the Dagster instance (registered partitions, materialisations, the latest run):

==============  ==================================================================
``unregistered`` in the warehouse, not (yet) a partition of the instance
``registered``   a partition, nothing materialised yet
``queued``       its latest run waits in the run queue; ``running``: it runs now
``materialised`` stage assets materialised, not promoted
``promoted``     in the warehouse (a ``promotions`` row), no later failure
``failed``       its latest failure is newer than its latest promotion
==============  ==================================================================
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import click
from tabulate import tabulate

from orchestration.cli.warehouse import use_warehouse

STATES = ("unregistered", "registered", "queued", "running", "materialised", "promoted", "failed")
RECENT_RUNS = 5000
_IN_FLIGHT = {"QUEUED": "queued", "NOT_STARTED": "queued", "STARTING": "queued", "STARTED": "running"}


@dataclass(frozen=True)
class BatchStatus:
    batch_key: str
    creators: int
    state: str
    last_promoted: datetime | None
    last_failed: datetime | None
    last_run: str | None  # "<status> <run id prefix>"


def batch_state(
    *,
    registered: bool,
    materialised: bool,
    last_promoted: datetime | None,
    last_failed: datetime | None,
    latest_run_status: str | None,
) -> str:
    """One state per batch; an in-flight run wins, then the newer of failure and promotion."""
    if latest_run_status in _IN_FLIGHT:
        return _IN_FLIGHT[latest_run_status]
    if last_failed is not None and (last_promoted is None or last_failed > last_promoted):
        return "failed"
    if last_promoted is not None:
        return "promoted"
    if latest_run_status == "FAILURE":  # failed before the failure sensor recorded it
        return "failed"
    if materialised:
        return "materialised"
    return "registered" if registered else "unregistered"


def collect_status(engine, instance) -> list[BatchStatus]:
    import dagster as dg

    from assets.common.partitions import CREATOR_BATCHES
    from assets.sources.assets import RAW_PROFILES
    from orchestration.operations import batch_states

    registered = set(instance.get_dynamic_partitions(CREATOR_BATCHES))
    materialised = instance.get_materialized_partitions(RAW_PROFILES)
    latest_runs: dict[str, dg.DagsterRun] = {}
    # Newest first, so the first run seen for a batch is its latest (older runs: warehouse facts only).
    for record in instance.get_run_records(limit=RECENT_RUNS):
        key = record.dagster_run.tags.get("dagster/partition")
        if key and key not in latest_runs:
            latest_runs[key] = record.dagster_run
    rows = []
    for batch_key, creators, last_promoted, last_failed in batch_states(engine):
        run = latest_runs.get(batch_key)
        run_status = run.status.value if run is not None else None
        rows.append(
            BatchStatus(
                batch_key=batch_key,
                creators=int(creators),
                state=batch_state(
                    registered=batch_key in registered,
                    materialised=batch_key in materialised,
                    last_promoted=last_promoted,
                    last_failed=last_failed,
                    latest_run_status=run_status,
                ),
                last_promoted=last_promoted,
                last_failed=last_failed,
                last_run=f"{run_status} {run.run_id[:8]}" if run is not None else None,
            )
        )
    return rows


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def render_status(rows: list[BatchStatus], failures: list[tuple], *, show_batches: int = 50) -> str:
    counts = Counter(r.state for r in rows)
    parts = [
        "== batches by state ==",
        tabulate([(s, counts[s]) for s in STATES if counts[s]], headers=["state", "batches"]) if rows else "(none)",
    ]
    if rows:
        shown = sorted(rows, key=lambda r: (r.state != "failed", r.batch_key))[:show_batches]
        parts += [
            f"\n== batches ({len(shown)} of {len(rows)}, failed first) ==",
            tabulate(
                [(r.batch_key, r.creators, r.state, _when(r.last_promoted), _when(r.last_failed), r.last_run or "")
                 for r in shown],
                headers=["batch", "creators", "state", "last promoted", "last failed", "latest run"],
            ),
        ]
    parts.append("\n== last failures ==")
    if failures:
        parts.append(
            tabulate(
                [(_when(at), batch or "-", job, steps or "-", cls or "", (err or "").splitlines()[0][:80])
                 for at, batch, job, steps, cls, err in failures],
                headers=["failed at", "batch", "job", "steps", "error", "message"],
            )
        )
    else:
        parts.append("(none)")
    return "\n".join(parts)


@click.command()
@click.option("--failures", "n_failures", type=int, default=10, show_default=True, help="Last failures shown.")
@click.option("--batches", "n_batches", type=int, default=50, show_default=True, help="Batches listed.")
@click.pass_context
def status(ctx: click.Context, n_failures: int, n_batches: int) -> None:
    """Batches by state (warehouse + Dagster instance) and the last failed runs."""
    from orchestration.operations import last_failures
    from orchestration.runs import local_instance, reap_dead_runs
    from resources.warehouse import engine_from_settings

    settings = ctx.obj["settings"]
    use_warehouse(ctx)
    engine = engine_from_settings(settings)
    instance = ctx.obj.get("instance") or local_instance(settings)
    for dead in reap_dead_runs(instance):
        click.echo(f"run {dead.run_id[:8]} ({dead.partition}): its process (pid {dead.pid}) is gone; marked failed")
    click.echo(render_status(collect_status(engine, instance), last_failures(engine, n_failures),
                             show_batches=n_batches))
