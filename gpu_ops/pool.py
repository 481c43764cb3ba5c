"""CPU-bound model stages on every core: a backend run in worker processes, each loading it once.

MediaPipe's legacy graphs (pose, selfie segmentation, face and person detection) take one image at a
time on one thread, and RapidOCR spends ~0.25 s per photo: in the step's one process they use one core
of a 16-core GPU box. :class:`PooledModel` wraps a :class:`~gpu_ops.base.ModelBackend` and runs it in
``workers`` processes (``concurrent.futures.ProcessPoolExecutor``); the pool's initializer builds and
loads the backend once per worker (from the same class, spec, weights, device and options, with
``worker_options`` on top, e.g. one ONNX Runtime thread per worker), so a stage pays the model load once
per worker, not per batch.

``predict(batch)`` has the backend's contract (one result per input, in input order; an exception from
any chunk is raised, so :func:`assets.vision.common.safe_predict` isolates the bad item as it does in
process): the batch (one scan batch) is cut into ``chunk``-item chunks (default: two per worker), and
results are gathered in order. The models are deterministic per image (MediaPipe's ``static_image_mode``,
ONNX Runtime), so the pool's output equals the single process's (tests/integration/test_vision_pool.py).

A batch of numeric arrays (decoded photos, crops) goes to the workers through one shared-memory block
(:class:`_SharedBlock`): the parent copies each array in once and sends its offset, shape and dtype;
each worker maps the block once and reads read-only views in place. Pickling a 640 px photo through the
pool's pipe costs ~1 ms, as much as a MediaPipe face pass, which held the small stages to 1.0–1.5× on two
cores (bench/vision.py prints both transports side by side). Other inputs travel pickled, and so does a
batch for which ``/dev/shm`` has no room (a warning says so: Docker's default is 64 MB; the deploy files
give run containers and step pods 2 GB). Workers end when their parent dies (``kill -9``): an idle one
would otherwise wait on its queue forever, and the resource tracker (which unlinks a killed parent's
block) waits for them.

Workers start with ``spawn`` (the parent may hold threads: Dagster, decode threads, ONNX Runtime), so
each imports its model library itself. ``workers <= 1`` runs the backend in this process, unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context, shared_memory
from typing import Any

import numpy as np
import threadpoolctl

from gpu_ops.base import ModelBackend

__all__ = ["PooledModel", "default_workers", "limit_threads", "worker_backend"]

_log = logging.getLogger(__name__)
_WORKER_MODEL: ModelBackend | None = None
_THREAD_LIMIT: threadpoolctl.threadpool_limits | None = None
_WORKER_BLOCK: shared_memory.SharedMemory | None = None  # the parent's block this worker has mapped

_ALIGN = 64  # each array starts on a cache line
# (offset, shape, dtype) of one array in the block
ArraySlot = tuple[int, tuple[int, ...], str]


def default_workers(setting: int = 0) -> int:
    """Workers for a pool: ``setting`` when positive, else the cores this process may use."""
    if setting and setting > 0:
        return setting
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def limit_threads(threads: int) -> threadpoolctl.threadpool_limits:
    """Cap this process's BLAS/OpenMP pools (threadpoolctl, a scikit-learn dependency: the environment
    is left alone) and OpenCV at ``threads``, as a pool worker runs; the returned limit's
    ``restore_original_limits()`` undoes the first (OpenCV's count is the caller's to restore)."""
    limit = threadpoolctl.threadpool_limits(limits=threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover - opencv is a project dependency
        pass
    return limit


def worker_backend(backend: ModelBackend, worker_options: Mapping[str, Any] | None = None) -> ModelBackend:
    """``backend`` built and loaded as a pool worker builds it: same class, spec, weights and device,
    ``worker_options`` over its options (e.g. ONNX Runtime's ``threads``)."""
    return _build(type(backend), backend.spec, backend.weights, backend.device,
                  {**backend.options, **(worker_options or {})})


def _build(cls: type[ModelBackend], spec: Any, weights: Any, device: Any, options: Mapping[str, Any]) -> ModelBackend:
    return cls(spec, weights, device, options).load()


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """End this worker when its parent is gone (``kill -9``, OOM): an idle worker blocks on its call queue
    forever otherwise, holding its model's memory and the resource tracker's pipe (so the tracker never
    unlinks the parent's shared block)."""

    def watch() -> None:
        while True:
            time.sleep(every)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="pool-parent-watch", daemon=True).start()


