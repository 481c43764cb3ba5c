"""Which backend and which weights, per model family: the catalog and the choice among backends.

``resources.models.ModelRegistry`` resolves a family to a backend through :func:`resolve`, and
``creatorlens models pull`` (``resources.model_pull``) downloads what :attr:`ModelSpec.files` /
:attr:`ModelSpec.hub_repo` name into :func:`weights_dir` and records checksums in its
``manifest.json`` (:mod:`gpu_ops.spec` holds the spec type and the cache layout; its names are
re-exported here).

The catalog names each backend by its class. Importing this module imports the backend modules,
which import only numpy and the standard library at module level: torch, transformers,
open_clip, ultralytics, mediapipe, onnxruntime, OpenCV and RapidOCR are imported inside each
backend's ``load()``.
"""

from __future__ import annotations

from pathlib import Path

from gpu_ops.detection import HogPersonDetector, MediaPipePersonDetector, YoloPersonDetector
from gpu_ops.embeddings import OpenClipEmbedder, SiglipEmbedder
from gpu_ops.faces import ArcFaceEmbedder, MediaPipeFaceDetector
from gpu_ops.objects import YoloObjectDetector
from gpu_ops.ocr import RapidOcr
from gpu_ops.pose import MediaPipePose
from gpu_ops.segmentation import SelfieSegmenter
from gpu_ops.spec import (
    MANIFEST,
    ModelSpec,
    WeightFile,
    WeightsMissing,
    available,
    problems,
    pull_command,
    read_manifest,
    sha256_file,
    weights_dir,
    write_manifest,
)
from gpu_ops.text_embed import MINILM

__all__ = [
    "CATALOG", "MANIFEST", "ModelSpec", "WeightFile", "WeightsMissing", "available", "families", "get_spec",
    "problems", "pull_command", "read_manifest", "resolve", "sha256_file", "weights_dir", "write_manifest",
]

_YOLO_RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.3.0"
_BUFFALO = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"

# family → backends in preference order (the first whose weights are present is used, unless forced).
CATALOG: dict[str, tuple[ModelSpec, ...]] = {
    "person_detector": (
        ModelSpec(
            "person_detector", "yolo", YoloPersonDetector, "yolov8s", "8.3.0",
            files=(WeightFile("yolov8s.pt", f"{_YOLO_RELEASE}/yolov8s.pt"),),
            description="ultralytics YOLOv8s, COCO class person",
        ),
        # CPU default: MediaPipe Pose's bundled person detector finds portraits and half-body
        # shots, which HOG's full-body pedestrian model misses (one person per image, though).
        ModelSpec(
            "person_detector", "mediapipe", MediaPipePersonDetector,
            "mediapipe-pose-person-detector", "0.10.14", bundled=True, device_kinds=("cpu",),
            description="MediaPipe Pose's bundled person detector (one person per image)",
        ),
        ModelSpec(
            "person_detector", "hog", HogPersonDetector, "opencv-hog-people", "4.14",
            bundled=True, device_kinds=("cpu",), description="OpenCV's bundled HOG + linear SVM people detector",
        ),
    ),
    "object_detector": (  # gpu_ops/objects.py says why YOLOv8's COCO classes rather than RAM++ or OWLv2
        ModelSpec(
            "object_detector", "yolo", YoloObjectDetector, "yolov8s", "8.3.0",
            files=(WeightFile("yolov8s.pt", f"{_YOLO_RELEASE}/yolov8s.pt"),),
            description="ultralytics YOLOv8s, the 80 COCO classes (object tags)",
        ),
    ),
    "pose": (
        ModelSpec(
            "pose", "mediapipe", MediaPipePose, "mediapipe-pose-full", "0.10.14",
            bundled=True, device_kinds=("cpu",), description="MediaPipe Pose (model_complexity=1), 33 landmarks",
        ),
    ),
    "segmentation": (
        ModelSpec(
            "segmentation", "mediapipe", SelfieSegmenter, "mediapipe-selfie-segmentation",
            "0.10.14", bundled=True, device_kinds=("cpu",), description="MediaPipe selfie segmentation",
        ),
    ),
    "ocr": (
        ModelSpec(
            "ocr", "rapidocr", RapidOcr, "rapidocr-ppocrv4", "1.4.4",
            bundled=True, description="PP-OCRv4 detection + recognition on ONNX Runtime (RapidOCR)",
        ),
    ),
    "face_detector": (
        ModelSpec(
            "face_detector", "mediapipe", MediaPipeFaceDetector, "mediapipe-face-detection",
            "0.10.14", bundled=True, device_kinds=("cpu",), description="MediaPipe face detection (short+full range)",
        ),
    ),
    "face_embedder": (
        ModelSpec(
            "face_embedder", "arcface", ArcFaceEmbedder, "insightface-buffalo_l-w600k_r50", "v0.7",
            files=(WeightFile("w600k_r50.onnx", _BUFFALO, member="w600k_r50.onnx"),),
            description="InsightFace ArcFace R50 (buffalo_l), 512-d, ONNX Runtime",
        ),
    ),
    "image_embedder": (
        ModelSpec(
            "image_embedder", "siglip", SiglipEmbedder, "google/siglip-so400m-patch14-384", "main",
            hub_repo="google/siglip-so400m-patch14-384", description="SigLIP SO400M/14 @384 via transformers, 1152-d",
        ),
        ModelSpec(
            "image_embedder", "openclip", OpenClipEmbedder, "ViT-L-14/laion2b_s32b_b82k", "main",
            hub_repo="laion/CLIP-ViT-L-14-laion2B-s32B-b82K", description="OpenCLIP ViT-L/14 (LAION-2B), 768-d",
        ),
        ModelSpec(  # fixed-resolution SigLIP 2 checkpoints load as SiglipModel through the Auto classes
            "image_embedder", "siglip2", SiglipEmbedder, "google/siglip2-so400m-patch14-384",
            "main", hub_repo="google/siglip2-so400m-patch14-384",
            description="SigLIP 2 SO400M/14 @384 via transformers, 1152-d",
        ),
    ),
    "text_embedder": (MINILM,),
}


def families() -> list[str]:
    return list(CATALOG)


def get_spec(family: str, backend: str | None = None) -> ModelSpec:
    try:
        specs = CATALOG[family]
    except KeyError:
        raise KeyError(f"unknown model family {family!r}; known: {', '.join(CATALOG)}") from None
    if backend is None:
        return specs[0]
    for spec in specs:
        if spec.backend == backend:
            return spec
    raise KeyError(f"unknown backend {backend!r} for {family}; known: {', '.join(s.backend for s in specs)}")


def resolve(family: str, cache_dir: Path, backend: str | None = None, device_kind: str = "cpu") -> ModelSpec:
    """The backend to use for ``family``.

    Forced (``backend`` given): that one, or :class:`WeightsMissing` naming the pull command.
    Otherwise the first backend in catalog order whose weights are present and which runs on
    ``device_kind``; if none is ready, :class:`WeightsMissing` for the preferred one.
    """
    if backend:
        spec = get_spec(family, backend)
        if found := problems(cache_dir, spec):
            raise WeightsMissing(spec, weights_dir(cache_dir, spec), "; ".join(found))
        return spec
    specs = CATALOG[family]
    for spec in specs:
        if device_kind in spec.device_kinds and available(cache_dir, spec):
            return spec
    for spec in specs:  # a CPU-only backend still works on a GPU machine
        if available(cache_dir, spec):
            return spec
    first = specs[0]
    raise WeightsMissing(first, weights_dir(cache_dir, first), "; ".join(problems(cache_dir, first)))
