"""Several GPUs on one box: every concurrent GPU step gets a device of its own.

The ``gpu`` pool lets N steps run at once on a box with N GPUs, but each of them asking for
``cuda`` would land on ``cuda:0``. Here a process *claims* one device of the visible list and holds
it until it releases it or exits:

* the list is explicit (``CREATORLENS_DEVICE=cuda:0,2`` → ordinals 0 and 2), or what CUDA shows
  this process (``CUDA_VISIBLE_DEVICES``, which Ray also sets for an actor with ``num_gpus``: one
  visible device means nothing to claim), or the count torch reports;
* a claim is an OS file lock per *physical* device (``<lock_dir>/gpu-<id>.lock``, fasteners'
  inter-process lock) plus an in-process set, because a POSIX record lock does not exclude two
  threads of one process. The kernel drops the lock when the process dies, even by SIGKILL, so a
  crashed step never strands a GPU;
* the lock directory must be shared by every process that may claim: ``<tmp>/creatorlens-gpu``,
  Python's temp folder (``TMPDIR``: a volume every container of the box mounts), or ``lock_dir``.

Pure logic: no torch needed to test it (give it a stand-in list), no orchestration imports.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fasteners

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """One device as this process addresses it (``ordinal``: ``cuda:N``) and as the box names it (``physical``)."""

    ordinal: int
    physical: str


class NoFreeDevice(TimeoutError):
    """Every device of the list is claimed and none came free in time."""


def parse_cuda_visible(value: str) -> list[str]:
    """The ids in ``CUDA_VISIBLE_DEVICES``, in order; CUDA stops at the first invalid entry (``-1`` hides all)."""
    ids: list[str] = []
    for raw in value.split(","):
        item = raw.strip()
        if not item or item.startswith("-"):
            break
        ids.append(item)
    return ids


def visible_devices(explicit: Sequence[int] | None = None, *, count: int | None = None,
                    environ: Mapping[str, str] | None = None) -> list[Slot]:
    """The devices this process may claim, best guess of their physical ids included.

    ``explicit`` lists ordinals (as this process numbers them); otherwise ``CUDA_VISIBLE_DEVICES``
    decides when set, else ``count`` devices ``0..count-1``.
    """
    value = cuda_visible_devices() if environ is None else environ.get("CUDA_VISIBLE_DEVICES")
    visible = parse_cuda_visible(value) if value is not None else None
    if explicit is not None:
        ordinals = list(dict.fromkeys(int(i) for i in explicit))
        if any(i < 0 for i in ordinals):
            raise ValueError(f"device ordinals must be >= 0, got {list(explicit)}")
        if visible is not None and any(i >= len(visible) for i in ordinals):
            raise ValueError(f"devices {ordinals} asked for, but CUDA_VISIBLE_DEVICES shows only {len(visible)}")
        return [Slot(i, visible[i] if visible is not None else str(i)) for i in ordinals]
    if visible is not None:
        return [Slot(i, dev) for i, dev in enumerate(visible)]
    return [Slot(i, str(i)) for i in range(count or 0)]


def cuda_visible_devices() -> str | None:
    """``CUDA_VISIBLE_DEVICES`` as the CUDA runtime (and torch) sees it: the runtime's own contract
    with the process, not a project setting, so it is the one variable model code reads itself
    (tests/unit/test_models.py allows exactly this function)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def default_lock_dir() -> Path:
    """Where the per-device lock files live: one folder per host, in its temp directory (every
    process on the box must see the same files; a caller may pass another ``lock_dir``)."""
    return Path(tempfile.gettempdir()) / "creatorlens-gpu"