def _init_worker(cls: type[ModelBackend], spec: Any, weights: Any, device: Any, options: Mapping[str, Any],
                 threads: int, parent: int) -> None:
    global _WORKER_MODEL, _THREAD_LIMIT
    _exit_with_parent(parent)
    _THREAD_LIMIT = limit_threads(threads)  # lives as long as the worker
    _WORKER_MODEL = _build(cls, spec, weights, device, options)


def _predict_chunk(items: list[Any]) -> list[Any]:
    assert _WORKER_MODEL is not None, "pool worker used before its initializer ran"
    return _WORKER_MODEL.predict(items)


def _attach(name: str) -> shared_memory.SharedMemory:
    """The parent's block ``name``, mapped once per worker (a new name: the parent grew it; the old
    mapping is let go)."""
    global _WORKER_BLOCK
    if _WORKER_BLOCK is None or _WORKER_BLOCK.name != name:
        old, _WORKER_BLOCK = _WORKER_BLOCK, shared_memory.SharedMemory(name=name)
        if old is not None:
            try:
                old.close()
            except BufferError:  # pragma: no cover - a backend kept a view of an earlier input
                pass
    return _WORKER_BLOCK


def _predict_shared(name: str, slots: list[ArraySlot]) -> list[Any]:
    """:func:`_predict_chunk` on arrays the parent wrote into shared block ``name``: read-only views,
    no copy (a backend that writes to its input would change the caller's image: it fails here)."""
    assert _WORKER_MODEL is not None, "pool worker used before its initializer ran"
    buf = _attach(name).buf
    views = []
    for offset, shape, dtype in slots:
        view = np.ndarray(shape, np.dtype(dtype), buffer=buf, offset=offset)
        view.flags.writeable = False
        views.append(view)
    try:
        return _WORKER_MODEL.predict(views)
    finally:
        del views, buf  # results go back pickled (copies); the block stays mapped for the next chunk


def _shareable(items: Sequence[Any]) -> bool:
    return all(isinstance(x, np.ndarray) and x.dtype.kind in "biuf" for x in items)


