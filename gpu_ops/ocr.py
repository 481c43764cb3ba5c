"""Text in images: RapidOCR (PaddleOCR's PP-OCRv4 detection + recognition models on ONNX Runtime).

``rapidocr-onnxruntime==1.4.4`` ships the ONNX files in its wheel, so nothing is downloaded.
Detection runs first; an image where it finds no text box returns at once with no recognition
work, which is the cheap skip for the many photos with no text at all.

By default the detector sees the image at its own size up to 960 px on the longer side
(RapidOCR's default upscales the *shorter* side to 736 px, about 2-4x slower on phone photos
for the same rendered-caption recall in our tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpu_ops.base import ModelBackend


@dataclass(frozen=True)
class TextLine:
    text: str
    confidence: float  # recognition score in [0, 1]
    box: tuple[float, ...]  # quadrilateral x1, y1, …, x4, y4 in image pixels (clockwise from top-left)


class RapidOcr(ModelBackend[list[TextLine]]):
    """Options: min_confidence (0.6), det_limit_side_len (960), det_limit_type ("max"), use_cls (False)."""

    def _load(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.min_confidence = float(self.options.get("min_confidence", 0.6))
        self.use_cls = bool(self.options.get("use_cls", False))
        cuda = "CUDAExecutionProvider" in self.device.onnx_providers
        self.engine = RapidOCR(
            det_limit_side_len=float(self.options.get("det_limit_side_len", 960)),
            det_limit_type=str(self.options.get("det_limit_type", "max")),
            det_use_cuda=cuda,
            cls_use_cuda=cuda,
            rec_use_cuda=cuda,
        )

    def _one(self, img: np.ndarray) -> list[TextLine]:
        h, w = img.shape[:2]
        # RapidOCR treats arrays as BGR (OpenCV order).
        result, _ = self.engine(np.ascontiguousarray(img[:, :, ::-1]), use_cls=self.use_cls)
        lines = []
        for points, text, score in result or []:
            text = str(text).strip()
            if not text or float(score) < self.min_confidence:
                continue
            pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
            pts[:, 0] = np.clip(pts[:, 0], 0, w)
            pts[:, 1] = np.clip(pts[:, 1], 0, h)
            lines.append(TextLine(text, float(np.clip(score, 0.0, 1.0)), tuple(float(v) for v in pts.ravel())))
        return lines

    def _predict(self, batch: list[np.ndarray]) -> list[list[TextLine]]:
        return [self._one(img) for img in batch]  # RapidOCR batches recognition within an image only
