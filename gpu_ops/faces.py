"""Faces: detection (MediaPipe, bundled), alignment, 512-d ArcFace embeddings (ONNX Runtime), clustering.

- :class:`MediaPipeFaceDetector` finds faces with MediaPipe's bundled full-range face detector and
  returns boxes, scores and its six keypoints (eyes, nose tip, mouth centre, ear tragions).
- :func:`align_face` warps a face onto ArcFace's 112x112 template with a similarity transform
  from the eyes, nose and mouth centre (MediaPipe gives the mouth centre, not its corners, so the
  template's two mouth corners are averaged).
- :class:`ArcFaceEmbedder` runs InsightFace's ``w600k_r50.onnx`` (from ``buffalo_l``) directly on
  ONNX Runtime: the ``insightface`` package is not needed (it would pull protobuf 7, which
  ``mediapipe==0.10.14`` cannot use). Input ``N x 3 x 112 x 112`` RGB scaled to [-1, 1];
  output ``N x 512``, L2-normalised here. A model exported with a fixed batch of 1 is fed one
  face at a time.
- :func:`cluster_embeddings` groups one creator's faces: DBSCAN on cosine distance, in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gpu_ops.base import ModelBackend
from gpu_ops.detection import Box

EMBEDDING_DIM = 512
ALIGNED_SIZE = 112
# InsightFace's ArcFace template for 112x112: subject's right eye, left eye, nose, mouth corners.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
# MediaPipe keypoint order: right eye, left eye, nose tip, mouth centre, right ear, left ear.
_TEMPLATE_4 = np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(axis=0, keepdims=True)])


@dataclass(frozen=True)
class FaceBox(Box):
    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((6, 2), np.float32))
    # (6, 2) pixels: right eye, left eye, nose tip, mouth centre, right ear, left ear


class MediaPipeFaceDetector(ModelBackend[list[FaceBox]]):
    """Options: model_selection (1 = full range, up to ~5 m; 0 = short range), min_confidence, min_face_px."""

    def _load(self) -> None:
        import mediapipe as mp

        self.min_face_px = float(self.options.get("min_face_px", 16))
        self.detector = mp.solutions.face_detection.FaceDetection(
            model_selection=int(self.options.get("model_selection", 1)),
            min_detection_confidence=float(self.options.get("min_confidence", 0.5)),
        )

    def _one(self, img: np.ndarray) -> list[FaceBox]:
        h, w = img.shape[:2]
        result = self.detector.process(np.ascontiguousarray(img))
        faces = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            x1, y1 = max(0.0, rel.xmin * w), max(0.0, rel.ymin * h)
            x2, y2 = min(float(w), (rel.xmin + rel.width) * w), min(float(h), (rel.ymin + rel.height) * h)
            if min(x2 - x1, y2 - y1) < self.min_face_px:
                continue
            kps = np.array([(k.x * w, k.y * h) for k in det.location_data.relative_keypoints], dtype=np.float32)
            score = float(np.clip(det.score[0] if det.score else 0.0, 0.0, 1.0))
            faces.append(FaceBox(float(x1), float(y1), float(x2), float(y2), score, kps))
        return sorted(faces, key=lambda f: -f.score)

    def _predict(self, batch: list[np.ndarray]) -> list[list[FaceBox]]:
        return [self._one(img) for img in batch]  # the legacy graph takes one image at a time


def align_face(img: np.ndarray, face: FaceBox, size: int = ALIGNED_SIZE) -> np.ndarray:
    """The face warped onto ArcFace's template: RGB uint8 (size, size, 3)."""
    import cv2

    template = _TEMPLATE_4 * (size / ALIGNED_SIZE)
    matrix, _ = cv2.estimateAffinePartial2D(face.keypoints[:4].astype(np.float32), template, method=cv2.LMEDS)
    if matrix is None:  # degenerate keypoints: fall back to the square box around the face
        side = max(face.width, face.height)
        cx, cy = (face.x1 + face.x2) / 2, (face.y1 + face.y2) / 2
        scale = size / max(side, 1.0)
        matrix = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]], dtype=np.float32)
    return cv2.warpAffine(img, matrix, (size, size), borderValue=0)


class ArcFaceEmbedder(ModelBackend[np.ndarray]):
    """ArcFace on ONNX Runtime: aligned 112x112 RGB faces in, unit-length 512-d float32 vectors out."""

    def _model_path(self) -> Path:
        if self.weights is None:
            raise ValueError("ArcFaceEmbedder needs weights: the cache folder or an .onnx file")
        path = Path(self.weights)
        return path / self.spec.files[0].name if path.is_dir() else path

    def _load(self) -> None:
        import onnxruntime as ort

        path = self._model_path()
        if not path.exists():
            raise FileNotFoundError(f"ArcFace model {path} does not exist")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=self.device.onnx_providers)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if list(inp.shape[1:]) != [3, ALIGNED_SIZE, ALIGNED_SIZE]:
            raise ValueError(f"{path.name}: input shape {inp.shape} is not N x 3 x 112 x 112")
        out = self.session.get_outputs()[0]
        if out.shape[-1] != EMBEDDING_DIM:
            raise ValueError(f"{path.name}: output shape {out.shape} is not N x {EMBEDDING_DIM}")
        # A symbolic (or missing) batch dimension takes any batch; a fixed one is honoured.
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None

    def _run(self, blob: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: blob})[0], dtype=np.float32)

    def _predict(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        blob = np.stack([np.asarray(f, dtype=np.float32) for f in batch]).transpose(0, 3, 1, 2)
        blob = np.ascontiguousarray((blob - 127.5) / 127.5, dtype=np.float32)
        if self.fixed_batch:
            step = self.fixed_batch
            chunks = []
            for i in range(0, len(blob), step):
                part = blob[i:i + step]
                pad = step - len(part)
                if pad:
                    part = np.concatenate([part, np.zeros((pad, *part.shape[1:]), np.float32)])
                chunks.append(self._run(part)[: step - pad])
            emb = np.concatenate(chunks)
        else:
            emb = self._run(blob)
        emb = emb.reshape(len(batch), -1)
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        return list(emb / np.maximum(norms, 1e-12))


def cluster_embeddings(embeddings: np.ndarray, eps: float = 0.55, min_samples: int = 2) -> np.ndarray:
    """DBSCAN on cosine distance (``1 - cos``): cluster label per row, -1 for noise.

    A face is a core point when at least ``min_samples`` faces (itself included) lie within
    ``eps``; clusters grow through core points. Labels are renumbered by cluster size (largest is
    0), ties by first row, so the same input always gets the same labels.
    """
    n = len(embeddings)
    labels = np.full(n, -1, dtype=np.int64)
    if n == 0:
        return labels
    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    near = (1.0 - x @ x.T) <= eps
    core = near.sum(axis=1) >= min_samples
    current = 0
    for start in range(n):
        if labels[start] != -1 or not core[start]:
            continue
        labels[start] = current
        frontier = [start]
        while frontier:
            point = frontier.pop()
            for other in np.flatnonzero(near[point]):
                if labels[other] == -1:
                    labels[other] = current
                    if core[other]:
                        frontier.append(other)
        current += 1
    if current == 0:
        return labels
    sizes = np.bincount(labels[labels >= 0], minlength=current)
    first = np.array([np.flatnonzero(labels == k)[0] for k in range(current)])
    order = sorted(range(current), key=lambda k: (-sizes[k], first[k]))
    remap = np.full(current, -1, dtype=np.int64)
    remap[order] = np.arange(current)
    return np.where(labels >= 0, remap[np.maximum(labels, 0)], -1)
