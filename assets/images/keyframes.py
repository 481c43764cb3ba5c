"""Reels and video posts: a few keyframes of the video file, each an image of its post.

OpenCV (``cv2.VideoCapture``), not PyAV: opencv-python is already a dependency of the vision
stage and its wheels bundle FFmpeg (H.264/HEVC MP4, WebM), so reading a reel needs nothing new;
PyAV would add a second FFmpeg build beside it for the same seek-and-decode. The frames are taken
at evenly spaced times, ``(i + 0.5) / n`` of the duration: a reel's cover image is already the
post's first image, and evenly spaced frames cover a video's parts without a scene detector that
would need tuning per content type. Each frame is encoded as a JPEG (quality 95) and goes through
the same :func:`assets.images.imaging.process_image_bytes` as every other image.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import cv2
import numpy as np

from assets.images.imaging import ImageError

__all__ = ["Keyframe", "extract_keyframes", "keyframe_key", "keyframe_times", "keyframe_uri"]

_JPEG_QUALITY = 95


@dataclass(frozen=True)
class Keyframe:
    seconds: float  # the frame's timestamp in the video (the time it was sought at)
    jpeg: bytes


def keyframe_times(duration_s: float, n: int) -> list[float]:
    """``n`` evenly spaced timestamps inside ``[0, duration_s)``: the middles of ``n`` equal parts."""
    if n <= 0 or duration_s <= 0:
        return []
    return [duration_s * (i + 0.5) / n for i in range(n)]


def keyframe_key(platform: str, post_id: str, seconds: float) -> str:
    """``<platform>:<post_id>:t<milliseconds>``: stable for the same video and keyframe count."""
    return f"{platform}:{post_id}:t{round(seconds * 1000)}"


def keyframe_uri(video_url: str, seconds: float) -> str:
    """The frame's source as a W3C media-fragment URI (``#t=<seconds>``) of the video."""
    return f"{video_url}#t={seconds:.3f}"


def extract_keyframes(data: bytes, n: int, *, max_side: int = 1920) -> list[Keyframe]:
    """Decode ``n`` keyframes of the video in ``data``; ``ImageError("unsupported_format")`` when
    OpenCV cannot open it or read any frame (the bytes are not a video it knows)."""
    if n <= 0:
        return []
    if not data:
        raise ImageError("empty_file", "video file is empty")
    fd, path = tempfile.mkstemp(suffix=".video")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        capture = cv2.VideoCapture(path)
        try:
            if not capture.isOpened():
                raise ImageError("unsupported_format", "not a video OpenCV can open")
            fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
            frames = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
            duration = frames / fps if fps > 0 and frames > 0 else 0.0
            times = keyframe_times(duration, n) if duration > 0 else [0.0]
            keyframes = []
            for at in times:
                capture.set(cv2.CAP_PROP_POS_MSEC, at * 1000.0)
                ok, frame = capture.read()
                if not ok or frame is None:
                    continue
                # The seek lands on the frame at (or just after) ``at``: the requested time names it,
                # so the same video always gives the same keys.
                keyframes.append(Keyframe(round(at, 3), _jpeg(frame, max_side)))
        finally:
            capture.release()
    finally:
        os.unlink(path)
    if not keyframes:
        raise ImageError("unsupported_format", "no frame of the video could be decoded")
    return keyframes


def _jpeg(frame_bgr: np.ndarray, max_side: int) -> bytes:
    height, width = frame_bgr.shape[:2]
    scale = max_side / max(height, width)
    if scale < 1.0:
        frame_bgr = cv2.resize(frame_bgr, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise ImageError("internal_error", "could not encode a keyframe as JPEG")
    return encoded.tobytes()
