"""Pose keypoints: MediaPipe Pose, 33 landmarks with visibility, on each person crop.

``mediapipe==0.10.14`` ships ``pose_landmark_full`` inside the wheel, which is
``model_complexity=1``; complexities 0 and 2 try to download their model, so only 1 is used.

Coordinates come back normalised to the crop (``x``, ``y`` in [0, 1] inside it). MediaPipe also
extrapolates landmarks that fall outside the crop; those are not visible in this crop, so they
are returned with ``x = y = NaN`` and visibility 0 rather than as points outside the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpu_ops.base import ModelBackend

N_LANDMARKS = 33
LANDMARK_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
assert len(LANDMARK_NAMES) == N_LANDMARKS


@dataclass(frozen=True)
class Pose:
    """``landmarks``: float32 (33, 4) = x, y (crop-normalised, NaN when outside the crop), z, visibility."""

    landmarks: np.ndarray

    @property
    def visibility(self) -> np.ndarray:
        return self.landmarks[:, 3]

    def visible(self, threshold: float = 0.5) -> np.ndarray:
        return self.visibility >= threshold


def in_crop(landmarks: np.ndarray) -> np.ndarray:
    """MediaPipe landmarks (33, 4) with the ones outside the crop blanked (x, y NaN, visibility 0)."""
    out = landmarks.astype(np.float32, copy=True)
    outside = (out[:, 0] < 0) | (out[:, 0] > 1) | (out[:, 1] < 0) | (out[:, 1] > 1)
    out[outside, 0:2] = np.nan
    out[outside, 3] = 0.0
    out[:, 3] = np.clip(out[:, 3], 0.0, 1.0)
    return out


class MediaPipePose(ModelBackend[Pose | None]):
    """One ``Pose`` per crop, or None when MediaPipe finds no person in it."""

    def _load(self) -> None:
        import mediapipe as mp

        self.pose = mp.solutions.pose.Pose(
            static_image_mode=True,
            model_complexity=1,
            enable_segmentation=False,
            min_detection_confidence=float(self.options.get("min_detection_confidence", 0.5)),
        )

    def _one(self, crop: np.ndarray) -> Pose | None:
        result = self.pose.process(np.ascontiguousarray(crop))
        if result.pose_landmarks is None:
            return None
        raw = np.array([(p.x, p.y, p.z, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float32)
        return Pose(in_crop(raw))

    def _predict(self, batch: list[np.ndarray]) -> list[Pose | None]:
        return [self._one(crop) for crop in batch]  # the legacy graph takes one image at a time
