"""``creatorlens ui``: the Dagster UI and daemon (``dagster dev``) on the local instance and warehouse.

It owns what it starts: the embedded warehouse (unless one already runs) and ``dagster dev`` in
a process group of its own. One Ctrl-C (or SIGTERM) asks ``dagster dev`` to shut down, gives
it ``--grace`` seconds, then ends whatever of its group is left (webserver, daemon, code
servers, run workers), and stops the warehouse it started, so nothing keeps running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click

from creatorlens.settings import REPO_ROOT
from orchestration.cli.warehouse import warehouse_session


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _default_signals() -> None:
    """In the child: Ctrl-C and SIGTERM act again, even when this command was started in the
    background (a shell starts background jobs with SIGINT ignored, which Python then keeps)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def _end_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGINT to the group, as a terminal's Ctrl-C does (Dagster's graceful shutdown), then SIGTERM, then SIGKILL."""
    for sig, wait_s in ((signal.SIGINT, grace_s * 0.6), (signal.SIGTERM, grace_s * 0.4), (signal.SIGKILL, 2.0)):
        if proc.poll() is not None and not _group_alive(proc.pid):
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None and not _group_alive(proc.pid):
                return
            time.sleep(0.1)


@click.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--grace", default=7.0, show_default=True, type=float,
              help="Seconds Dagster gets to shut down after Ctrl-C before the rest is ended.")
@click.option("-w", "--workspace", type=click.Path(path_type=Path, exists=True),
              default=REPO_ROOT / "workspace.yaml", show_default=True)
@click.pass_context
def ui(ctx: click.Context, host: str, port: int, grace: float, workspace: Path) -> None:
    """Start the Dagster UI and daemon (`dagster dev`) on the local instance and warehouse."""
    from orchestration.runs import prepare_dagster_home

    settings = ctx.obj["settings"]
    home = prepare_dagster_home(settings)
    env = {**os.environ, "DAGSTER_HOME": str(home), "CREATORLENS_STATE_DIR": str(settings.state_dir)}
    dagster = Path(sys.executable).with_name("dagster")
    command = [str(dagster), "dev", "-w", str(workspace), "-h", host, "-p", str(port)]
    with warehouse_session(settings, quiet=False):
        proc = subprocess.Popen(command, env=env, start_new_session=True, preexec_fn=_default_signals)
        stopping = False

        def _stop(signum, frame) -> None:  # noqa: ARG001 - signal handler signature
            nonlocal stopping
            stopping = True

        previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        click.echo(f"Dagster UI on http://{host}:{port} (DAGSTER_HOME={home}); Ctrl-C stops it and the warehouse.")
        try:
            while proc.poll() is None and not stopping:
                time.sleep(0.2)
        finally:
            started = time.monotonic()
            _end_group(proc, grace)
            for s, handler in previous.items():
                signal.signal(s, handler)
            click.echo(f"Dagster stopped in {time.monotonic() - started:.1f}s", err=True)
    if not stopping and proc.returncode:
        sys.exit(proc.returncode)
