"""Benchmark decode + EXIF + RGB + thumbnail + PDQ (``process_image_bytes``).

Compares a single thread with ``prefetch_map`` thread and process pools on all cores.
Usage: ``python bench/decode_pdq.py --n 200 --size 1080 --workers 8``
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assets.images.imaging import ProcessedImage, process_image_bytes  # noqa: E402
from bench._record import record  # noqa: E402
from gpu_ops.prefetch import prefetch_map  # noqa: E402

_SOURCES: list[Callable[[], np.ndarray]] = [
    skdata.astronaut,
    skdata.coffee,
    skdata.chelsea,
    skdata.rocket,
    skdata.immunohistochemistry,
    skdata.hubble_deep_field,
    skdata.retina,
]


def make_jpegs(n: int, size: int, seed: int = 0) -> list[bytes]:
    """``n`` distinct JPEGs (longest side ``size``): random crops, resizes and noise."""
    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.fromarray(load()).convert("RGB")) for load in _SOURCES]
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = Image.fromarray(photo[top : top + ch, left : left + cw])
        scale = size / max(crop.size)
        resized = crop.resize((round(crop.width * scale), round(crop.height * scale)))
        noisy = np.asarray(resized).astype(np.int16) + rng.normal(0, 4, (*resized.size[::-1], 3))
        image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=int(rng.integers(75, 95)))
        out.append(buf.getvalue())
    return out


def _timed(data: bytes) -> tuple[ProcessedImage, float]:
    started = time.perf_counter()
    result = process_image_bytes(data)
    return result, time.perf_counter() - started


@dataclass(frozen=True)
class RunResult:
    """Throughput and latency of one strategy."""

    name: str
    workers: int
    wall_s: float
    latencies: list[float]
    errors: int

    @property
    def images_per_s(self) -> float:
        return len(self.latencies) / self.wall_s

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies, q) * 1000)


def run(
    name: str, jpegs: list[bytes], workers: int, mode: Literal["serial", "thread", "process"]
) -> RunResult:
    """Process all images with one strategy and collect per-image latencies."""
    started = time.perf_counter()
    if mode == "serial":
        results: Iterator[tuple[bytes, tuple[ProcessedImage, float] | Exception]] = (
            (data, _timed(data)) for data in jpegs
        )
    else:
        results = prefetch_map(_timed, jpegs, workers=workers, mode=mode)
    latencies, errors = [], 0
    for _, value in results:
        if isinstance(value, Exception):
            errors += 1
        else:
            latencies.append(value[1])
    return RunResult(name, workers, time.perf_counter() - started, latencies, errors)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the three strategies and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="number of images")
    parser.add_argument("--size", type=int, default=1080, help="longest side in pixels")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--record", action="store_true",
                        help="write bench/results/<name>.json for bench/figures.py (the README's figures table)")
    args = parser.parse_args(argv)

    jpegs = make_jpegs(args.n, args.size)
    mean_kb = statistics.mean(len(j) for j in jpegs) / 1024
    print(f"{args.n} JPEGs, longest side {args.size}px, mean {mean_kb:.0f} KiB, "
          f"{args.workers} workers, {os.cpu_count()} CPUs")
    process_image_bytes(jpegs[0])  # warm-up (imports, codec init)
    runs = [
        run("single thread", jpegs, 1, "serial"),
        run("thread pool", jpegs, args.workers, "thread"),
        run("process pool", jpegs, args.workers, "process"),
    ]
    base = runs[0].images_per_s
    header = f"{'strategy':<14} {'workers':>7} {'img/s':>8} {'p50 ms':>8} {'p95 ms':>8} " \
             f"{'img/s/core':>10} {'speed-up':>8} {'errors':>6}"
    print(header)
    print("-" * len(header))
    for r in runs:
        print(
            f"{r.name:<14} {r.workers:>7} {r.images_per_s:>8.1f} {r.percentile_ms(50):>8.1f} "
            f"{r.percentile_ms(95):>8.1f} {r.images_per_s / r.workers:>10.1f} "
            f"{r.images_per_s / base:>7.2f}x {r.errors:>6}"
        )
    if args.record:
        single, thread, process = runs
        errors = sum(r.errors for r in runs)
        why = (", which is why decoding runs in processes" if process.images_per_s > thread.images_per_s
               else "; the process pool is not faster than the thread pool in this run")
        record("decode_pdq", [(
            f"decode + PDQ + thumbnail, {args.size} px JPEG ({args.n} images, mean {mean_kb:,.0f} KiB)",
            f"{single.images_per_s:.1f} img/s on one core (p50 {single.percentile_ms(50):.1f} ms)"
            + (f"; {errors} errors" if errors else ""),
            f"{args.workers} workers on {os.cpu_count()} cores: thread pool {thread.images_per_s:.1f} img/s "
            f"({thread.images_per_s / base:.2f}×), process pool {process.images_per_s:.1f} img/s "
            f"({process.images_per_s / base:.2f}×){why}",
        )], argv=argv)


if __name__ == "__main__":
    main()
