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

Workers start with ``spawn`` (the parent may hold threads: Dagster, decode threads, ONNX Runtime), so
each imports its model library itself. ``workers <= 1`` runs the backend in this process, unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

import threadpoolctl

from gpu_ops.base import ModelBackend

__all__ = ["PooledModel", "default_workers", "limit_threads", "worker_backend"]

_WORKER_MODEL: ModelBackend | None = None
_THREAD_LIMIT: threadpoolctl.threadpool_limits | None = None


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


def _init_worker(cls: type[ModelBackend], spec: Any, weights: Any, device: Any, options: Mapping[str, Any],
                 threads: int) -> None:
    global _WORKER_MODEL, _THREAD_LIMIT
    _THREAD_LIMIT = limit_threads(threads)  # lives as long as the worker
    _WORKER_MODEL = _build(cls, spec, weights, device, options)


def _predict_chunk(items: list[Any]) -> list[Any]:
    assert _WORKER_MODEL is not None, "pool worker used before its initializer ran"
    return _WORKER_MODEL.predict(items)


class PooledModel:
    """``backend`` on ``workers`` processes; quacks like the backend (``predict``, ``version``, ``device``)."""

    def __init__(self, backend: ModelBackend, workers: int, *, chunk: int | None = None,
                 worker_options: Mapping[str, Any] | None = None, threads_per_worker: int = 1) -> None:
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
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
                          {**self.backend.options, **self.worker_options}, self.threads_per_worker))
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
        chunks = [items[i:i + size] for i in range(0, len(items), size)]  # one scan batch at most
        futures = [self._executor.submit(_predict_chunk, chunk) for chunk in chunks]
        out: list[Any] = []
        try:
            for future in futures:
                out.extend(future.result())  # a chunk's exception propagates, as the backend's would
        except BrokenProcessPool:
            self.close()  # a worker died (native crash): the next batch starts a fresh pool
            raise
        if len(out) != len(items):
            raise RuntimeError(f"pool returned {len(out)} results for {len(items)} inputs")
        return out

    def close(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PooledModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PooledModel({self.backend!r}, workers={self.workers})"
