"""Feed models in fixed-size batches while worker threads decode the next ones.

``image_batches`` reads and decodes images on a thread pool (PIL and OpenCV release the GIL
while decoding), keeps a bounded number of batches in flight, and yields each batch as
``(items, arrays, failures)``: the inference side only ever sees decoded RGB ``uint8`` arrays,
and an image that fails to decode is reported beside its batch instead of raising.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from PIL import Image, ImageOps

from gpu_ops.prefetch import prefetch_map

T = TypeVar("T")


def decode_rgb(source: bytes | str | Path, max_side: int | None = None) -> np.ndarray:
    """EXIF-rotated RGB ``uint8`` array (H, W, 3), optionally shrunk so the longer side is ``max_side``."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        img = ImageOps.exif_transpose(img)
        img = img.convert("RGB")
        if max_side and max(img.size) > max_side:
            img.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
        return np.asarray(img)


@dataclass
class ImageBatch(Generic[T]):
    items: list[T] = field(default_factory=list)  # decoded, aligned with ``arrays``
    arrays: list[np.ndarray] = field(default_factory=list)
    failures: list[tuple[T, Exception]] = field(default_factory=list)


def image_batches(
    items: Iterable[T],
    read: Callable[[T], np.ndarray],
    batch_size: int,
    *,
    workers: int = 4,
    prefetch_batches: int = 2,
) -> Iterator[ImageBatch[T]]:
    """Decode ``items`` with ``read`` on ``workers`` threads and yield batches of ``batch_size`` decoded images.

    At most ``prefetch_batches`` batches beyond the current one are decoded ahead, so memory
    stays bounded. Failures are yielded with the batch during which they surfaced.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    current: ImageBatch[T] = ImageBatch()
    results = prefetch_map(read, items, workers=workers, mode="thread",
                           max_in_flight=max(workers, batch_size * (prefetch_batches + 1)))
    for item, result in results:
        if isinstance(result, Exception):
            current.failures.append((item, result))
            continue
        current.items.append(item)
        current.arrays.append(result)
        if len(current.arrays) == batch_size:
            yield current
            current = ImageBatch()
    if current.arrays or current.failures:
        yield current
