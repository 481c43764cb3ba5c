"""Cost per image of object tags (``gpu_ops.objects.YoloObjectDetector``) against the person
detectors, measured in the same run on the same decoded images.

All YOLO models run with random weights built from ``yolov8s.yaml`` (the architecture and cost of
the production ``yolov8s.pt``; ``--yolo PATH`` takes real weights). The baselines: the YOLOv8s person
detector (the same network, person class only: the GPU default) and MediaPipe's bundled person
detector (the CPU default). A random detector reports almost nothing at the production confidence
floor, so the object detector also runs at ``conf=1e-6`` (50 boxes per image through NMS): the
worst case of post-processing.

Usage: ``python bench/objects.py --n 24 --batch 8 [--size 640] [--device cpu|cuda]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpu_ops.base import ModelBackend  # noqa: E402
from gpu_ops.detection import MediaPipePersonDetector  # noqa: E402
from gpu_ops.device import choose_device  # noqa: E402
from gpu_ops.registry import get_spec  # noqa: E402

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field")


def images(n: int, size: int) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = getattr(skdata, PHOTOS[i % len(PHOTOS)])()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        pil = Image.fromarray(img[:, :, :3].astype(np.uint8)).resize((size, size * 3 // 4))
        out.append(np.asarray(pil))
    return out


def timed(model: ModelBackend, imgs: list[np.ndarray], batch: int, repeats: int) -> tuple[float, int]:
    """Best of ``repeats`` seconds per image, and the results' item count (boxes found)."""
    model.predict(imgs[:batch])  # load + warm up
    best, found = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        results = []
        for i in range(0, len(imgs), batch):
            results += model.predict(imgs[i:i + batch])
        best = min(best, (time.perf_counter() - start) / len(imgs))
        found = sum(len(r) for r in results)
    return best, found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=640, help="image width (height 3/4 of it) and YOLO imgsz")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--yolo", type=Path, default=Path("yolov8s.yaml"))
    args = parser.parse_args(argv)
    for var, value in (("YOLO_OFFLINE", "1"), ("YOLO_AUTOINSTALL", "false"), ("YOLO_VERBOSE", "false")):
        os.environ.setdefault(var, value)  # this script's process only, before ultralytics is imported
    device = choose_device(args.device)
    imgs = images(args.n, args.size)
    opts = {"imgsz": args.size}
    models = {
        "person detector, YOLOv8s (baseline)": get_spec("person_detector", "yolo").backend_cls(
            get_spec("person_detector", "yolo"), args.yolo, device, opts),
        "person detector, MediaPipe (CPU default)": MediaPipePersonDetector(
            get_spec("person_detector", "mediapipe"), None, device),
        "object tags, YOLOv8s conf 0.25": get_spec("object_detector").backend_cls(
            get_spec("object_detector"), args.yolo, device, opts),
        "object tags, YOLOv8s conf 1e-6 (50 boxes)": get_spec("object_detector").backend_cls(
            get_spec("object_detector"), args.yolo, device, {**opts, "conf": 1e-6}),
    }
    print(f"{args.n} images {args.size}x{args.size * 3 // 4}, batch {args.batch}, device {device}, "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"weights {args.yolo}")
    seconds = {}
    for name, model in models.items():
        s, found = timed(model, imgs, args.batch, args.repeats)
        seconds[name] = s
        print(f"  {name:45s} {s * 1000:8.1f} ms/image  {1 / s:7.1f} images/s  ({found} boxes)")
    base = seconds["person detector, YOLOv8s (baseline)"]
    for name, s in seconds.items():
        print(f"  ratio {name:39s} {s / base:5.2f}x the YOLOv8s person detector")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
