"""Text in images: RapidOCR (PaddleOCR's PP-OCRv4 detection + recognition models on ONNX Runtime).

``rapidocr-onnxruntime==1.4.4`` ships the ONNX files in its wheel, so nothing is downloaded.
Detection runs first; an image where it finds no text box returns at once with no recognition
work, which is the cheap skip for the many photos with no text at all.

By default the detector sees the image at its own size up to 960 px on the longer side
(RapidOCR's default upscales the *shorter* side to 736 px, about 2-4x slower on phone photos
for the same rendered-caption recall in our tests).

:func:`text_likelihood` is a cheaper skip still, before detection: the densest 32×32 tile of Canny edges on
a grey copy 384 px on the longer side (~2 ms). Text, even small captions on a flat background, makes
dense edges (0.07 and up on our rendered captions; 0.2-0.4 on ordinary photos); a flat or blurred image
with none under :data:`TEXT_EDGE_DENSITY` (0.03) cannot hold legible text and skips OCR. Option
``threads`` sets ONNX Runtime's intra-op threads (default: its own choice; 1 in a worker pool).
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


TEXT_EDGE_DENSITY = 0.03
_PREFILTER_SIDE = 384
_PREFILTER_TILE = 32


def text_likelihood(img: np.ndarray) -> float:
    """Share of edge pixels in the densest 32×32 tile of a grey copy 384 px on the longer side (0..1)."""
    import cv2

    grey = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    scale = _PREFILTER_SIDE / max(grey.shape[:2])
    if scale < 1:
        grey = cv2.resize(grey, (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    edges = cv2.Canny(grey, 80, 160) > 0
    h, w = edges.shape
    th, tw = h // _PREFILTER_TILE, w // _PREFILTER_TILE
    if th == 0 or tw == 0:
        return float(edges.mean()) if edges.size else 0.0
    tiles = edges[:th * _PREFILTER_TILE, :tw * _PREFILTER_TILE].reshape(th, _PREFILTER_TILE, tw, _PREFILTER_TILE)
    return float(tiles.mean(axis=(1, 3)).max())


def looks_like_text(img: np.ndarray, threshold: float = TEXT_EDGE_DENSITY) -> bool:
    return text_likelihood(img) >= threshold


class RapidOcr(ModelBackend[list[TextLine]]):
    """Options: min_confidence (0.6), det_limit_side_len (960), det_limit_type ("max"), use_cls (False),
    threads (ONNX Runtime intra-op threads; default its own)."""

    def _load(self) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.min_confidence = float(self.options.get("min_confidence", 0.6))
        self.use_cls = bool(self.options.get("use_cls", False))
        cuda = "CUDAExecutionProvider" in self.device.onnx_providers
        threads = {"intra_op_num_threads": int(self.options["threads"])} if self.options.get("threads") else {}
        self.engine = RapidOCR(
            **threads,
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
