"""``creatorlens forget USERNAME``: erase a creator everywhere and keep them from coming back.

The work is :func:`resources.erasure.forget` (the app's ``DELETE /api/creators/{username}`` calls
the same function): every warehouse row that refers to the creator, their blobs and thumbnails,
their cached API/LLM data in the state folder, and a tombstone (platform + SHA-256 of the
username) that batch discovery and the new-creator sensor honour. It prints what it removed.
"""

from __future__ import annotations

import getpass
import json

import click

from creatorlens.fields import PLATFORM


@click.command("forget")
@click.argument("username")
@click.option("--platform", default=PLATFORM, show_default=True, help="Platform of the account.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def forget_command(ctx: click.Context, username: str, platform: str, yes: bool, as_json: bool) -> None:
    """Erase USERNAME's rows, blobs and cached data; record a tombstone so no source re-ingests them."""
    from orchestration.cli.warehouse import use_warehouse
    from resources.erasure import forget, normalise
    from resources.warehouse import engine_from_settings

    settings = ctx.obj["settings"]
    try:
        name = normalise(username)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not yes:
        click.confirm(f"Erase {platform}:{name} from the warehouse, the blobs and {settings.state_dir}? "
                      "This cannot be undone", abort=True)
    use_warehouse(ctx)
    report = forget(engine_from_settings(settings), name, platform=platform, state_dir=settings.state_dir,
                    blob_root=settings.blob_root, parquet_root=settings.parquet_root,
                    erased_by=f"cli:{getpass.getuser()}")
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, sort_keys=True))
    else:
        click.echo(f"forgot {platform}:{name}: {report.total_rows} rows, {len(report.blobs)} blobs, "
                   f"{len(report.files)} state files")
        for line in report.lines():
            click.echo(line)
