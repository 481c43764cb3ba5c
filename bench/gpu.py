"""One-shot GPU benchmark: images/s per stage and for the whole GPU chain, batch 1/16/64, fp16 vs fp32.

Production-sized models built from their configurations with random weights (random weights cost
the same FLOPs and memory as trained ones; nothing is downloaded):

* person detector: ultralytics YOLOv8s from its bundled ``yolov8s.yaml`` (11 M parameters), 640×640,
  forward + person-class NMS; also exported to ONNX and run on ONNX Runtime's CUDA execution
  provider when ``onnxruntime-gpu`` is installed (TensorRT's provider is reported, not built: its
  engine build alone takes minutes);
* image embedder: SigLIP SO400M/14 @384 vision tower (``transformers.SiglipVisionConfig``: 1152
  wide, 27 layers, 16 heads, MLP 4304; 428 M parameters), 640 px input resized to 384 on the GPU;
* face embedder: ArcFace R50 (InsightFace's iresnet50, built here in torch: 43.6 M parameters), one
  aligned 112×112 face per image (warped on the GPU with ``affine_grid``/``grid_sample``).

The whole chain is upload (uint8, pinned) → normalise → YOLOv8s + NMS → resize → SigLIP → face warp →
ArcFace, per batch, synchronised at the end of each batch. Each figure is the median-free plain rate
over ``--seconds`` of timed batches after warm-up. GPU memory is ``torch.cuda.max_memory_allocated``
per measurement; utilisation is NVML's (``pynvml``, when importable) sampled every 20 ms during the
chain runs.

The CPU side is measured per core in the same run (one process, one thread): JPEG decode of
1080×1350 Instagram-sized photos to a 640 letterbox, and the CPU-only vision stages (MediaPipe pose,
selfie segmentation and face detection, RapidOCR — on ONNX Runtime's CUDA provider where present).
"cores to keep up" = the best whole-chain images/s ÷ that stage's images/s per core: what a box
must give the worker pool so the GPU never waits.

Baseline in the same run: fp32 at batch 1 (each row's ``vs base`` column).

    bash bench/gpu.sh                      # = make bench-gpu; exits 2 if there is no CUDA GPU
    python bench/gpu.py --cpu-smoke        # every step on the CPU with tiny models, < 60 s
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STAGES = ("decode (CPU, per core)", "pose (CPU, per core)", "segmentation (CPU, per core)",
          "face detection (CPU, per core)", "OCR (per core)", "YOLOv8s detect+NMS", "YOLOv8s ONNX Runtime",
          "SigLIP SO400M/14-384", "ArcFace R50", "whole GPU chain")


@dataclass
class Sizes:
    det_size: int
    emb_size: int
    face_size: int
    yolo_yaml: str
    siglip: dict
    arcface_layers: tuple[int, ...]
    arcface_widths: tuple[int, ...]
    batches: tuple[int, ...]
    seconds: float
    decode_images: int
    cpu_images: int
    photo_size: tuple[int, int]  # (width, height) of the JPEGs decoded


PRODUCTION = Sizes(
    det_size=640, emb_size=384, face_size=112, yolo_yaml="yolov8s.yaml",
    siglip=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                image_size=384, patch_size=14),
    arcface_layers=(3, 4, 14, 3), arcface_widths=(64, 128, 256, 512),
    batches=(1, 16, 64), seconds=2.0, decode_images=48, cpu_images=24, photo_size=(1080, 1350),
)
SMOKE = Sizes(
    det_size=64, emb_size=32, face_size=112, yolo_yaml="yolov8s.yaml",
    siglip=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                image_size=32, patch_size=8),
    arcface_layers=(1, 1, 1, 1), arcface_widths=(8, 16, 16, 32),
    batches=(1, 2), seconds=0.05, decode_images=3, cpu_images=2, photo_size=(216, 270),
)


@dataclass
class Row:
    stage: str
    device: str
    dtype: str
    batch: int
    rate: float = float("nan")  # images (or faces) per second
    ms: float = float("nan")  # per batch
    mem_mib: float = float("nan")
    util: float = float("nan")
    note: str = ""
    extra: dict = field(default_factory=dict)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- models ---------------------------------------------------------------------------------------
def iresnet(layers: tuple[int, ...], widths: tuple[int, ...], face_size: int, embedding: int = 512):
    """InsightFace's IResNet (arcface_torch ``iresnet.py``): iresnet50 = layers (3, 4, 14, 3)."""
    import torch
    from torch import nn

    def conv3x3(i: int, o: int, stride: int = 1) -> nn.Conv2d:
        return nn.Conv2d(i, o, 3, stride, 1, bias=False)

    class IBasicBlock(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None) -> None:
            super().__init__()
            self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-5)
            self.conv1 = conv3x3(inplanes, planes)
            self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
            self.prelu = nn.PReLU(planes)
            self.conv2 = conv3x3(planes, planes, stride)
            self.bn3 = nn.BatchNorm2d(planes, eps=1e-5)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
            return out + (self.downsample(x) if self.downsample is not None else x)

    class IResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = conv3x3(3, widths[0])
            self.bn1 = nn.BatchNorm2d(widths[0], eps=1e-5)
            self.prelu = nn.PReLU(widths[0])
            blocks, inplanes = [], widths[0]
            for n, planes in zip(layers, widths, strict=True):
                down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, 2, bias=False), nn.BatchNorm2d(planes, eps=1e-5))
                blocks.append(IBasicBlock(inplanes, planes, 2, down))
                blocks += [IBasicBlock(planes, planes, 1, None) for _ in range(n - 1)]
                inplanes = planes
            self.layers = nn.Sequential(*blocks)
            self.bn2 = nn.BatchNorm2d(inplanes, eps=1e-5)
            side = face_size // 16
            self.fc = nn.Linear(inplanes * side * side, embedding)
            self.features = nn.BatchNorm1d(embedding, eps=1e-5)

        def forward(self, x):
            x = self.layers(self.prelu(self.bn1(self.conv1(x))))
            x = torch.flatten(self.bn2(x), 1)
            return self.features(self.fc(x))

    return IResNet()


