"""``creatorlens`` command line: set up the local state, batch creators, run the pipeline, report.

Every command reads the same :class:`~creatorlens.settings.Settings` (environment variables);
options override them for one invocation.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

import click
from pydantic import ValidationError

from creatorlens.logs import configure_logging
from creatorlens.settings import Settings, get_settings
from orchestration.cli.status import status
from orchestration.cli.warehouse import use_warehouse, warehouse_group

DEMO_BATCH_SIZE = 6


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def get_instance(ctx: click.Context):
    """The Dagster instance at DAGSTER_HOME, opened once per command."""
    from orchestration.runs import local_instance

    if "instance" not in ctx.obj:
        ctx.obj["instance"] = local_instance(_settings(ctx))
    return ctx.obj["instance"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--state-dir", type=click.Path(path_type=Path), help="State folder (default: .creatorlens).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, state_dir: Path | None, verbose: bool) -> None:
    """creatorlens: raw creator data → PostgreSQL facts, orchestrated by Dagster.

    Without DATABASE_URL an embedded PostgreSQL (pgvector) runs under the state folder.
    """
    overrides = {"state_dir": state_dir.resolve()} if state_dir else {}
    try:
        settings = get_settings(**overrides)
    except ValidationError as exc:  # a bad environment value: say which, without a traceback
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise click.ClickException(f"invalid setting (environment variable CREATORLENS_<NAME>): {problems}") from None
    ctx.obj = {"settings": settings}
    configure_logging(logging.DEBUG if verbose else logging.WARNING, ctx.obj["settings"].log_format)


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> None:
    """Create the state folder, DAGSTER_HOME and the migrated warehouse."""
    from orchestration.runs import prepare_dagster_home
    from resources.warehouse import engine_from_settings

    s = _settings(ctx)
    use_warehouse(ctx)
    home = prepare_dagster_home(s)
    engine = engine_from_settings(s)
    where = f"embedded PostgreSQL at {s.resolved_pgdata}" if s.is_embedded else engine.url.render_as_string()
    click.echo(f"warehouse: {where}\nDAGSTER_HOME: {home}")


@cli.command("sample-data")
@click.option("--force", is_flag=True, help="Rebuild even if the sample folder exists.")
@click.pass_context
def sample_data(ctx: click.Context, force: bool) -> None:
    """Generate the bundled sample creators (photos from scikit-image, CSV, JSON dumps)."""
    from assets.sources.sample_data import build_sample_data

    root = _settings(ctx).sample_root
    if force and root.exists():
        shutil.rmtree(root)
    manifest = build_sample_data(root)
    click.echo(f"sample data in {manifest.root}: {manifest.n_creators_expected} creators expected")


@cli.command()
@click.option("--batch-size", type=int, help="Creators per new batch (default: BATCH_SIZE or 100).")
@click.pass_context
def batch(ctx: click.Context, batch_size: int | None) -> None:
    """Assign not-yet-batched creators to new batches and register them as partitions."""
    from orchestration.runs import discover_batches

    s = _settings(ctx)
    use_warehouse(ctx)
    d = discover_batches(s, get_instance(ctx), batch_size)
    click.echo(
        f"{len(d.snapshot.creators)} creators in sources, {len(d.snapshot.rejects)} rejected records; "
        f"{d.assignment.new_creators} newly batched into {len(d.assignment.new_batches)} batches; "
        f"{len(d.registered)} partitions registered; {len(d.assignment.all_batches)} batches in total"
    )


def run_batches(ctx: click.Context, plans: list, log_level: str = "WARNING") -> dict[str, bool]:
    """Materialise the ingest job (or the planned assets of it) per batch against the real instance."""
    from orchestration.definitions import build_definitions
    from orchestration.jobs import INGEST_JOB
    from orchestration.runs import ensure_pool_limits, job_pools, materialize_batch, reap_dead_runs

    use_warehouse(ctx)
    instance = get_instance(ctx)
    for dead in reap_dead_runs(instance):  # a killed earlier run must not hold a pool slot forever
        click.echo(f"run {dead.run_id[:8]} ({dead.partition}): its process (pid {dead.pid}) is gone; marked failed")
    job = build_definitions(_settings(ctx)).resolve_job_def(INGEST_JOB)
    ensure_pool_limits(instance, job_pools(job))  # before any run claims a slot (see its docstring)
    outcome: dict[str, bool] = {}
    for i, plan in enumerate(plans, 1):
        started = time.perf_counter()
        what = "" if plan.assets is None else f" ({len(plan.assets)} assets)"
        click.echo(f"▶ [{i}/{len(plans)}] {INGEST_JOB} [{plan.partition}]{what}: {plan.reason} …", nl=False)
        run = materialize_batch(job, instance, plan.partition, log_level=log_level,
                                log_format=_settings(ctx).log_format, assets=plan.assets)
        outcome[plan.partition] = run.success and run.promoted
        status = "promoted" if run.promoted else "NOT promoted"
        extra = f" — failed checks: {', '.join(run.failed_checks)}" if run.failed_checks else ""
        extra += f" — warnings: {', '.join(run.warnings)}" if run.warnings else ""
        click.echo(f" {status} in {time.perf_counter() - started:.1f}s (run {run.run_id[:8]}){extra}")
    return outcome


def plan_runs(ctx: click.Context, partitions: list[str], everything: bool) -> list:
    """Explicit partitions and ``--all`` run as asked; otherwise only what is missing or stale."""
    from orchestration.definitions import build_definitions
    from orchestration.runs import BatchPlan, plan_batches
    from resources.warehouse import engine_from_settings

    if everything:
        return [BatchPlan(p, "--all") for p in partitions]
    use_warehouse(ctx)
    graph = build_definitions(_settings(ctx)).resolve_asset_graph()
    plans = plan_batches(get_instance(ctx), graph, engine_from_settings(_settings(ctx)), partitions)
    click.echo(f"{len(partitions) - len(plans)} of {len(partitions)} batches up to date; running {len(plans)}")
    return plans


@cli.command()
@click.option("--partition", "partitions", multiple=True, help="Batch key(s) to run as they are (default: what is "
              "missing or stale).")
@click.option("--all", "everything", is_flag=True, help="Re-run every registered batch, up to date or not.")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Dagster console log level.")
@click.pass_context
def run(ctx: click.Context, partitions: tuple[str, ...], everything: bool, log_level: str) -> None:
    """Run the ingest job for the batches that need it (in this process, recorded in the Dagster instance).

    Without options: batches never promoted, batches with transiently failed images, and the
    stale assets of batches whose stage code version changed. --partition runs the named
    batches in full; --all re-runs everything.
    """
    from assets.common.partitions import CREATOR_BATCHES
    from orchestration.runs import BatchPlan

    use_warehouse(ctx)
    if partitions:
        plans = [BatchPlan(p, "requested") for p in partitions]
    else:
        keys = list(get_instance(ctx).get_dynamic_partitions(CREATOR_BATCHES))
        if not keys:
            raise click.ClickException("no batches registered yet: run `creatorlens batch` first")
        plans = plan_runs(ctx, keys, everything)
    outcome = run_batches(ctx, plans, log_level)
    if not all(outcome.values()):
        sys.exit(1)


@cli.command()
@click.pass_context
def summary(ctx: click.Context) -> None:
    """Rows per table, duplicates found, and failures with their reasons."""
    from orchestration.cli.report import stage_skips, warehouse_summary
    from resources.warehouse import engine_from_settings

    use_warehouse(ctx)
    s = _settings(ctx)
    click.echo(warehouse_summary(engine_from_settings(s), skips=stage_skips(s)))


@cli.command()
@click.option("--batch-size", type=int, default=DEMO_BATCH_SIZE, show_default=True,
              help="Small batches so the demo shows several partitions and cross-batch duplicates.")
@click.pass_context
def demo(ctx: click.Context, batch_size: int) -> None:
    """Sample data → batches → every asset for every batch → summary (embedded defaults)."""
    s = _settings(ctx)
    use_warehouse(ctx)
    ctx.invoke(sample_data)
    from orchestration.runs import discover_batches

    d = discover_batches(s, get_instance(ctx), batch_size)
    click.echo(f"{len(d.snapshot.creators)} creators, {len(d.snapshot.rejects)} rejected source records, "
               f"{len(d.assignment.all_batches)} batches")
    outcome = run_batches(ctx, plan_runs(ctx, d.assignment.all_batches, everything=False))
    ctx.invoke(summary)
    click.echo(f"\nDagster UI: `make ui` (DAGSTER_HOME={s.resolved_dagster_home})")
    if not all(outcome.values()):
        sys.exit(1)


def _register_groups() -> None:
    from orchestration.cli.app import app_group
    from orchestration.cli.doctor import doctor
    from orchestration.cli.enrich import enrich_command
    from orchestration.cli.fetch import fetch_command
    from orchestration.cli.forget import forget_command
    from orchestration.cli.models import models
    from orchestration.cli.ui import ui

    cli.add_command(models)
    cli.add_command(app_group)
    cli.add_command(status)
    cli.add_command(enrich_command)
    cli.add_command(fetch_command)
    cli.add_command(warehouse_group)
    cli.add_command(ui)
    cli.add_command(doctor)
    cli.add_command(forget_command)


_register_groups()


def main() -> None:
    cli(prog_name="creatorlens")


if __name__ == "__main__":
    main()