@dataclass
class Claim:
    """A held device; :meth:`release` (or leaving the ``with``) gives it back."""

    slot: Slot
    pool: DevicePool
    pid: int = field(default_factory=os.getpid)
    _lock: fasteners.InterProcessLock | None = None
    released: bool = False
    shared: bool = False  # not claimed: every device was taken, this process shares one (no lock held)

    @property
    def ordinal(self) -> int:
        return self.slot.ordinal

    def release(self) -> None:
        self.pool._release(self)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class DevicePool:
    """Claims over one list of devices, exclusive across the threads and the processes of this box."""

    _held_lock = threading.Lock()
    _held: set[tuple[str, str]] = set()  # (lock dir, physical id) held by this process, across pools

    def __init__(self, slots: Sequence[Slot], lock_dir: Path | str | None = None, poll_s: float = 0.05) -> None:
        if not slots:
            raise ValueError("no devices to claim")
        self.slots = list(slots)
        self.lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
        self.poll_s = poll_s

    def _key(self, slot: Slot) -> tuple[str, str]:
        return (str(self.lock_dir), slot.physical)

    def try_claim(self) -> Claim | None:
        """A free device now, or None."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        with self._held_lock:
            for slot in self.slots:
                key = self._key(slot)
                if key in self._held:
                    continue
                lock = fasteners.InterProcessLock(str(self.lock_dir / f"gpu-{slot.physical}.lock"))
                if lock.acquire(blocking=False):
                    self._held.add(key)
                    return Claim(slot, self, _lock=lock)
        return None

    def claim(self, timeout: float | None = None) -> Claim:
        """The first free device, waiting up to ``timeout`` seconds (None: forever) for one to come free."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            claim = self.try_claim()
            if claim is not None:
                return claim
            if deadline is not None and time.monotonic() >= deadline:
                raise NoFreeDevice(f"all {len(self.slots)} devices {[s.physical for s in self.slots]} are claimed "
                                   f"(locks in {self.lock_dir}); waited {timeout}s")
            time.sleep(self.poll_s)

    def _release(self, claim: Claim) -> None:
        with self._held_lock:
            if claim.released:
                return
            claim.released = True
            if claim.shared or claim.pid != os.getpid():  # no lock of ours (shared, or a forked copy)
                return
            self._held.discard(self._key(claim.slot))
            if claim._lock is not None:
                claim._lock.release()


_PROCESS_CLAIMS: dict[tuple[tuple[Slot, ...], str], Claim] = {}
_PROCESS_LOCK = threading.Lock()


def _forget_after_fork() -> None:
    # A forked child inherits the bookkeeping but not the locks (POSIX record locks are per process).
    DevicePool._held.clear()
    _PROCESS_CLAIMS.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def process_device(slots: Sequence[Slot], lock_dir: Path | str | None = None, timeout: float = 5.0) -> Slot:
    """This process's device of ``slots``: claimed on the first call, held until the process exits.

    One run worker (in-process executor) or one step process (multiprocess executor) is one
    claimant, so each of N concurrent GPU steps of the box gets its own device. A single slot
    is returned without a claim (nothing to share out: one GPU, or Ray already chose it).

    When every device stays claimed for ``timeout`` seconds (more model-loading processes than
    GPUs: the app, a CLI beside the runs), this process shares one, chosen by its pid, and says so
    in the log: a shared GPU is slower, a step waiting forever for one is worse.
    """
    slots = list(slots)
    if len(slots) == 1:
        return slots[0]
    key = (tuple(slots), str(Path(lock_dir) if lock_dir is not None else default_lock_dir()))
    with _PROCESS_LOCK:
        held = _PROCESS_CLAIMS.get(key)
        if held is None or held.pid != os.getpid() or held.released:
            try:
                held = DevicePool(slots, key[1]).claim(timeout=timeout)
            except NoFreeDevice as exc:
                shared = slots[os.getpid() % len(slots)]
                log.warning("%s; sharing %s (cuda:%d)", exc, shared.physical, shared.ordinal)
                held = Claim(shared, DevicePool(slots, key[1]), shared=True)
            _PROCESS_CLAIMS[key] = held
        return held.slot