@dataclass
class Models:
    yolo: object
    siglip: object
    arcface: object
    nms: Callable
    params: dict[str, float]


def build_models(sizes: Sizes, device: str) -> Models:
    import torch

    from gpu_ops.compat import ensure_torchvision

    ensure_torchvision()  # before transformers/ultralytics import torchvision (a CUDA wheel beside CPU torch)
    from transformers import SiglipVisionConfig, SiglipVisionModel
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.nms import non_max_suppression

    torch.manual_seed(0)
    t = time.perf_counter()
    yolo = DetectionModel(sizes.yolo_yaml, nc=80, verbose=False).to(device).eval()
    yolo = yolo.fuse(verbose=False)
    with torch.device(device):  # initialise the 428 M parameters where they will run
        siglip = SiglipVisionModel(SiglipVisionConfig(**sizes.siglip, attn_implementation="sdpa")).eval()
    arcface = iresnet(sizes.arcface_layers, sizes.arcface_widths, sizes.face_size).to(device).eval()
    params = {name: sum(p.numel() for p in m.parameters()) / 1e6
              for name, m in (("yolo", yolo), ("siglip", siglip), ("arcface", arcface))}
    log(f"models built in {time.perf_counter() - t:.1f}s: YOLO {params['yolo']:.1f} M, SigLIP vision "
        f"{params['siglip']:.1f} M, ArcFace {params['arcface']:.1f} M parameters (random weights)")
    return Models(yolo, siglip, arcface, non_max_suppression, params)


