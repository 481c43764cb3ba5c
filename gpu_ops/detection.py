"""Person detection: one family, three backends, one output type.

Every backend answers ``predict(images)`` (RGB ``uint8`` arrays) with one list of
:class:`PersonBox` per image, in that image's pixel coordinates, best score first.

- :class:`YoloPersonDetector` — ultralytics YOLOv8 (COCO class ``person``), batched, fp16 on CUDA.
  ``weights`` is the cache folder (holding ``yolov8s.pt``) or one model file: a ``.pt`` checkpoint,
  a ``.yaml`` model config (random weights: tests, benchmarks) or an exported ``.onnx`` model,
  which ultralytics then runs on ONNX Runtime. Loading sets nothing in ``os.environ``: ultralytics
  reads its own ``YOLO_*`` variables at import, from whatever environment the operator gave the
  process; the backend turns ultralytics' usage analytics off through its ``SETTINGS`` object and
  passes everything else (device, fp16, verbosity) as arguments.
- :class:`MediaPipePersonDetector` — the person detector bundled in MediaPipe Pose (CPU, offline).
  It finds one person per image (the legacy solution is single-person); the box is the extent of
  the landmarks it sees, widened by a margin. This is the CPU default: Instagram photos are mostly
  portraits and half-body shots, which HOG's full-body pedestrian model does not see.
- :class:`HogPersonDetector` — OpenCV's bundled HOG + linear SVM people detector (CPU, offline),
  for full-body, upright people; its SVM margin is squashed to a [0, 1] score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpu_ops.base import ModelBackend
from gpu_ops.compat import ensure_torchvision, restore_pil_open

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Box:
    """A scored box in image pixels (x1, y1 top-left; x2, y2 bottom-right)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


@dataclass(frozen=True)
class PersonBox(Box):
    def clipped(self, width: int, height: int) -> PersonBox:
        return PersonBox(
            float(np.clip(self.x1, 0, width)), float(np.clip(self.y1, 0, height)),
            float(np.clip(self.x2, 0, width)), float(np.clip(self.y2, 0, height)),
            float(np.clip(self.score, 0.0, 1.0)),
        )


class YoloPersonDetector(ModelBackend[list[PersonBox]]):
    """ultralytics YOLO, class ``person`` only. Options: conf, iou, imgsz, max_det, person_class."""

    def _model_path(self) -> Path:
        if self.weights is None:
            raise ValueError("YoloPersonDetector needs weights: the cache folder or a .pt/.yaml/.onnx file")
        path = Path(self.weights)
        if path.is_dir():
            return path / self.spec.files[0].name
        return path

    @property
    def version(self) -> str:
        path = self._model_path() if self.weights is not None else None
        if path is not None and path.suffix == ".yaml":
            return f"{path.name}@random-init"  # built from its config: no trained weights at all
        return super().version

    def _load(self) -> None:
        path = self._model_path()
        if not path.exists() and path.suffix != ".yaml":  # ultralytics resolves its bundled configs by name
            raise FileNotFoundError(f"YOLO weights {path} do not exist")
        ensure_torchvision()  # ultralytics imports torchvision
        from ultralytics import YOLO
        from ultralytics.utils import SETTINGS

        restore_pil_open()  # ultralytics patched PIL.Image.open for the whole process (see compat)
        if SETTINGS.get("sync"):  # no usage analytics from predict(); ultralytics' own documented switch
            SETTINGS.update(sync=False)
        self.format = path.suffix.lstrip(".").lower()
        self.model = YOLO(str(path), task="detect")
        self.run_device = self.device.torch
        if self.format in ("pt", "yaml"):
            self.model.to(self.device.torch)
        elif self.device.kind == "cuda" and "CUDAExecutionProvider" not in self.device.onnx_providers:
            # An exported model runs on ONNX Runtime. Asked for CUDA without onnxruntime's CUDA
            # provider, ultralytics would try to pip-install onnxruntime-gpu: run it on the CPU.
            self.run_device = "cpu"
        names = self.model.names or {}
        by_name = {str(v).lower(): int(k) for k, v in names.items()}
        self.person_class = int(self.options.get("person_class", by_name.get("person", 0)))
        self.conf = float(self.options.get("conf", 0.35))
        self.iou = float(self.options.get("iou", 0.5))
        self.imgsz = int(self.options.get("imgsz", 640))
        self.max_det = int(self.options.get("max_det", 50))

    def _predict(self, batch: list[np.ndarray]) -> list[list[PersonBox]]:
        # ultralytics reads numpy arrays as BGR (OpenCV order).
        bgr = [np.ascontiguousarray(img[:, :, ::-1]) for img in batch]
        results = self.model.predict(
            bgr,
            conf=self.conf,
            iou=self.iou,
            imgsz=self.imgsz,
            max_det=self.max_det,
            classes=[self.person_class],
            device=self.run_device,
            half=self.device.fp16 and self.run_device != "cpu",
            verbose=False,
        )
        out: list[list[PersonBox]] = []
        for img, result in zip(batch, results, strict=True):
            boxes = result.boxes
            xyxy = boxes.xyxy.float().cpu().numpy() if len(boxes) else np.zeros((0, 4), np.float32)
            conf = boxes.conf.float().cpu().numpy() if len(boxes) else np.zeros((0,), np.float32)
            h, w = img.shape[:2]
            found = [PersonBox(*map(float, b), float(s)).clipped(w, h) for b, s in zip(xyxy, conf, strict=True)]
            out.append(sorted((b for b in found if b.width > 0 and b.height > 0), key=lambda b: -b.score))
        return out


