"""Several GPUs on one box: concurrent claimants (threads and processes) each get a distinct device.

A stand-in device list plays the GPUs: the claim logic never touches CUDA.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time

import pytest

from gpu_ops.device import DeviceUnavailable, choose_device, cuda_device_count
from gpu_ops.devices import DevicePool, NoFreeDevice, Slot, parse_cuda_visible, process_device, visible_devices

FOUR = [Slot(i, f"GPU-fake-{i}") for i in range(4)]


def test_visible_devices_follow_cuda_visible_devices_and_an_explicit_list():
    assert visible_devices(count=3, environ={}) == [Slot(0, "0"), Slot(1, "1"), Slot(2, "2")]
    # CUDA renumbers what it shows: this process's cuda:0 is physical GPU 2.
    assert visible_devices(count=8, environ={"CUDA_VISIBLE_DEVICES": "2,3"}) == [Slot(0, "2"), Slot(1, "3")]
    assert visible_devices([1], environ={"CUDA_VISIBLE_DEVICES": "5,7"}) == [Slot(1, "7")]
    assert visible_devices([0, 2, 2], environ={}) == [Slot(0, "0"), Slot(2, "2")]
    assert parse_cuda_visible("0,1,-1,3") == ["0", "1"]  # CUDA stops at the first invalid id
    assert visible_devices(environ={"CUDA_VISIBLE_DEVICES": ""}, count=4) == []
    with pytest.raises(ValueError, match="shows only 2"):
        visible_devices([3], environ={"CUDA_VISIBLE_DEVICES": "0,1"})


def test_concurrent_threads_each_get_a_distinct_device_and_a_fifth_waits(tmp_path):
    pool = DevicePool(FOUR, tmp_path, poll_s=0.01)
    start = threading.Barrier(4)
    claims, lock = [], threading.Lock()

    def claimant():
        start.wait()
        claim = pool.claim(timeout=5)
        with lock:
            claims.append(claim)

    threads = [threading.Thread(target=claimant) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c.slot.physical for c in claims) == sorted(s.physical for s in FOUR)
    with pytest.raises(NoFreeDevice, match="all 4 devices"):
        pool.claim(timeout=0.1)
    # Another pool of the same box (same lock dir) sees them claimed too.
    assert DevicePool(FOUR, tmp_path).try_claim() is None
    freed = claims[2].slot
    claims[2].release()
    with pool.claim(timeout=1) as again:
        assert again.slot == freed
    assert pool.try_claim().slot == freed


def _hold(lock_dir: str, ready, stop_file: str) -> None:
    claim = DevicePool(FOUR[:3], lock_dir, poll_s=0.01).claim(timeout=10)
    ready.put((os.getpid(), claim.slot.physical))
    deadline = time.monotonic() + 30
    while not os.path.exists(stop_file) and time.monotonic() < deadline:  # not an Event: one of us gets SIGKILLed
        time.sleep(0.02)


def test_concurrent_processes_each_get_a_distinct_device_and_a_killed_one_frees_its_own(tmp_path):
    ctx = mp.get_context("fork")  # also exercises the after-fork reset of the bookkeeping
    ready, stop = ctx.Queue(), tmp_path / "stop"
    procs = [ctx.Process(target=_hold, args=(str(tmp_path), ready, str(stop))) for _ in range(3)]
    for p in procs:
        p.start()
    try:
        got = dict(ready.get(timeout=30) for _ in procs)
        assert sorted(got.values()) == ["GPU-fake-0", "GPU-fake-1", "GPU-fake-2"]
        assert DevicePool(FOUR[:3], tmp_path).try_claim() is None  # held by the other processes
        victim = procs[1]
        os.kill(victim.pid, signal.SIGKILL)  # no cleanup runs: the kernel drops its lock
        victim.join(10)
        with DevicePool(FOUR[:3], tmp_path, poll_s=0.01).claim(timeout=5) as claim:
            assert claim.slot.physical == got[victim.pid]
    finally:
        stop.touch()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()


def test_process_device_is_claimed_once_and_held_for_the_process(tmp_path):
    first = process_device(FOUR, tmp_path)
    assert process_device(FOUR, tmp_path) == first  # same process, same device
    taken = DevicePool(FOUR, tmp_path).claim(timeout=1)
    assert taken.slot != first
    assert process_device([Slot(0, "only")], tmp_path) == Slot(0, "only")  # one device: nothing to share out


def test_a_process_finding_every_device_claimed_shares_one_instead_of_waiting_forever(tmp_path, caplog):
    two = FOUR[:2]
    held = [DevicePool(two, tmp_path).claim(timeout=1) for _ in two]
    started = time.monotonic()
    shared = process_device(two, tmp_path, timeout=0.2)
    assert shared in two and time.monotonic() - started < 5
    assert "sharing" in caplog.text
    for claim in held:
        claim.release()


@pytest.mark.skipif(cuda_device_count() > 0, reason="checks the CPU-only refusal")
def test_a_device_list_on_a_machine_without_them_is_refused():
    with pytest.raises(DeviceUnavailable, match="cuda:\\[0, 1\\]"):
        choose_device("cuda:0,1")
    with pytest.raises(ValueError, match="unknown device"):
        choose_device("cuda:0,x")
    assert choose_device("auto").kind in {"cpu", "mps"}
