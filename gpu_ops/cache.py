"""``ModelCache``: the loaded backends a process keeps, bounded in number and idle time.

An owner (``resources.models`` holds the process's one cache) asks for a backend by key with a
function that builds it; the cache builds it once, loads it once, and hands every later caller
the same object. Two threads asking for the same key at once get the same backend and it loads
once (the backend's own load lock); backends under different keys load in parallel, since the
cache's lock is never held while a model loads. A load that fails leaves nothing cached, so the
next call tries again from scratch.

Eviction only forgets: the least recently used entry goes when more than ``max_models`` are
cached, and any entry unused for ``idle_s`` seconds goes at the next call. A caller still holding
an evicted backend keeps a working model; its memory is freed once nobody refers to it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from gpu_ops.base import ModelBackend
from gpu_ops.device import Device
from gpu_ops.spec import ModelSpec

B = TypeVar("B", bound=ModelBackend)


def cache_key(
    spec: ModelSpec,
    weights: Path | str | None,
    device: Device | str | None,
    options: Mapping[str, Any] | None = None,
) -> tuple:
    """What makes two backends different: class, family/backend, weights, device and options."""
    placed = device.torch if isinstance(device, Device) else (device or "auto")
    return (spec.backend_cls, spec.family, spec.backend, str(weights) if weights is not None else None, placed,
            tuple(sorted((options or {}).items())))


class ModelCache:
    def __init__(
        self,
        max_models: int | None = 8,
        idle_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_models is not None and max_models < 1:
            raise ValueError(f"max_models must be >= 1 (or None: unbounded), got {max_models}")
        if idle_s is not None and idle_s <= 0:
            raise ValueError(f"idle_s must be > 0 (or None: never idle out), got {idle_s}")
        self.max_models = max_models
        self.idle_s = idle_s
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[ModelBackend, float]] = OrderedDict()  # oldest use first
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], B], *, load: bool = True) -> B:
        """The cached backend for ``key`` (``build()`` makes it the first time), loaded unless ``load=False``."""
        with self._lock:
            now = self._clock()
            self._evict_idle(now)
            entry = self._entries.pop(key, None)
            backend = entry[0] if entry is not None else build()
            self._entries[key] = (backend, now)  # (re)inserted last: most recently used
            while self.max_models is not None and len(self._entries) > self.max_models:
                self._entries.popitem(last=False)
        if load:
            try:
                backend.load()
            except BaseException:
                with self._lock:  # a half-loaded backend is not kept: the next call starts afresh
                    if self._entries.get(key, (None,))[0] is backend:
                        del self._entries[key]
                raise
        return backend  # type: ignore[return-value]

    def _evict_idle(self, now: float) -> None:
        if self.idle_s is None:
            return
        while self._entries:
            key, (_, used) = next(iter(self._entries.items()))
            if now - used <= self.idle_s:
                break
            del self._entries[key]

    def clear(self) -> None:
        """Forget every cached backend (tests; frees their memory once no caller holds them)."""
        with self._lock:
            self._entries.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