class MediaPipePersonDetector(ModelBackend[list[PersonBox]]):
    """MediaPipe Pose's bundled person detector (model_complexity=1: the only one shipped offline)."""

    def _load(self) -> None:
        import mediapipe as mp

        self.margin = float(self.options.get("margin", 0.08))
        self.min_visibility = float(self.options.get("min_visibility", 0.5))
        self.pose = mp.solutions.pose.Pose(
            static_image_mode=True,
            model_complexity=1,
            enable_segmentation=False,
            min_detection_confidence=float(self.options.get("min_detection_confidence", 0.5)),
        )

    def _detect(self, img: np.ndarray) -> list[PersonBox]:
        result = self.pose.process(np.ascontiguousarray(img))
        if result.pose_landmarks is None:
            return []
        h, w = img.shape[:2]
        lm = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float32)
        seen = lm[(lm[:, 2] >= self.min_visibility) & (lm[:, 0] >= 0) & (lm[:, 0] <= 1)
                  & (lm[:, 1] >= 0) & (lm[:, 1] <= 1)]
        if len(seen) < 3:
            return []
        x1, y1 = seen[:, 0].min() * w, seen[:, 1].min() * h
        x2, y2 = seen[:, 0].max() * w, seen[:, 1].max() * h
        # Landmarks are joints: widen to cover the head top, hands and clothing around them.
        mx, my = self.margin * max(x2 - x1, 1.0) + 0.02 * w, self.margin * max(y2 - y1, 1.0) + 0.02 * h
        box = PersonBox(x1 - mx, y1 - 2 * my, x2 + mx, y2 + my, float(seen[:, 2].mean()))
        return [box.clipped(w, h)]

    def _predict(self, batch: list[np.ndarray]) -> list[list[PersonBox]]:
        return [self._detect(img) for img in batch]  # the legacy graph takes one image at a time


class HogPersonDetector(ModelBackend[list[PersonBox]]):
    """OpenCV HOG people detector (64x128 upright pedestrians). Options: max_side, min_score, nms."""

    def _load(self) -> None:
        import cv2

        self.cv2 = cv2
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.max_side = int(self.options.get("max_side", 640))
        self.min_score = float(self.options.get("min_score", 0.5))
        self.nms = float(self.options.get("nms", 0.45))

    def _detect(self, img: np.ndarray) -> list[PersonBox]:
        cv2 = self.cv2
        h, w = img.shape[:2]
        scale = min(1.0, self.max_side / max(h, w))
        small = cv2.resize(img, (round(w * scale), round(h * scale))) if scale < 1 else img
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        if min(gray.shape) < 128:
            return []  # smaller than the detection window
        rects, weights = self.hog.detectMultiScale(gray, winStride=(8, 8), padding=(8, 8), scale=1.05)
        if len(rects) == 0:
            return []
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).ravel()))  # SVM margin → (0, 1)
        keep = cv2.dnn.NMSBoxes([list(map(int, r)) for r in rects], scores.tolist(), self.min_score, self.nms)
        boxes = []
        for i in np.asarray(keep).ravel():
            x, y, bw, bh = (float(v) / scale for v in rects[i])
            boxes.append(PersonBox(x, y, x + bw, y + bh, float(scores[i])).clipped(w, h))
        return sorted(boxes, key=lambda b: -b.score)

    def _predict(self, batch: list[np.ndarray]) -> list[list[PersonBox]]:
        return [self._detect(img) for img in batch]
