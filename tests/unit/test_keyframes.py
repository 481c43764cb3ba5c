"""Keyframes of a real (OpenCV-written) MP4: evenly spaced, distinct, decodable by the image path."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from assets.images.imaging import ImageError, process_image_bytes
from assets.images.keyframes import extract_keyframes, keyframe_key, keyframe_times, keyframe_uri


def _video(path, frames: int = 50, fps: int = 10) -> bytes:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (160, 120))
    for i in range(frames):  # each second its own colour, so frames from different parts differ
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:] = ((i // fps) * 50 % 256, 255 - (i // fps) * 40 % 256, 128)
        cv2.putText(frame, str(i), (30, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def test_times_are_the_middles_of_equal_parts():
    assert keyframe_times(10.0, 4) == [1.25, 3.75, 6.25, 8.75]
    assert keyframe_times(0.0, 3) == [] and keyframe_times(5.0, 0) == []


def test_keyframes_of_a_real_video_are_distinct_images_with_their_times(tmp_path):
    frames = extract_keyframes(_video(tmp_path / "reel.mp4"), 3)  # 5 s at 10 fps
    assert [f.seconds for f in frames] == [0.833, 2.5, 4.167]  # the middles of three parts, in ms
    processed = [process_image_bytes(f.jpeg) for f in frames]
    assert all((p.width, p.height) == (160, 120) and p.source_format == "JPEG" for p in processed)
    assert len({p.sha256 for p in processed}) == 3  # different moments, different pictures
    assert keyframe_key("instagram", "42", frames[1].seconds) == "instagram:42:t2500"
    assert keyframe_uri("https://cdn/v.mp4", 2.5) == "https://cdn/v.mp4#t=2.500"


def test_bytes_that_are_no_video_are_a_clear_error():
    with pytest.raises(ImageError) as err:
        extract_keyframes(b"\xff\xd8\xff\xe0 a JPEG header, not a video" * 10, 3)
    assert err.value.reason == "unsupported_format"
    with pytest.raises(ImageError) as err:
        extract_keyframes(b"", 3)
    assert err.value.reason == "empty_file"