# ---- GPU-side steps -------------------------------------------------------------------------------
class Steps:
    """The chain's steps on one device and dtype; inputs are uint8 (B, 3, S, S) tensors on the host."""

    def __init__(self, models: Models, sizes: Sizes, device: str, dtype) -> None:
        import copy

        import torch

        self.torch, self.sizes, self.device, self.dtype = torch, sizes, device, dtype
        self.yolo = copy.deepcopy(models.yolo).to(dtype)
        self.siglip = models.siglip.to(dtype)  # converted in place (too big to copy); restored per dtype
        self.arcface = copy.deepcopy(models.arcface).to(dtype)
        self.nms = models.nms
        self.mean = torch.tensor(0.5, device=device, dtype=dtype)

    def upload(self, host):
        return host.to(self.device, non_blocking=True).to(self.dtype).div_(255)

    def detect(self, x):
        preds = self.yolo(x)
        preds = preds[0] if isinstance(preds, (list, tuple)) else preds
        return self.nms(preds.float(), conf_thres=0.35, iou_thres=0.5, classes=[0], max_det=50)

    def embed(self, x):
        import torch.nn.functional as F

        pixels = F.interpolate(x, size=(self.sizes.emb_size, self.sizes.emb_size), mode="bilinear",
                               antialias=False, align_corners=False)
        pixels = (pixels - self.mean) / self.mean
        out = self.siglip(pixel_values=pixels).pooler_output
        return F.normalize(out.float(), dim=-1)

    def warp_faces(self, x):
        """One aligned face per image: a similarity warp of a centred square onto 112×112 (as align_face)."""
        import torch.nn.functional as F

        b = x.shape[0]
        theta = self.torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 0.3
        theta[:, 1, 2] = -0.2
        grid = F.affine_grid(theta, [b, 3, self.sizes.face_size, self.sizes.face_size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", align_corners=False) * 2 - 1

    def faces(self, faces):
        import torch.nn.functional as F

        return F.normalize(self.arcface(faces).float(), dim=-1)

    def chain(self, host):
        x = self.upload(host)
        boxes = self.detect(x)
        emb = self.embed(x)
        face = self.faces(self.warp_faces(x))
        return boxes, emb, face


class NvmlSampler:
    """Mean and peak GPU utilisation (NVML) while a block runs; nothing when pynvml is not importable."""

    def __init__(self, index: int, interval: float = 0.02) -> None:
        self.samples: list[int] = []
        self.interval, self._stop, self.handle = interval, threading.Event(), None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml = pynvml
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except Exception:  # not installed, no driver, no permission: utilisation is reported as n/a
            self.handle = None

    def __enter__(self) -> NvmlSampler:
        self.samples = []
        self._stop.clear()
        if self.handle is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.handle is not None:
            self._thread.join()

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples)) if self.samples else float("nan")


def timed(fn: Callable[[], object], sync: Callable[[], None], seconds: float, min_iters: int = 3,
          warmup: int = 2) -> tuple[float, int]:
    """Seconds per call over at least ``min_iters`` calls and ``seconds`` of wall time, after warm-up."""
    for _ in range(warmup):
        fn()
    sync()
    n, started = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - started < seconds:
        fn()
        n += 1
        if n % 4 == 0:
            sync()
    sync()
    return (time.perf_counter() - started) / n, n


def measure_gpu(models: Models, sizes: Sizes, device: str, dtypes: list[str], deadline: float,
                sampler: NvmlSampler | None) -> list[Row]:
    import torch

    is_cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if is_cuda else (lambda: None)
    rows: list[Row] = []
    siglip_fp32 = models.siglip
    for dtype_name in dtypes:
        dtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype_name]
        steps = Steps(models, sizes, device, dtype)
        for batch in sizes.batches:
            host = torch.randint(0, 256, (batch, 3, sizes.det_size, sizes.det_size), dtype=torch.uint8)
            host = host.pin_memory() if is_cuda else host
            x = steps.upload(host)
            faces = steps.warp_faces(x)
            cases = (
                ("YOLOv8s detect+NMS", lambda: steps.detect(steps.upload(host)), batch),
                ("SigLIP SO400M/14-384", lambda: steps.embed(x), batch),
                ("ArcFace R50", lambda: steps.faces(faces), batch),
                ("whole GPU chain", lambda: steps.chain(host), batch),
            )
            for stage, fn, items in cases:
                row = Row(stage, device, dtype_name, batch)
                if time.perf_counter() > deadline:
                    row.note = "skipped: time budget spent"
                    rows.append(row)
                    continue
                if is_cuda:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                try:
                    with torch.inference_mode():
                        if stage == "whole GPU chain" and sampler is not None:
                            with sampler:
                                per_call, n = timed(fn, sync, sizes.seconds)
                            row.util = sampler.mean
                        else:
                            per_call, n = timed(fn, sync, sizes.seconds)
                    row.rate, row.ms = items / per_call, per_call * 1000
                    row.note = f"{n} batches"
                    if is_cuda:
                        row.mem_mib = torch.cuda.max_memory_allocated() / 2**20
                except Exception as exc:  # e.g. out of memory at one size: the row says so, the rest runs
                    row.note = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
                rows.append(row)
                log(f"  {stage:<24} {dtype_name} batch {batch:>3}: {row.rate:8.1f}/s  {row.note}")
    models.siglip = siglip_fp32.to(torch.float32)
    return rows


