"""Silhouette statistics from MediaPipe's bundled selfie segmentation, per person crop.

Stands in for PP-HumanSeg (``paddleseg`` 2.8 pins ``opencv-python<=4.6`` and does not import with
numpy 2). Only numbers leave this module: the share of the crop the silhouette covers, how much
of the silhouette's own bounding box it fills, and that box's aspect ratio. Mask pixels are
never returned or stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpu_ops.base import ModelBackend


@dataclass(frozen=True)
class Silhouette:
    mask_area: float  # silhouette pixels / crop pixels, in [0, 1]
    fill_ratio: float  # silhouette pixels / its bounding box pixels, in [0, 1] (0 when empty)
    aspect_ratio: float  # bounding box height / width (0 when empty)


def silhouette_stats(mask: np.ndarray, threshold: float = 0.5) -> Silhouette:
    """Statistics of a soft mask (H, W) in [0, 1]."""
    binary = mask >= threshold
    total = binary.size
    area = int(binary.sum())
    if area == 0 or total == 0:
        return Silhouette(0.0, 0.0, 0.0)
    rows = np.flatnonzero(binary.any(axis=1))
    cols = np.flatnonzero(binary.any(axis=0))
    h = int(rows[-1] - rows[0] + 1)
    w = int(cols[-1] - cols[0] + 1)
    return Silhouette(area / total, area / (h * w), h / w)


class SelfieSegmenter(ModelBackend[Silhouette]):
    """MediaPipe selfie segmentation (``model_selection`` 0: general 256x256; 1: landscape)."""

    def _load(self) -> None:
        import mediapipe as mp

        self.threshold = float(self.options.get("threshold", 0.5))
        self.segmenter = mp.solutions.selfie_segmentation.SelfieSegmentation(
            model_selection=int(self.options.get("model_selection", 0))
        )

    def _predict(self, batch: list[np.ndarray]) -> list[Silhouette]:
        out = []
        for crop in batch:  # the legacy graph takes one image at a time
            result = self.segmenter.process(np.ascontiguousarray(crop))
            out.append(silhouette_stats(result.segmentation_mask, self.threshold))
        return out
