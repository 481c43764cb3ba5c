"""A backend that reports what it was given, for the worker pool's transport tests.

It lives in an importable module (not a test file) because the pool's ``spawn`` workers import the
backend's class by name. ``_predict`` answers, per input, with its shape, dtype, a digest of its
bytes, whether it is writeable and which process saw it; ``options["mutate"]`` makes it write into
its input first, as a careless backend would.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from gpu_ops.base import ModelBackend
from gpu_ops.spec import ModelSpec


class Probe(ModelBackend[tuple]):
    def _load(self) -> None:
        pass

    def _predict(self, batch: list) -> list[tuple]:
        out = []
        for x in batch:
            if self.options.get("mutate"):
                x[...] = 0
            arr = np.asarray(x)
            digest = hashlib.sha1(np.ascontiguousarray(arr).tobytes()).hexdigest()
            out.append((arr.shape, arr.dtype.str, digest, bool(arr.flags.writeable), os.getpid()))
        return out


def probe(**options) -> Probe:
    spec = ModelSpec(family="probe", backend="probe", backend_cls=Probe, model_id="probe", bundled=True,
                     device_kinds=("cpu",))
    return Probe(spec, None, "cpu", options)
