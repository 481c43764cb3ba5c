"""``creatorlens app``: run the review and search app, manage its users and API tokens."""

from __future__ import annotations

import signal
import sys

import click

from orchestration.cli.warehouse import use_warehouse


@click.group("app")
def app_group() -> None:
    """The review and search web app (FastAPI) over the same warehouse the pipeline fills."""


def _engine(ctx: click.Context):
    """The warehouse engine, with the embedded server up until the command ends (``app serve``: until Ctrl-C)."""
    from resources.warehouse import engine_from_settings

    use_warehouse(ctx)
    return engine_from_settings(ctx.obj["settings"])


def load_query_embedder(settings):
    """The image embedder that embedded the warehouse (for semantic search), or None with the reason."""
    from gpu_ops.registry import WeightsMissing
    from resources.models import ModelRegistry

    try:
        return ModelRegistry.from_settings(settings).load("image_embedder"), None
    except WeightsMissing as exc:
        return None, str(exc)


@app_group.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (0.0.0.0: all).")
@click.option("--port", default=8000, show_default=True, type=int, envvar="CREATORLENS_APP_PORT",
              help="Port (or CREATORLENS_APP_PORT).")
@click.option("--secure-cookies", is_flag=True, help="Mark the session cookie Secure (behind HTTPS).")
@click.option("--no-semantic", is_flag=True, help="Do not load the image model: keyword search only, less memory.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, secure_cookies: bool, no_semantic: bool) -> None:
    """Start the app over the warehouse the pipeline fills (OpenAPI docs at /docs).

    Semantic search embeds queries with the same image model the pipeline used, loaded locally from
    the model cache; without its weights the app still serves keyword search and says why. On first
    start, with no users yet, a reviewer `admin` is created and its password printed once.
    """
    import socket

    import uvicorn

    from app.auth import ensure_first_user
    from app.main import create_app

    settings = ctx.obj["settings"]
    # Bind first: a port in use must fail before the first user is created, or the once-shown
    # admin password would be printed for a server that never started.
    try:
        listener = socket.create_server((host, port), reuse_port=False)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc} (use --port)") from None
    listener.close()
    engine = _engine(ctx)
    with engine.begin() as conn:
        password = ensure_first_user(conn)
    if password:
        click.echo(f"created reviewer 'admin' with password {password}  (shown once; add users with "
                   "`creatorlens app user add NAME --role reviewer|viewer`)")
    embedder, why = (None, "--no-semantic") if no_semantic else load_query_embedder(settings)
    if embedder is None:
        click.echo(f"semantic search off: {why}", err=True)
    else:
        click.echo(f"semantic search with {embedder.version} on {embedder.device.torch}")
    click.echo(f"creatorlens app on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    application = create_app(engine, settings.blob_root, secure_cookies=secure_cookies, embedder=embedder,
                             ef_search=settings.hnsw_ef_search,
                             gin_fuzzy_search_limit=settings.search_gin_fuzzy_limit)
    # uvicorn re-raises the SIGTERM it caught once it has shut down; as SystemExit it lets this
    # command stop the warehouse it started instead of dying with the signal and leaving it running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    uvicorn.run(application, host=host, port=port, log_level="info")


@app_group.group("user")
def user_group() -> None:
    """Users of the app: viewers read, reviewers also write."""


@user_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["viewer", "reviewer", "admin"]), default=None,
              help="Role (a new user: viewer unless given; an existing one keeps its role unless given). "
                   "admin: a reviewer who may also erase creators.")
@click.option("--creator", default=None, metavar="CREATOR",
              help="Make it the creator account of this creator (sees only their images and tags; can dispute).")
@click.password_option(envvar="CREATORLENS_APP_PASSWORD", help="Password (prompted; or CREATORLENS_APP_PASSWORD).")
@click.pass_context
def add_user(ctx: click.Context, username: str, role: str | None, password: str, creator: str | None) -> None:
    """Create a user (or reset an existing one's password, and role with --role; a reset ends the
    user's sessions and API tokens)."""
    import re

    from sqlalchemy import exc as sa_exc

    from app.auth import create_creator_user, create_user

    if not re.fullmatch(r"[a-z0-9_.-]{2,40}", username):
        raise click.BadParameter("2-40 lowercase letters, digits, '_', '.' or '-'", param_hint="USERNAME")
    try:
        with _engine(ctx).begin() as conn:
            if creator is not None:
                if role is not None:
                    raise ValueError("--creator makes a creator account: leave --role out")
                create_creator_user(conn, username, password, creator.lstrip("@").lower())
            else:
                create_user(conn, username, password, role)
            role = conn.exec_driver_sql("SELECT role FROM app_users WHERE username = %(u)s", {"u": username}).scalar_one()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    except sa_exc.DBAPIError as exc:  # never the statement or its parameters (the password hash)
        raise click.ClickException(f"could not save user {username}: {type(exc.orig).__name__}") from None
    click.echo(f"user {username} ({role}) ready")


@user_group.command("token")
@click.argument("username")
@click.option("--label", default="cli", show_default=True)
@click.option("--days", default=90, show_default=True, type=click.IntRange(1, 3650), help="Days until it expires.")
@click.pass_context
def token(ctx: click.Context, username: str, label: str, days: int) -> None:
    """Print a new API token for USERNAME (shown once; only its hash is stored). It expires after
    --days; list tokens with `user tokens`, revoke one with `user revoke-token ID`."""
    from datetime import timedelta

    from sqlalchemy import exc as sa_exc

    from app.auth import issue_api_token

    try:
        with _engine(ctx).begin() as conn:
            click.echo(issue_api_token(conn, username, label, ttl=timedelta(days=days)))
    except sa_exc.NoResultFound:
        raise click.ClickException(f"no user {username!r} (add one with `creatorlens app user add`)") from None


@user_group.command("tokens")
@click.argument("username", required=False)
@click.pass_context
def tokens(ctx: click.Context, username: str | None) -> None:
    """List API tokens (of USERNAME, or everyone's): id, user, label, dates. Never the secret."""
    from app.auth import list_api_tokens

    with _engine(ctx).begin() as conn:
        rows = list_api_tokens(conn, username)
    if not rows:
        click.echo("no API tokens")
    when = lambda t: t.strftime("%Y-%m-%d %H:%M") if t else "-"  # noqa: E731
    for r in rows:
        state = "EXPIRED" if r["expired"] else f"expires {when(r['expires_at'])}"
        click.echo(f"{r['token_id']:>6}  {r['username']} ({r['role']})  {r['label'] or '-'}  "
                   f"created {when(r['created_at'])}  last used {when(r['last_used_at'])}  {state}")


@user_group.command("revoke-token")
@click.argument("token_id", type=int)
@click.pass_context
def revoke_token(ctx: click.Context, token_id: int) -> None:
    """Revoke API token TOKEN_ID (see `user tokens`): it stops working at once."""
    from app.auth import revoke_api_token

    with _engine(ctx).begin() as conn:
        if not revoke_api_token(conn, token_id):
            raise click.ClickException(f"no API token {token_id} (see `creatorlens app user tokens`)")
    click.echo(f"API token {token_id} revoked")