class _SharedBlock:
    """One shared-memory block the parent writes a batch's arrays into, for the workers to read in place.
    Grown by replacing it; space is reserved up front (``posix_fallocate``), so a full ``/dev/shm``
    (Docker's default is 64 MB) is an ``OSError`` here, where the caller falls back to pickling, never a
    SIGBUS on write. Unlinked on :meth:`close`; after a ``kill -9`` the multiprocessing resource
    tracker unlinks it."""

    def __init__(self) -> None:
        self.block: shared_memory.SharedMemory | None = None

    def write(self, arrays: Sequence[np.ndarray]) -> list[ArraySlot]:
        slots, offset = [], 0
        for a in arrays:
            slots.append((offset, tuple(a.shape), a.dtype.str))
            offset += -(-a.nbytes // _ALIGN) * _ALIGN
        self._reserve(max(offset, 1))
        assert self.block is not None
        for a, (start, shape, dtype) in zip(arrays, slots, strict=True):
            dst = np.ndarray(shape, np.dtype(dtype), buffer=self.block.buf, offset=start)
            np.copyto(dst, a)
            del dst
        return slots

    def _reserve(self, size: int) -> None:
        if self.block is not None and self.block.size >= size:
            return
        doubled = 2 * self.block.size if self.block is not None else 0
        self.close()  # the workers keep their mapping of the old block until they see the new name
        for attempt in dict.fromkeys((max(size, doubled), size)):  # room to grow, else just what it takes
            block = shared_memory.SharedMemory(create=True, size=attempt)
            try:
                fd = getattr(block, "_fd", -1)  # CPython's POSIX handle; elsewhere the OS checks the size
                if fd >= 0:
                    os.posix_fallocate(fd, 0, attempt)
            except OSError:
                block.close()
                block.unlink()
                if attempt == size:
                    raise
                continue
            self.block = block
            return

    @property
    def name(self) -> str:
        assert self.block is not None
        return self.block.name

    def close(self) -> None:
        if self.block is not None:
            block, self.block = self.block, None
            block.close()
            block.unlink()


class PooledModel:
    """``backend`` on ``workers`` processes; quacks like the backend (``predict``, ``version``, ``device``)."""

    def __init__(self, backend: ModelBackend, workers: int, *, chunk: int | None = None,
                 worker_options: Mapping[str, Any] | None = None, threads_per_worker: int = 1,
                 transport: str = "shared") -> None:
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        if transport not in ("shared", "pickle"):
            raise ValueError(f"transport must be 'shared' or 'pickle', got {transport!r}")
        self.transport = transport
        self.shared_fallbacks = 0  # batches pickled because the shared block could not be reserved
        self._block = _SharedBlock()
        self._lock = threading.Lock()  # one batch in the block at a time
        self.backend = backend
        self.workers = max(1, int(workers))
        self.chunk = chunk
        self.worker_options = dict(worker_options or {})
        self.threads_per_worker = threads_per_worker
        self._executor: ProcessPoolExecutor | None = None

    # what callers read off a backend
    @property
    def version(self) -> str:
        return self.backend.version

    @property
    def device(self):
        return self.backend.device

    @property
    def spec(self):
        return self.backend.spec

    def load(self) -> PooledModel:
        self.backend.load()  # settles the device and fails here, in the caller, if the model cannot load
        if self.workers > 1 and self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                initargs=(type(self.backend), self.backend.spec, self.backend.weights, self.backend.device,
                          {**self.backend.options, **self.worker_options}, self.threads_per_worker, os.getpid()))
        return self

    def predict(self, batch: Sequence[Any]) -> list[Any]:
        items = list(batch)
        if not items:
            return []
        if self.workers <= 1 or len(items) == 1:
            return self.backend.predict(items)  # one item: no round trip (safe_predict's per-item retries)
        self.load()
        assert self._executor is not None
        # default: two chunks per worker, so a slow image holds up half a worker's share, not all of it
        size = self.chunk or max(1, -(-len(items) // (2 * self.workers)))
        bounds = range(0, len(items), size)  # one scan batch at most
        with self._lock:
            slots = self._share(items)
            futures = []
            out: list[Any] = []
            try:
                for i in bounds:  # submit raises too once the executor has seen a worker die
                    futures.append(self._executor.submit(_predict_chunk, items[i:i + size]) if slots is None
                                   else self._executor.submit(_predict_shared, self._block.name, slots[i:i + size]))
                for future in futures:
                    out.extend(future.result())  # a chunk's exception propagates, as the backend's would
            except BrokenProcessPool:
                self.close()  # a worker died (native crash): the next batch starts a fresh pool
                raise
            finally:
                for future in futures:  # the block is rewritten by the next batch: nothing may still read it
                    future.cancel()
                wait(futures)
        if len(out) != len(items):
            raise RuntimeError(f"pool returned {len(out)} results for {len(items)} inputs")
        return out

    def _share(self, items: list[Any]) -> list[ArraySlot] | None:
        """``items`` written into the shared block (their slots), or None: pickle them (not all numeric
        arrays, ``transport="pickle"``, or no room in ``/dev/shm``)."""
        if self.transport != "shared" or not _shareable(items):
            return None
        try:
            return self._block.write(items)
        except OSError as exc:
            self.shared_fallbacks += 1
            if self.shared_fallbacks == 1:
                _log.warning("pool: no room for a %d-array batch in shared memory (%s); pickling batches "
                             "instead (slower: give /dev/shm more room, e.g. Docker's shm_size)", len(items), exc)
            return None

    def close(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=True, cancel_futures=True)
        self._block.close()

    def __enter__(self) -> PooledModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PooledModel({self.backend!r}, workers={self.workers})"
