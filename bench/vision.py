"""Benchmark the vision stages: images/s per stage, batched vs one image at a time, and peak memory.

Each stage runs twice on the same decoded images in the same process: once through
``predict(batch)`` with ``--batch`` images per call, once with one image per call (the baseline),
and the ratio is printed. Then the whole chain runs from JPEG files with the threaded prefetching
loader, as the assets do. Memory: the process's resident set sampled every 5 ms during each
stage's batched run (native model memory included; all models stay loaded, so it accumulates),
the process's overall peak RSS, and tracemalloc's peak for Python-side allocations.

YOLO runs with random weights built from ``yolov8s.yaml`` (same architecture and cost as the
production ``yolov8s.pt``; ``--yolo PATH`` takes real weights). ArcFace runs only with
``--arcface PATH`` (``w600k_r50.onnx``): no stand-in would measure anything real.

``--workers N`` (N >= 2) adds the worker-pool comparison (:class:`gpu_ops.pool.PooledModel`, the pool the
assets use for their CPU models): each CPU stage in N worker processes (one thread each) vs two
baselines on the same inputs: one worker alone (this process set up as a pool worker is, one thread:
the pool's own scaling) and one process with its libraries' own threads (ONNX Runtime's OCR then uses
every core: what the pool gains over the step as it was); then the whole chain with every CPU model
pooled vs the same two, in the same run; pool start-up (spawn + model load, paid once per stage run)
is timed apart. The
16-core figure is modelled from the pool's per-worker rate (rate / N) × 16, i.e. linear in cores; the
load average is printed, since other work on the machine takes cores from the pool.

Usage: ``python bench/vision.py --n 48 --batch 16 [--device cpu|cuda] [--size 640] [--workers 2]``
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._record import record  # noqa: E402
from gpu_ops.base import ModelBackend  # noqa: E402
from gpu_ops.detection import MediaPipePersonDetector, YoloPersonDetector  # noqa: E402
from gpu_ops.device import Device, choose_device  # noqa: E402
from gpu_ops.faces import ArcFaceEmbedder, MediaPipeFaceDetector, align_face  # noqa: E402
from gpu_ops.loader import decode_rgb, image_batches  # noqa: E402
from gpu_ops.ocr import RapidOcr  # noqa: E402
from gpu_ops.pool import PooledModel, limit_threads, worker_backend  # noqa: E402
from gpu_ops.pose import MediaPipePose  # noqa: E402
from gpu_ops.registry import get_spec  # noqa: E402
from gpu_ops.segmentation import SelfieSegmenter  # noqa: E402

_PHOTOS: list[Callable[[], np.ndarray]] = [
    skdata.astronaut,  # a person, a face
    lambda: np.stack([skdata.camera()] * 3, axis=-1),  # a person
    skdata.coffee,
    skdata.chelsea,
    skdata.rocket,
    skdata.immunohistochemistry,
]
_CAPTIONS = ["Launch day at KSC", "new drop this friday", "#ad link in bio", "golden hour"]


def make_images(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` distinct RGB images (longest side ``size``): crops and resizes of scikit-image's photos,
    every third with a rendered caption, so each stage has people, faces and text to find."""
    rng = np.random.default_rng(seed)
    photos = [np.asarray(Image.fromarray(load()).convert("RGB")) for load in _PHOTOS]
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.85, 1.0)), int(w * rng.uniform(0.85, 1.0))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        img = Image.fromarray(photo[top:top + ch, left:left + cw])
        img = img.resize((round(img.width * size / max(img.size)), round(img.height * size / max(img.size))))
        if i % 3 == 0:
            ImageDraw.Draw(img).text((img.width // 20, int(img.height * 0.85)), _CAPTIONS[i % len(_CAPTIONS)],
                                     fill=(255, 255, 255), font=ImageFont.load_default(size=max(14, img.height // 18)),
                                     stroke_width=2, stroke_fill=(0, 0, 0))
        out.append(np.asarray(img))
    return out


def peak_rss_mib() -> float:
    """The process's peak RSS so far (never goes down)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Peak resident memory while a block runs, sampled every ``interval`` seconds on a thread."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval, self.peak, self._stop = interval, 0.0, threading.Event()

    def __enter__(self) -> RssSampler:
        self.peak = rss_mib()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib())


@dataclass
class PoolResult:
    """What :func:`bench_pool` measured: per stage (name, items, 1 process/s, pool/s, start-up s, pool with
    pickled arrays/s), the chain."""

    workers: int
    chain_detector: str
    decode_workers: int
    stages: list[tuple[str, int, float, float, float, float]]
    chain_single: float = 0.0  # images/s, one process
    chain_pooled: float = 0.0  # images/s, every CPU model pooled
    one_thread: dict[str, float] = field(default_factory=dict)  # stage name (and "chain") -> images/s


@dataclass
class StageResult:
    stage: str
    items: int
    batched_s: float
    single_s: float
    rss_mib: float  # peak resident memory of the process during the batched run
    found: str

    @property
    def batched_rate(self) -> float:
        return self.items / self.batched_s

    @property
    def single_rate(self) -> float:
        return self.items / self.single_s


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def bench_stage(name: str, model: ModelBackend, inputs: list, batch: int, describe: Callable[[list], str]) -> StageResult:
    model.load()
    model.predict(inputs[:1])  # warm-up: first-call allocations, graph initialisation

    def batched() -> list:
        return [r for i in range(0, len(inputs), batch) for r in model.predict(inputs[i:i + batch])]

    def one_at_a_time() -> list:
        return [model.predict([x])[0] for x in inputs]

    with RssSampler() as rss:
        outputs, batched_s = _timed(batched)
    _, single_s = _timed(one_at_a_time)
    return StageResult(name, len(inputs), batched_s, single_s, rss.peak, describe(outputs))


def _spec(family: str, backend: str | None = None):
    return get_spec(family, backend)


def crops_of(images: list[np.ndarray], boxes: list[list]) -> list[np.ndarray]:
    out = []
    for img, found in zip(images, boxes, strict=True):
        for b in found:
            crop = img[int(b.y1):int(b.y2), int(b.x1):int(b.x2)]
            if min(crop.shape[:2]) >= 48:
                out.append(np.ascontiguousarray(crop))
    return out


def run_chain(paths: list[Path], models: dict[str, ModelBackend], batch: int, workers: int) -> tuple[int, float]:
    """The assets' path: threaded decode → detect → crop → pose + silhouette → faces (+ ArcFace) → OCR."""
    started, n = time.perf_counter(), 0
    for b in image_batches(paths, lambda p: decode_rgb(p, max_side=1600), batch, workers=workers):
        boxes = models["detector"].predict(b.arrays)
        crops = crops_of(b.arrays, boxes)
        if crops:
            models["pose"].predict(crops)
            models["segmentation"].predict(crops)
        faces = models["faces"].predict(b.arrays)
        if "arcface" in models:
            aligned = [align_face(img, f) for img, fs in zip(b.arrays, faces, strict=True) for f in fs]
            if aligned:
                models["arcface"].predict(aligned)
        models["ocr"].predict(b.arrays)
        n += len(b.arrays)
    return n, time.perf_counter() - started


def write_jpegs(images: list[np.ndarray], folder: Path) -> list[Path]:
    paths = []
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        path = folder / f"{i}.jpg"
        path.write_bytes(buf.getvalue())
        paths.append(path)
    return paths


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _rate(model, inputs: list, batch: int, repeat: int = 1) -> float:
    """Images/s over ``inputs`` in ``batch``-sized calls: the median of ``repeat`` passes (one pass of a
    fast stage is a fraction of a second, at the mercy of one scheduler hiccup)."""
    rates = []
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        for i in range(0, len(inputs), batch):
            model.predict(inputs[i:i + batch])
        rates.append(len(inputs) / (time.perf_counter() - started))
    return float(np.median(rates))


class OneThread:
    """This process set up as one pool worker is (gpu_ops.pool.limit_threads: BLAS/OpenMP and OpenCV on
    one thread), for the single-worker baseline; undone on exit."""

    def __enter__(self) -> OneThread:
        import cv2

        self._cv2 = cv2.getNumThreads()
        self._limit = limit_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        import cv2

        cv2.setNumThreads(self._cv2)
        self._limit.restore_original_limits()


def one_thread_model(model: ModelBackend, key: str) -> ModelBackend:
    """``model`` as a pool worker builds it (gpu_ops.pool.worker_backend): OCR (ONNX Runtime) with one
    intra-op thread, the options bench_pool's pool gives it."""
    return worker_backend(model, {"threads": 1}) if key == "ocr" else model


def bench_pool(models: dict[str, ModelBackend], images: list[np.ndarray], crops: list[np.ndarray],
               paths: list[Path], batch: int, workers: int, decode_workers: int, chain_detector: str,
               repeat: int = 3) -> PoolResult:
    """``workers`` pool processes vs one process (its libraries' own threads: ONNX Runtime's OCR uses
    every core) and vs one worker alone (this process on one thread, as each pool worker runs), per
    CPU stage and for the whole chain, same run; per stage also the same pool with its arrays pickled
    to the workers instead of shared (what the shared-memory block saves). Stage rates are the median of
    ``repeat`` passes."""
    stages = [
        ("person detection, MediaPipe", "detector", images),
        ("pose, MediaPipe (per crop)", "pose", crops),
        ("silhouette, selfie segmentation (per crop)", "segmentation", crops),
        ("face detection, MediaPipe", "faces", images),
        ("OCR, RapidOCR PP-OCRv4", "ocr", images),
    ]
    pools: dict[str, PooledModel] = {}
    measured = PoolResult(workers, chain_detector, decode_workers, [])
    print(f"\nworker pool: {workers} processes (spawn, one thread each, models loaded once per worker) vs one "
          f"process; {os.cpu_count()} CPUs, load average {_loadavg()} before")
    print(f"{'stage':<44} {'items':>5} {'1 thread/s':>10} {'1 proc/s':>9} {'pickled/s':>9} {'pool/s':>8} "
          f"{'ratio':>6} {'vs 1 thr':>8} {'start-up':>9} {'per worker/s':>13} {'16 cores (model)/s':>19}")
    single_threaded: dict[str, ModelBackend] = {}
    try:
        for name, key, inputs in stages:
            model = models[key]
            model.predict(inputs[:1])
            single = _rate(model, inputs, batch, repeat)
            single_threaded[key] = one_thread_model(model, key)
            with OneThread():
                single_threaded[key].predict(inputs[:1])
                measured.one_thread[name] = _rate(single_threaded[key], inputs, batch, repeat)
            options = {"threads": 1} if key == "ocr" else None
            with PooledModel(model, workers, worker_options=options, transport="pickle").load() as pickled_pool:
                pickled_pool.predict(inputs[:workers * 4])  # every worker spawned and its model loaded
                pickled = _rate(pickled_pool, inputs, batch, repeat)
            started = time.perf_counter()
            pool = PooledModel(model, workers, worker_options=options).load()
            pool.predict(inputs[:workers * 4])
            startup = time.perf_counter() - started
            pooled = _rate(pool, inputs, batch, repeat)
            pools[key] = pool
            measured.stages.append((name, len(inputs), single, pooled, startup, pickled))
            one = measured.one_thread[name]
            print(f"{name:<44} {len(inputs):>5} {one:>10.1f} {single:>9.1f} {pickled:>9.1f} {pooled:>8.1f} "
                  f"{pooled / single:>5.2f}x {pooled / one:>7.2f}x {startup:>8.1f}s {pooled / workers:>13.1f} "
                  f"{pooled / workers * 16:>19.1f}")
        chain_single = {**models, "detector": models["yolo" if chain_detector == "yolo" else "detector"]}
        chain_one = {**chain_single, **{k: v for k, v in single_threaded.items()
                                        if k != "detector" or chain_detector != "yolo"}}
        chain_pooled = {**chain_single, **{k: v for k, v in pools.items()
                                           if k != "detector" or chain_detector != "yolo"}}
        n1, s1 = run_chain(paths, chain_single, batch, decode_workers)
        with OneThread():  # the models on one thread; decoding keeps its threads, as in the pool run
            n0, s0 = run_chain(paths, chain_one, batch, decode_workers)
        n2, s2 = run_chain(paths, chain_pooled, batch, decode_workers)
        measured.one_thread["chain"] = n0 / s0
        print(f"whole chain ({chain_detector} detector, decode on {decode_workers} threads, batch {batch}): one worker "
              f"thread {n0 / s0:.2f} images/s, one process {n1 / s1:.2f} images/s, pool of {workers}: {n2 / s2:.2f} "
              f"images/s ({(n2 / s2) / (n0 / s0):.2f}x one thread, {(n2 / s2) / (n1 / s1):.2f}x one process); "
              f"16 cores (model: {workers}-worker chain rate / {workers} × 16): {(n2 / s2) / workers * 16:.1f} images/s")
        print(f"load average after: {_loadavg()}")
        measured.chain_single, measured.chain_pooled = n1 / s1, n2 / s2
    finally:
        for pool in pools.values():
            pool.close()
    return measured


def _threads(n: int) -> str:
    return f"{n} thread{'' if n == 1 else 's'}"


def pool_rows(label: str, measured: PoolResult) -> list[tuple[str, str, str]]:
    """The figures-table rows of a pool comparison (``label`` names the run's device, size and batch)."""
    w = measured.workers
    def one(name: str, pooled: float) -> str:
        rate = measured.one_thread.get(name)
        return f"; one worker alone (one thread) {rate:.1f} img/s ({pooled / rate:.2f}×)" if rate else ""

    rows = [(f"{label}: {name} ({items} items), worker pool of {w} processes",
             f"pool {pooled:.1f} img/s (start-up {startup:.1f} s; 16 cores modelled {pooled / w * 16:,.1f} img/s)",
             f"one process {single:.1f} img/s ({pooled / single:.2f}×){one(name, pooled)}; same pool with "
             f"arrays pickled, not shared {pickled:.1f} img/s ({pooled / pickled:.2f}×)")
            for name, items, single, pooled, startup, pickled in measured.stages]
    rows.append((f"{label}: whole chain from JPEG files ({measured.chain_detector} detector, decode on "
                 f"{_threads(measured.decode_workers)}), every CPU model in a worker pool of {w} processes",
                 f"pool {measured.chain_pooled:.2f} img/s (16 cores modelled {measured.chain_pooled / w * 16:.1f} "
                 f"img/s)",
                 f"one process {measured.chain_single:.2f} img/s "
                 f"({measured.chain_pooled / measured.chain_single:.2f}×){one('chain', measured.chain_pooled)}"))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="number of images")
    parser.add_argument("--size", type=int, default=640, help="longest side in pixels")
    parser.add_argument("--batch", type=int, default=16, help="images per predict() call")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--decode-workers", type=int, default=4, help="decode threads for the chain run")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes for the pool comparison (0: skip it; the assets use one per core)")
    parser.add_argument("--pool-only", action="store_true", help="with --workers: only the pool comparison")
    parser.add_argument("--repeat", type=int, default=3,
                        help="passes per pool-comparison stage rate (the median is reported)")
    parser.add_argument("--yolo", type=Path, default=None, help="YOLO weights (.pt/.onnx); default random yolov8s")
    parser.add_argument("--arcface", type=Path, default=None, help="w600k_r50.onnx (optional)")
    parser.add_argument("--chain-detector", choices=["yolo", "mediapipe"], default=None,
                        help="detector in the whole-chain run (default: yolo on CUDA, mediapipe on CPU)")
    parser.add_argument("--record", action="store_true",
                        help="write bench/results/<name>.json for bench/figures.py (the README's figures table)")
    args = parser.parse_args(argv)

    device: Device = choose_device(args.device)
    chain_detector = args.chain_detector or ("yolo" if device.kind == "cuda" else "mediapipe")
    tracemalloc.start()
    images = make_images(args.n, args.size)
    rss0 = peak_rss_mib()
    print(f"{args.n} images, longest side {args.size}px, batch {args.batch}, device {device}, "
          f"{os.cpu_count()} CPUs, load average {_loadavg()}, fp16={device.fp16}; peak RSS before models {rss0:.0f} MiB")

    yolo_weights = args.yolo or Path("yolov8s.yaml")
    models: dict[str, ModelBackend] = {
        "yolo": YoloPersonDetector(_spec("person_detector", "yolo"), yolo_weights, device,
                                   {"conf": 0.35, "imgsz": 640}),
        "detector": MediaPipePersonDetector(_spec("person_detector", "mediapipe"), None, device),
        "pose": MediaPipePose(_spec("pose"), None, device),
        "segmentation": SelfieSegmenter(_spec("segmentation"), None, device),
        "faces": MediaPipeFaceDetector(_spec("face_detector"), None, device),
        "ocr": RapidOcr(_spec("ocr"), None, device),
    }
    if args.arcface:
        models["arcface"] = ArcFaceEmbedder(_spec("face_embedder"), args.arcface, device)
    label = f"vision, {args.n} images {args.size} px, batch {args.batch}, {device}"
    note = "; ".join(filter(None, [
        "" if args.yolo else "YOLOv8s has random weights (yolov8s.yaml: same architecture and cost as yolov8s.pt)",
        "" if args.arcface else "ArcFace not measured (no --arcface weights)",
    ]))

    if args.workers >= 2 and args.pool_only:
        crops = crops_of(images, models["detector"].predict(images))
        with tempfile.TemporaryDirectory() as tmp:
            paths = write_jpegs(images, Path(tmp))
            pooled = bench_pool(models, images, crops, paths, args.batch, args.workers, args.decode_workers,
                                chain_detector, args.repeat)
        if args.record:
            record("vision", pool_rows(f"{label} (--pool-only)", pooled), note=note, argv=argv)
        return

    results = [
        bench_stage("person detection, MediaPipe (CPU default)", models["detector"], images, args.batch,
                    lambda out: f"{sum(map(len, out))} persons"),
    ]
    detected = models["detector"].predict(images)
    crops = crops_of(images, detected)
    results += [
        bench_stage("pose, MediaPipe (per crop)", models["pose"], crops, args.batch,
                    lambda out: f"{sum(p is not None for p in out)}/{len(out)} poses"),
        bench_stage("silhouette, selfie segmentation (per crop)", models["segmentation"], crops, args.batch,
                    lambda out: f"{len(out)} masks"),
        bench_stage("face detection, MediaPipe", models["faces"], images, args.batch,
                    lambda out: f"{sum(map(len, out))} faces"),
        bench_stage("OCR, RapidOCR PP-OCRv4", models["ocr"], images, args.batch,
                    lambda out: f"{sum(map(len, out))} lines on {sum(bool(x) for x in out)} images"),
    ]
    results.append(bench_stage(f"person detection, YOLOv8s ({models['yolo'].version})", models["yolo"], images,
                               args.batch, lambda out: f"{sum(map(len, out))} boxes"))
    if "arcface" in models:
        faces = models["faces"].predict(images)
        aligned = [align_face(img, f) for img, fs in zip(images, faces, strict=True) for f in fs] * 8
        results.append(bench_stage("ArcFace R50 embeddings (per face)", models["arcface"], aligned, args.batch,
                                   lambda out: f"{len(out)} vectors"))

    print(f"\n{'stage':<58} {'items':>5} {'batched/s':>10} {'1-by-1/s':>9} {'ratio':>6} {'peak RSS':>9}  found")
    for r in results:
        print(f"{r.stage:<58} {r.items:>5} {r.batched_rate:>10.1f} {r.single_rate:>9.1f} "
              f"{r.batched_rate / r.single_rate:>5.2f}x {r.rss_mib:>7.0f}MiB  {r.found}")

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(images, Path(tmp))
        chain = {**models, "detector": models["yolo" if chain_detector == "yolo" else "detector"]}
        n, seconds = run_chain(paths, chain, args.batch, args.decode_workers)
        n1, seconds1 = run_chain(paths, chain, 1, 1)
        pooled = None
        if args.workers >= 2:
            pooled = bench_pool(models, images, crops, paths, args.batch, args.workers, args.decode_workers,
                                chain_detector, args.repeat)
    _, py_peak = tracemalloc.get_traced_memory()
    print(f"\nwhole chain ({chain_detector} detector) from JPEG files (decode on {args.decode_workers} threads, "
          f"batch {args.batch}): "
          f"{n / seconds:.1f} images/s ({seconds:.2f} s for {n}); one image at a time, 1 decode thread: "
          f"{n1 / seconds1:.1f} images/s ({(n / seconds) / (n1 / seconds1):.2f}x)")
    print(f"peak RSS {peak_rss_mib():.0f} MiB (models + images), tracemalloc peak (Python objects) "
          f"{py_peak / 2**20:.0f} MiB")
    if args.record:
        rows = [(f"{label}: {r.stage} ({r.items} items)",
                 f"{r.batched_rate:.1f} img/s batched, {r.rss_mib:,.0f} MiB peak RSS ({r.found})",
                 f"one per call {r.single_rate:.1f} img/s ({r.batched_rate / r.single_rate:.2f}×)")
                for r in results]
        rows.append((f"{label}: whole chain from JPEG files ({chain_detector} detector, decode on "
                     f"{_threads(args.decode_workers)}, {n} images)",
                     f"{n / seconds:.1f} img/s batched, {peak_rss_mib():,.0f} MiB process peak; "
                     f"{py_peak / 2**20:,.0f} MiB Python objects (tracemalloc)",
                     f"one per call, 1 decode thread {n1 / seconds1:.1f} img/s "
                     f"({(n / seconds) / (n1 / seconds1):.2f}×)"))
        if pooled is not None:
            rows += pool_rows(label, pooled)
        record("vision", rows, note=note, argv=argv)


if __name__ == "__main__":
    main()