def measure_onnx_detector(models: Models, sizes: Sizes, device: str, deadline: float, workdir: Path) -> list[Row]:
    """YOLOv8s exported to ONNX (fp32, dynamic batch) on ONNX Runtime: CUDA EP where installed."""
    import onnxruntime as ort
    import torch

    available = ort.get_available_providers()
    is_cuda = device.startswith("cuda")
    if is_cuda and "CUDAExecutionProvider" not in available:
        return [Row("YOLOv8s ONNX Runtime", "cuda", "fp32", b,
                    note=f"CUDA EP not installed (providers: {', '.join(available)}); pip install onnxruntime-gpu")
                for b in sizes.batches]
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if is_cuda else ["CPUExecutionProvider"]
    path = workdir / "yolo.onnx"
    model = models.yolo.float().cpu()
    dummy = torch.zeros(1, 3, sizes.det_size, sizes.det_size)
    t = time.perf_counter()

    class Head(torch.nn.Module):
        def __init__(self, m) -> None:
            super().__init__()
            self.m = m

        def forward(self, x):
            out = self.m(x)
            return out[0] if isinstance(out, (list, tuple)) else out

    torch.onnx.export(Head(model), (dummy,), str(path), input_names=["images"], output_names=["preds"],
                      dynamic_axes={"images": {0: "batch"}, "preds": {0: "batch"}}, opset_version=17, dynamo=False)
    models.yolo.to(device)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=providers)
    used = session.get_providers()[0]
    trt = "TensorrtExecutionProvider" in available
    log(f"  ONNX export {time.perf_counter() - t:.1f}s; running on {used}"
        f"{'; TensorRT EP present (not built: engine build takes minutes)' if trt else ''}")
    rows = []
    for batch in sizes.batches:
        row = Row("YOLOv8s ONNX Runtime", used.replace("ExecutionProvider", "").lower(), "fp32", batch)
        if time.perf_counter() > deadline:
            row.note = "skipped: time budget spent"
            rows.append(row)
            continue
        images = np.random.default_rng(batch).integers(0, 256, (batch, 3, sizes.det_size, sizes.det_size),
                                                        dtype=np.uint8)

        def run() -> None:
            preds = session.run(None, {"images": images.astype(np.float32) / 255})[0]
            models.nms(torch.from_numpy(preds), conf_thres=0.35, iou_thres=0.5, classes=[0], max_det=50)

        try:
            per_call, n = timed(run, lambda: None, sizes.seconds)
            row.rate, row.ms, row.note = batch / per_call, per_call * 1000, f"{n} batches, host in/out, NMS in torch"
        except Exception as exc:
            row.note = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
        rows.append(row)
        log(f"  YOLOv8s ONNX Runtime     fp32 batch {batch:>3}: {row.rate:8.1f}/s  {row.note}")
    return rows


# ---- CPU side, per core ---------------------------------------------------------------------------
def photos(sizes: Sizes, n: int) -> list[np.ndarray]:
    from bench.vision import make_images

    w, h = sizes.photo_size
    out = []
    for img in make_images(n, max(w, h)):
        from PIL import Image

        out.append(np.asarray(Image.fromarray(img).resize((w, h))))
    return out


