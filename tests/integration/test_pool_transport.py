"""The worker pool hands numeric arrays to its workers through one shared-memory block, not pickles.

What must hold: each worker reads exactly the bytes the caller passed (any shape, dtype or memory
layout, batches that grow the block), read-only (a backend that writes into its input would change
the caller's image: in the pool it fails, the caller's array untouched); inputs that are not numeric
arrays still travel pickled; ``/dev/shm`` without room falls back to pickling with a warning; and
the block is unlinked when the pool closes, when a worker dies, and when the parent is killed with
``kill -9`` (the multiprocessing resource tracker's job).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from gpu_ops import pool as pool_module
from gpu_ops.pool import PooledModel
from tests.support.pool_probe import probe

ROOT = Path(__file__).resolve().parents[2]
SHM = Path("/dev/shm")


def _digest(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


def _segments() -> set[str]:
    """Shared-memory blocks now in /dev/shm (multiprocessing names them ``psm_…``; its semaphores
    ``sem.…`` come and go with every pool and are not ours to count)."""
    return {p.name for p in SHM.glob("psm_*")}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"  # a zombie has ended


def _inputs(rng: np.random.Generator) -> list[np.ndarray]:
    photo = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    return [
        photo,
        photo[:, ::-1],  # a mirrored view: not contiguous
        photo[10:50, 20:90],  # a crop: a strided view into the photo
        rng.random((33, 7), dtype=np.float32),
        rng.integers(-5, 5, (5, 5, 5), dtype=np.int16),
        np.zeros((0, 3), dtype=np.uint8),  # empty
        rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
    ]


@pytest.fixture
def pooled():
    with PooledModel(probe(), 2).load() as pool:
        yield pool


def test_workers_read_exactly_the_callers_arrays_read_only(pooled) -> None:
    before = _segments()
    items = _inputs(np.random.default_rng(0))
    out = pooled.predict(items)
    assert [o[:3] for o in out] == [(a.shape, a.dtype.str, _digest(a)) for a in items]
    assert not any(o[3] for o in out), "workers see the caller's data read-only"
    assert {o[4] for o in out} - {os.getpid()}, "the work ran in the pool's processes"
    assert pooled.shared_fallbacks == 0
    block = pooled._block.block
    assert block is not None and block.name in _segments() - before


def test_a_bigger_batch_grows_the_block_and_workers_follow(pooled) -> None:
    rng = np.random.default_rng(1)
    small = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(4)]
    pooled.predict(small)
    first = pooled._block.block.name
    for n, side in ((6, 300), (10, 600), (3, 20)):  # grows twice, then fits in place
        items = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(n)]
        assert [o[2] for o in pooled.predict(items)] == [_digest(a) for a in items]
    assert pooled._block.block.name != first
    assert first not in _segments(), "the outgrown block is unlinked"


def test_a_backend_writing_into_its_input_fails_in_the_pool_and_the_caller_keeps_its_image() -> None:
    image = np.full((40, 40, 3), 7, dtype=np.uint8)
    with PooledModel(probe(mutate=True), 2).load() as pool:
        with pytest.raises(ValueError, match="read-only"):
            pool.predict([image, image.copy()])
    assert (image == 7).all()


def test_inputs_that_are_not_numeric_arrays_travel_pickled(pooled) -> None:
    items = [np.arange(6, dtype=np.uint8), np.array(["a", "b"], dtype=object)]
    out = pooled.predict(items)
    assert out[0][2] == _digest(items[0]) and out[0][3], "pickled: the worker owns a writeable copy"
    assert pooled._block.block is None, "nothing was put in shared memory"
    assert pooled.shared_fallbacks == 0  # not a fallback: such inputs are never shared


def test_no_room_in_shared_memory_falls_back_to_pickling_with_a_warning(pooled, monkeypatch, caplog) -> None:
    def full(fd, offset, size):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pool_module.os, "posix_fallocate", full)
    before = _segments()
    items = _inputs(np.random.default_rng(2))
    with caplog.at_level("WARNING", logger="gpu_ops.pool"):
        out = pooled.predict(items)
        pooled.predict(items)
    assert [o[2] for o in out] == [_digest(a) for a in items]
    assert pooled.shared_fallbacks == 2
    assert sum("no room" in r.getMessage() for r in caplog.records) == 1, "warned once, not per batch"
    assert _segments() <= before, "a block that could not be reserved is unlinked at once"


def test_closing_the_pool_unlinks_the_block() -> None:
    pool = PooledModel(probe(), 2).load()
    pool.predict(_inputs(np.random.default_rng(3)))
    name = pool._block.block.name
    assert name in _segments()
    pool.close()
    assert name not in _segments()


def test_a_dead_worker_breaks_the_batch_and_the_next_batch_gets_a_fresh_pool_and_block(pooled) -> None:
    from concurrent.futures.process import BrokenProcessPool

    items = _inputs(np.random.default_rng(4))
    pids = {o[4] for o in pooled.predict(items)}
    name = pooled._block.block.name
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    with pytest.raises(BrokenProcessPool):
        pooled.predict(items)
    assert name not in _segments()
    out = pooled.predict(items)
    assert [o[2] for o in out] == [_digest(a) for a in items]
    assert not {o[4] for o in out} & pids


def test_the_block_is_unlinked_when_the_parent_is_killed(tmp_path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        import numpy as np
        from gpu_ops.pool import PooledModel
        from tests.support.pool_probe import probe

        if __name__ == "__main__":
            pool = PooledModel(probe(), 2).load()
            pool.predict([np.ones((64, 64, 3), np.uint8)] * 4)
            print(pool._block.block.name, *[p.pid for p in multiprocessing.active_children()], flush=True)
            time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        name, *workers = proc.stdout.readline().split()
        assert name in _segments() and len(workers) >= 2  # the pool's two (and the tracker is not a child)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while (name in _segments() or any(_alive(int(w)) for w in workers)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(int(w)) for w in workers), "orphaned workers end, their models' memory with them"
        assert name not in _segments(), "the resource tracker unlinks what a killed parent left"
    finally:
        proc.kill()
