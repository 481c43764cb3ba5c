"""``creatorlens warehouse start|stop|status`` and the warehouse session of every other command.

The embedded PostgreSQL of a state folder is started here and nowhere else (see
:mod:`resources.pgserver`). A command that needs it (``demo``, ``run``, ``batch``, ``app
serve`` …) holds a :func:`warehouse_session`: it uses the running server, or starts one and
stops it when the command ends, so a command leaves behind what it found.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from creatorlens.settings import Settings
from resources import pgserver
from resources.warehouse import dispose_engines


@contextmanager
def warehouse_session(settings: Settings, *, quiet: bool = True) -> Iterator[None]:
    """The embedded warehouse is up for the block: started (and stopped after) if it was not running.

    A server whose recorded owner is gone (a killed ``make ui``) is adopted: this session stops it.
    With ``DATABASE_URL`` set there is nothing to start.
    """
    if not settings.is_embedded:
        yield
        return
    pgdata = settings.resolved_pgdata
    status, started = pgserver.start(pgdata)
    if started and not quiet:
        click.echo(f"started the embedded warehouse ({status.describe()})", err=True)
    try:
        yield
    finally:
        if pgserver.owned_by_me(pgdata):
            dispose_engines()
            pgserver.stop(pgdata)


def use_warehouse(ctx: click.Context) -> None:
    """Make sure the warehouse is up until the whole command ends (see :func:`warehouse_session`)."""
    root = ctx.find_root()
    if not root.obj.get("warehouse_session"):
        root.with_resource(warehouse_session(root.obj["settings"]))
        root.obj["warehouse_session"] = True


def _embedded(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj["settings"]
    if not settings.is_embedded:
        raise click.ClickException("DATABASE_URL is set: the warehouse is an external server, not started here")
    return settings


@click.group("warehouse")
def warehouse_group() -> None:
    """Start, stop or inspect the embedded PostgreSQL of the state folder (not used with DATABASE_URL)."""


@warehouse_group.command("start")
@click.pass_context
def start(ctx: click.Context) -> None:
    """Start it (or reuse the one running); it keeps running until `creatorlens warehouse stop`."""
    status, started = pgserver.start(_embedded(ctx).resolved_pgdata, keep=True)
    click.echo(("started, " if started else "already ") + status.describe())


@warehouse_group.command("stop")
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop it (fast shutdown: open sessions are disconnected)."""
    pgdata = _embedded(ctx).resolved_pgdata
    click.echo(f"stopped {pgdata}" if pgserver.stop(pgdata) else f"not running: {pgdata}")


@warehouse_group.command("status")
@click.pass_context
def status(ctx: click.Context) -> None:
    """Say whether it runs, its pid and socket, and who started it. Exit code 3 when it is not running."""
    st = pgserver.status(_embedded(ctx).resolved_pgdata)
    click.echo(st.describe())
    if not st.running:
        ctx.exit(3)
