"""Per-image features derived from the vision stages, and the rule tags they imply.

Composition only: how many people, how the main one is framed, which of their landmarks are
visible, how large the largest face is in the frame. Deliberately absent, per the tagging
policy: body proportions, body-part sizes or anything that describes a body rather than a shot.

Shot type from the main person's *visible* landmarks (MediaPipe indices, visibility ≥ 0.5):
``full-body`` when a knee and an ankle/heel/foot are visible; ``half-body`` when a hip (or a
knee) is; ``close-up`` when only head and shoulders are; with no pose, a face covering at least
``CLOSE_UP_FACE_SHARE`` of the frame is a close-up; anything else is ``unknown``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

RULES_VERSION = "vision-rules-v1"
SHOT_TYPES = ("close-up", "half-body", "full-body", "unknown")
FRAMINGS = ("left", "center", "right", "none")
VISIBLE = 0.5
CLOSE_UP_FACE_SHARE = 0.04
PROMINENT_FACE_SHARE = 0.05

_HEAD = list(range(0, 11))
_SHOULDERS = [11, 12]
_HIPS = [23, 24]
_KNEES = [25, 26]
_FEET = [27, 28, 29, 30, 31, 32]


@dataclass(frozen=True)
class PersonObservation:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    score: float
    visibility: np.ndarray | None = None  # (33,) pose visibility, None when no pose was found


@dataclass(frozen=True)
class ImageFeatures:
    person_count: int
    face_count: int
    shot_type: str
    framing: str
    pose_visibility: float | None  # mean landmark visibility of the main person, [0, 1]
    relative_face_size: float | None  # largest face box area / image area, [0, 1]
    text_lines: int
    tags: list[str] = field(default_factory=list)


def shot_type(visibility: np.ndarray | None, relative_face_size: float | None = None) -> str:
    if visibility is not None and len(visibility):
        seen = np.nan_to_num(np.asarray(visibility, dtype=np.float64)) >= VISIBLE
        if seen[_KNEES].any() and seen[_FEET].any():
            return "full-body"
        if seen[_HIPS].any() or seen[_KNEES].any():
            return "half-body"
        if seen[_HEAD].any() or seen[_SHOULDERS].any():
            return "close-up"
    if relative_face_size is not None and relative_face_size >= CLOSE_UP_FACE_SHARE:
        return "close-up"
    return "unknown"


def framing(box: tuple[float, float, float, float] | None, width: int) -> str:
    """Where the main subject's centre sits on the rule-of-thirds grid, horizontally."""
    if box is None or width <= 0:
        return "none"
    centre = (box[0] + box[2]) / 2 / width
    return "left" if centre < 1 / 3 else "right" if centre > 2 / 3 else "center"


def _area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def image_features(
    width: int,
    height: int,
    persons: Sequence[PersonObservation],
    face_boxes: Sequence[tuple[float, float, float, float]],
    text_lines: int = 0,
) -> ImageFeatures:
    """Features and rule tags of one image; the main person is the one with the largest box."""
    frame = float(width * height) if width > 0 and height > 0 else 0.0
    main = max(persons, key=lambda p: (_area(p.box), p.score), default=None)
    largest_face = max((_area(b) for b in face_boxes), default=None)
    face_share = min(1.0, largest_face / frame) if largest_face is not None and frame else None
    visibility = main.visibility if main is not None else None
    pose_vis = float(np.clip(np.nan_to_num(visibility).mean(), 0, 1)) if visibility is not None else None
    shot = shot_type(visibility, face_share)
    subject = main.box if main is not None else max(face_boxes, key=_area, default=None)
    where = framing(subject, width)
    n = len(persons)
    tags = [f"people:{'none' if n == 0 else 'solo' if n == 1 else 'duo' if n == 2 else 'group'}"]
    if shot != "unknown":
        tags.append(f"shot:{shot}")
    if where != "none":
        tags.append(f"framing:{where}")
    if face_share is not None and face_share >= PROMINENT_FACE_SHARE:
        tags.append("face:prominent")
    if text_lines:
        tags.append("text:present")
    return ImageFeatures(
        person_count=n,
        face_count=len(face_boxes),
        shot_type=shot,
        framing=where,
        pose_visibility=pose_vis,
        relative_face_size=face_share,
        text_lines=text_lines,
        tags=tags,
    )