def measure_cpu(sizes: Sizes, gpu_device: str) -> list[Row]:
    """Decode and the CPU-only vision stages on one core (one thread, this process)."""
    import cv2
    from PIL import Image

    from gpu_ops.device import choose_device
    from gpu_ops.faces import MediaPipeFaceDetector
    from gpu_ops.loader import decode_rgb
    from gpu_ops.ocr import RapidOcr
    from gpu_ops.pose import MediaPipePose
    from gpu_ops.registry import get_spec
    from gpu_ops.segmentation import SelfieSegmenter

    cv2.setNumThreads(1)
    rows: list[Row] = []
    images = photos(sizes, max(sizes.decode_images, sizes.cpu_images))
    jpegs = []
    for img in images[:sizes.decode_images]:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        jpegs.append(buf.getvalue())

    def decode_all() -> None:
        for data in jpegs:
            rgb = decode_rgb(io.BytesIO(data), max_side=1600)
            scale = sizes.det_size / max(rgb.shape[:2])
            cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)

    per, n = timed(decode_all, lambda: None, sizes.seconds, min_iters=1, warmup=1)
    rows.append(Row("decode (CPU, per core)", "cpu", "uint8", 1, len(jpegs) / per, per * 1000 / len(jpegs),
                    note=f"JPEG {sizes.photo_size[0]}x{sizes.photo_size[1]} -> RGB -> {sizes.det_size} px, "
                         f"{len(jpegs) * n} images"))
    log(f"  decode per core: {rows[-1].rate:.1f} images/s")

    cpu = choose_device("cpu")
    ocr_device = choose_device(gpu_device) if gpu_device.startswith("cuda") else cpu
    small = images[:sizes.cpu_images]
    h, w = small[0].shape[:2]
    crops = [np.ascontiguousarray(img[h // 8:h - h // 8, w // 6:w - w // 6]) for img in small]
    stages = (
        ("pose (CPU, per core)", MediaPipePose(get_spec("pose"), None, cpu), crops, "MediaPipe Pose full, per crop"),
        ("segmentation (CPU, per core)", SelfieSegmenter(get_spec("segmentation"), None, cpu), crops,
         "selfie segmentation, per crop"),
        ("face detection (CPU, per core)", MediaPipeFaceDetector(get_spec("face_detector"), None, cpu), small,
         "MediaPipe full range"),
        ("OCR (per core)", RapidOcr(get_spec("ocr"), None, ocr_device), small,
         f"RapidOCR PP-OCRv4 on {'/'.join(p.replace('ExecutionProvider', '') for p in ocr_device.onnx_providers)}"),
    )
    for stage, model, inputs, what in stages:
        row = Row(stage, "cpu" if "CUDA" not in what else "cuda", "fp32", 1)
        try:
            model.load()
            model.predict(inputs[:1])
            per, n = timed(lambda m=model, x=inputs: m.predict(x), lambda: None, sizes.seconds, min_iters=1, warmup=0)
            row.rate, row.ms, row.note = len(inputs) / per, per * 1000 / len(inputs), f"{what}, {len(inputs) * n} items"
        except Exception as exc:
            row.note = f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
        rows.append(row)
        log(f"  {stage}: {row.rate:.1f}/s")
    return rows


# ---- report -----------------------------------------------------------------------------------------
def table(rows: list[Row], header: str) -> str:
    base = {(r.stage, r.device): r.rate for r in rows if r.dtype in ("fp32", "uint8") and r.batch == 1}
    chain = [r.rate for r in rows if r.stage == "whole GPU chain" and not math.isnan(r.rate)]
    best = max(chain) if chain else float("nan")
    lines = [header,
             f"{'stage':<32} {'device':<7} {'dtype':<6} {'batch':>5} {'images/s':>10} {'ms/batch':>9} "
             f"{'vs base':>8} {'GPU MiB':>8} {'util %':>7} {'cores to keep up':>17}  note"]
    for r in rows:
        b = base.get((r.stage, r.device), float("nan"))
        ratio = r.rate / b if b and not math.isnan(b) and not math.isnan(r.rate) else float("nan")
        cores = best / r.rate if "per core" in r.stage and r.rate > 0 and not math.isnan(best) else float("nan")
        lines.append(f"{r.stage:<32} {r.device:<7} {r.dtype:<6} {r.batch:>5} {_f(r.rate, 10, 1)} {_f(r.ms, 9, 2)} "
                     f"{_f(ratio, 7, 2)}x {_f(r.mem_mib, 8, 0)} {_f(r.util, 7, 0)} "
                     f"{_f(math.ceil(cores) if not math.isnan(cores) else cores, 17, 0)}  {r.note}")
    return "\n".join(lines)


def _f(v: float, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:>{width}.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="every step on the CPU with tiny models (< 60 s)")
    ap.add_argument("--device", default="cuda", help="cuda | cuda:N (default cuda; --cpu-smoke uses cpu)")
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="stop starting GPU measurements after this many seconds (default 420: the run fits 8 min)")
    ap.add_argument("--seconds", type=float, default=None, help="timed seconds per measurement (default 2)")
    ap.add_argument("--no-cpu-stages", action="store_true", help="skip the per-core CPU measurements")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    import tempfile

    import torch

    sizes = SMOKE if args.cpu_smoke else PRODUCTION
    if args.seconds is not None:
        sizes.seconds = args.seconds
    if args.cpu_smoke:
        device = "cpu"
        torch.set_num_threads(1)
    else:
        device = args.device
        if not torch.cuda.is_available():
            print(f"bench/gpu.py: no CUDA GPU here (torch {torch.__version__}, cuda build "
                  f"{torch.version.cuda or 'none'}): this benchmark measures the GPU path and needs one. "
                  "Use --cpu-smoke to check the script itself on the CPU.", file=sys.stderr)
            return 2
        torch.backends.cudnn.benchmark = True
    load = os.getloadavg()
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU (smoke: tiny models)"
    log(f"device {device}: {name}; torch {torch.__version__}; {os.cpu_count()} CPU cores; load average "
        f"{' '.join(f'{x:.2f}' for x in load)}")
    models = build_models(sizes, device)
    deadline = started + args.budget_s
    sampler = NvmlSampler(torch.device(device).index or 0) if device.startswith("cuda") else None
    rows = measure_gpu(models, sizes, device, ["fp32", "fp16"], deadline, sampler)
    with tempfile.TemporaryDirectory() as tmp:
        rows += measure_onnx_detector(models, sizes, device, deadline, Path(tmp))
    if not args.no_cpu_stages:
        rows = measure_cpu(sizes, device) + rows
    header = (f"GPU benchmark — {name}; torch {torch.__version__}; {os.cpu_count()} CPU cores; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (at start {' '.join(f'{x:.2f}' for x in load)}); "
              f"NVML {'on' if sampler is not None and sampler.handle is not None else 'n/a'}; "
              f"models (random weights): YOLO {models.params['yolo']:.1f} M, SigLIP {models.params['siglip']:.2f} M, "
              f"ArcFace {models.params['arcface']:.1f} M params; {'CPU SMOKE (tiny sizes)' if args.cpu_smoke else ''}\n"
              "vs base = rate / the same stage's fp32 batch-1 rate; cores to keep up = best whole-chain images/s "
              "÷ images/s per core (one face, one person crop per image)")
    print(table(rows, header))
    chain = [r for r in rows if r.stage == "whole GPU chain" and not math.isnan(r.rate)]
    if chain:
        best = max(chain, key=lambda r: r.rate)
        print(f"best whole chain: {best.rate:.1f} images/s ({best.dtype}, batch {best.batch}) -> 500,000 images in "
              f"{500_000 / best.rate / 60:.1f} min of GPU time")
    print(f"total {time.perf_counter() - started:.1f}s")
    missing = [s for s in STAGES if not any(r.stage == s for r in rows)]
    return 1 if missing and not args.no_cpu_stages else 0


if __name__ == "__main__":
    raise SystemExit(main())
