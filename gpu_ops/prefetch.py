"""Bounded, order-preserving parallel map that keeps a consumer fed.

Dependency-free (standard library only). Exceptions raised by the mapped function are
yielded as values next to their item, never raised mid-stream.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from itertools import islice
from multiprocessing.context import BaseContext
from typing import Literal, TypeVar

__all__ = ["batched", "prefetch_map"]

T = TypeVar("T")
R = TypeVar("R")
Mode = Literal["thread", "process"]


def batched(iterable: Iterable[T], n: int) -> Iterator[list[T]]:
    """Yield successive lists of up to ``n`` items."""
    if n < 1:
        raise ValueError(f"batch size must be >= 1, got {n}")
    it = iter(iterable)
    while batch := list(islice(it, n)):
        yield batch


def _run_chunk(fn: Callable[[T], R], chunk: list[T]) -> list[R | Exception]:
    """Apply ``fn`` to each item, turning raised exceptions into values."""
    out: list[R | Exception] = []
    for item in chunk:
        try:
            out.append(fn(item))
        except Exception as exc:  # handed back to the consumer as the item's value
            out.append(exc)
    return out


def _collect(chunk: list[T], future: Future[list[R | Exception]]) -> list[tuple[T, R | Exception]]:
    """Pair a finished chunk's items with their results (or the pool's failure)."""
    try:
        values: list[R | Exception] = future.result()
    except Exception as exc:  # worker crash / unpicklable result: every item gets it
        values = [exc] * len(chunk)
    return list(zip(chunk, values, strict=True))


class _Pool:
    """An executor that is rebuilt once if a worker process dies."""

    def __init__(self, mode: Mode, workers: int, mp_context: BaseContext | None) -> None:
        self._mode, self._workers, self._mp_context = mode, workers, mp_context
        self._executor = self._make()

    def _make(self) -> Executor:
        if self._mode == "thread":
            return ThreadPoolExecutor(max_workers=self._workers)
        return ProcessPoolExecutor(max_workers=self._workers, mp_context=self._mp_context)

    def submit(self, fn: Callable[[T], R], chunk: list[T]) -> Future[list[R | Exception]]:
        try:
            return self._executor.submit(_run_chunk, fn, chunk)
        except BrokenProcessPool:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = self._make()
            return self._executor.submit(_run_chunk, fn, chunk)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def prefetch_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int | None = None,
    mode: Mode = "thread",
    chunksize: int = 1,
    ordered: bool = True,
    max_in_flight: int | None = None,
    mp_context: BaseContext | None = None,
) -> Iterator[tuple[T, R | Exception]]:
    """Run ``fn`` over ``items`` in a bounded pool, yielding ``(item, result_or_exception)``.

    At most ``max_in_flight`` chunks (default ``2 * workers``) are queued or running, so
    memory stays flat for arbitrarily long inputs; ``items`` is consumed lazily. In
    ``"process"`` mode ``fn``, items and results must be picklable; a crashed worker
    turns its in-flight items into exceptions and the pool is rebuilt.
    """
    if mode not in ("thread", "process"):
        raise ValueError(f"mode must be 'thread' or 'process', got {mode!r}")
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    if n_workers < 1:
        raise ValueError(f"workers must be >= 1, got {n_workers}")
    limit = max_in_flight if max_in_flight is not None else 2 * n_workers
    if limit < 1:
        raise ValueError(f"max_in_flight must be >= 1, got {limit}")

    pool = _Pool(mode, n_workers, mp_context)
    try:
        if ordered:
            queue: deque[tuple[list[T], Future[list[R | Exception]]]] = deque()
            for chunk in batched(items, chunksize):
                queue.append((chunk, pool.submit(fn, chunk)))
                if len(queue) >= limit:
                    yield from _collect(*queue.popleft())
            while queue:
                yield from _collect(*queue.popleft())
        else:
            pending: dict[Future[list[R | Exception]], list[T]] = {}
            for chunk in batched(items, chunksize):
                pending[pool.submit(fn, chunk)] = chunk
                while len(pending) >= limit:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield from _collect(pending.pop(future), future)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield from _collect(pending.pop(future), future)
    finally:
        pool.shutdown()
