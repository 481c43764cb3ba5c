"""The vision model layer (``gpu_ops``) on real photos with the models the wheels ship, and on tiny
random models built here with the real classes (YOLOv8 from its config, an ArcFace-shaped ONNX).

Each model is loaded once per module: they load slowly on shared cores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data

from gpu_ops.compat import ensure_torchvision
from gpu_ops.detection import HogPersonDetector, MediaPipePersonDetector, PersonBox, YoloPersonDetector
from gpu_ops.device import choose_device
from gpu_ops.faces import ARCFACE_TEMPLATE, ArcFaceEmbedder, FaceBox, MediaPipeFaceDetector, align_face
from gpu_ops.ocr import RapidOcr
from gpu_ops.pose import LANDMARK_NAMES, MediaPipePose
from gpu_ops.registry import get_spec
from gpu_ops.segmentation import SelfieSegmenter, silhouette_stats
from tests.support.models import random_yolo_checkpoint, tiny_arcface_onnx

CPU = choose_device("cpu")
NOSE, LEFT_HIP, RIGHT_HIP = (LANDMARK_NAMES.index(n) for n in ("nose", "left_hip", "right_hip"))


def _backend(cls, family: str, backend: str | None = None, weights: Path | None = None, **options):
    return cls(get_spec(family, backend), weights, CPU, options).load()


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return data.coffee()


@pytest.fixture(scope="module", autouse=True)
def offline_ultralytics(tmp_path_factory) -> Iterator[None]:
    """ultralytics' environment for this module, restored after: the test's choice, set before ultralytics'
    first import reads it (the backend itself sets nothing in the environment)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics")))
        mp.setenv("YOLO_OFFLINE", "1")
        mp.setenv("YOLO_AUTOINSTALL", "false")
        mp.setenv("YOLO_VERBOSE", "false")
        yield


@pytest.fixture(scope="module")
def yolo_files(tmp_path_factory) -> dict[str, Path]:
    """A random-weight YOLOv8n checkpoint and its ONNX export (dynamic batch), made offline."""
    directory = tmp_path_factory.mktemp("yolo")
    checkpoint = random_yolo_checkpoint(directory)
    from ultralytics import YOLO

    exported = Path(YOLO(str(checkpoint)).export(format="onnx", imgsz=320, dynamic=True, simplify=False))
    return {"pt": checkpoint, "onnx": exported, "yaml": Path("yolov8n.yaml")}


def _assert_boxes_contract(found: list[list[PersonBox]], images: list[np.ndarray]) -> None:
    assert len(found) == len(images)
    for boxes, img in zip(found, images, strict=True):
        h, w = img.shape[:2]
        assert all(isinstance(b, PersonBox) for b in boxes)
        assert all(0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h for b in boxes)
        assert all(0.0 <= b.score <= 1.0 for b in boxes)
        assert [b.score for b in boxes] == sorted((b.score for b in boxes), reverse=True)


def test_mediapipe_pose_on_the_astronaut_puts_her_head_above_her_hips(astronaut) -> None:
    pose = _backend(MediaPipePose, "pose").predict([astronaut])[0]
    assert pose is not None and pose.landmarks.shape == (33, 4)
    lm = pose.landmarks
    assert lm[NOSE, 3] > 0.9  # her face is plainly visible
    hips_y = np.nanmean(lm[[LEFT_HIP, RIGHT_HIP], 1])
    assert lm[NOSE, 1] < hips_y - 0.3  # image y grows downwards: head well above the hips
    located = ~np.isnan(lm[:, 0])
    assert ((lm[located, :2] >= 0) & (lm[located, :2] <= 1)).all()  # inside the crop, or blanked
    assert (lm[~located, 3] == 0).all()
    # A textureless image has nobody in it.
    assert _backend(MediaPipePose, "pose").predict([np.full((256, 256, 3), 127, np.uint8)]) == [None]


def test_mediapipe_person_detector_boxes_the_astronaut_and_nobody_in_a_coffee_cup(astronaut, coffee) -> None:
    found = _backend(MediaPipePersonDetector, "person_detector", "mediapipe").predict([astronaut, coffee])
    _assert_boxes_contract(found, [astronaut, coffee])
    assert len(found[0]) == 1 and found[1] == []
    box = found[0][0]
    face_centre = (225, 120)  # MediaPipe's face detector puts her face here (see the face test)
    assert box.x1 < face_centre[0] < box.x2 and box.y1 < face_centre[1] < box.y2
    assert box.width * box.height > 0.3 * 512 * 512  # she fills much of the portrait


def test_hog_detector_keeps_the_contract_and_skips_images_below_its_window(astronaut) -> None:
    hog = _backend(HogPersonDetector, "person_detector", "hog", min_score=0.0)
    tiny = np.zeros((60, 40, 3), np.uint8)
    found = hog.predict([astronaut, tiny])
    _assert_boxes_contract(found, [astronaut, tiny])
    assert found[1] == []


def test_yolo_random_model_end_to_end_from_its_config_and_checkpoint(yolo_files, astronaut) -> None:
    camera = np.stack([data.camera()] * 3, axis=-1)
    images = [astronaut, camera, astronaut[:200, :300]]
    # A random model's person scores are ~1e-4: a tiny threshold exercises boxes, classes and clipping.
    for weights in (yolo_files["yaml"], yolo_files["pt"]):
        yolo = _backend(YoloPersonDetector, "person_detector", "yolo", weights, conf=1e-6, max_det=5, imgsz=320)
        assert yolo.person_class == 0  # COCO's person (a random config names classes '0'..'79')
        found = yolo.predict(images)
        _assert_boxes_contract(found, images)
        assert all(1 <= len(boxes) <= 5 for boxes in found)
    assert yolo.version.startswith("random_yolov8n.pt@sha256:")  # rows never claim the catalog's yolov8s
    assert yolo.predict([]) == []


def test_yolo_onnx_export_runs_on_onnxruntime_through_the_same_backend(yolo_files, astronaut) -> None:
    images = [astronaut, np.ascontiguousarray(astronaut[:, ::-1])]
    options = {"conf": 1e-6, "max_det": 100, "imgsz": 320}
    torch_boxes = _backend(YoloPersonDetector, "person_detector", "yolo", yolo_files["pt"], **options).predict(images)
    onnx_backend = _backend(YoloPersonDetector, "person_detector", "yolo", yolo_files["onnx"], **options)
    assert onnx_backend.format == "onnx"
    onnx_boxes = onnx_backend.predict(images)
    _assert_boxes_contract(onnx_boxes, images)
    # Same weights, same score scale. (Which boxes survive is not comparable: a random model's
    # head emits one tied score everywhere, and tied boxes meet NMS in a different order.)
    for a, b in zip(torch_boxes, onnx_boxes, strict=True):
        assert a and b and a[0].score == pytest.approx(b[0].score, rel=1e-3)
    assert onnx_backend.version.startswith("random_yolov8n.onnx@sha256:")
    assert type(onnx_backend.model.predictor.model.backend).__name__ == "ONNXBackend"  # onnxruntime ran it


def test_face_detector_finds_the_astronauts_face_and_its_landmarks(astronaut, coffee) -> None:
    found = _backend(MediaPipeFaceDetector, "face_detector").predict([astronaut, coffee])
    assert len(found[0]) == 1 and found[1] == []
    face = found[0][0]
    assert face.score > 0.8 and 60 < face.width < 160
    right_eye, left_eye, nose, mouth = face.keypoints[:4]
    assert right_eye[0] < nose[0] < left_eye[0]  # her right eye is on the image's left
    assert max(right_eye[1], left_eye[1]) < nose[1] < mouth[1]
    assert all(face.x1 <= x <= face.x2 and face.y1 <= y <= face.y2 for x, y in face.keypoints[:4])


def test_alignment_maps_the_detected_eye_onto_arcfaces_template() -> None:
    img = np.zeros((300, 300, 3), np.uint8)
    kps = np.array([[120, 130], [180, 128], [150, 165], [151, 195], [95, 140], [205, 138]], np.float32)
    img[129:132, 119:122] = 255  # a bright dot on the right eye
    face = FaceBox(90, 90, 210, 230, 0.9, kps)
    aligned = align_face(img, face)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    y, x = np.unravel_index(np.argmax(aligned[:, :, 0]), aligned.shape[:2])
    assert abs(x - ARCFACE_TEMPLATE[0, 0]) <= 3 and abs(y - ARCFACE_TEMPLATE[0, 1]) <= 3


def test_arcface_path_with_a_tiny_onnx_model_of_the_same_signature(tmp_path, astronaut) -> None:
    tiny_arcface_onnx(tmp_path / "w600k_r50.onnx", batch=1)  # InsightFace exports batch 1
    dynamic = tiny_arcface_onnx(tmp_path / "dynamic.onnx", batch="N")
    face = _backend(MediaPipeFaceDetector, "face_detector").predict([astronaut])[0][0]
    crops = [align_face(astronaut, face), align_face(astronaut[:, :, ::-1].copy(), face), np.zeros((112, 112, 3),
                                                                                                    np.uint8)]
    from_dir = _backend(ArcFaceEmbedder, "face_embedder", weights=tmp_path)  # the cache layout: a folder
    assert from_dir.fixed_batch == 1
    one_by_one = np.stack(from_dir.predict(crops))
    batched = np.stack(_backend(ArcFaceEmbedder, "face_embedder", weights=dynamic).predict(crops))
    assert one_by_one.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(one_by_one, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(one_by_one, batched, atol=1e-5)  # fixed-batch loop == one batched call
    assert float(one_by_one[0] @ one_by_one[1]) < 0.9999  # different inputs, different vectors
    np.testing.assert_allclose(from_dir.predict(crops[:1])[0], one_by_one[0], atol=1e-6)  # deterministic
    with pytest.raises(FileNotFoundError):
        ArcFaceEmbedder(get_spec("face_embedder"), tmp_path / "absent.onnx", CPU).load()


def test_selfie_segmentation_on_a_person_crop_and_mask_statistics(astronaut) -> None:
    crop = astronaut[30:450, 30:340]
    coffee_sil, person_sil = _backend(SelfieSegmenter, "segmentation").predict([data.coffee(), crop])
    assert 0.3 < person_sil.mask_area < 0.95 and 0 < person_sil.fill_ratio <= 1 and person_sil.aspect_ratio > 0.8
    assert coffee_sil.mask_area < person_sil.mask_area
    mask = np.zeros((100, 50), np.float32)
    mask[10:70, 5:25] = 1.0  # 60 x 20 rectangle, filled
    stats = silhouette_stats(mask)
    assert stats.mask_area == pytest.approx(1200 / 5000) and stats.fill_ratio == 1.0 and stats.aspect_ratio == 3.0
    assert silhouette_stats(np.zeros((10, 10), np.float32)).mask_area == 0.0


def _render(img: np.ndarray, text: str, xy: tuple[int, int], size: int = 30) -> np.ndarray:
    out = Image.fromarray(img)
    ImageDraw.Draw(out).text(xy, text, fill=(255, 255, 255), font=ImageFont.load_default(size=size),
                             stroke_width=2, stroke_fill=(0, 0, 0))
    return np.asarray(out)


def test_rapidocr_reads_rendered_text_back_and_skips_images_without_text(astronaut) -> None:
    captioned = _render(astronaut, "Launch day at KSC", (30, 440))
    ocr = _backend(RapidOcr, "ocr")
    lines, blank = ocr.predict([captioned, np.full((200, 300, 3), 90, np.uint8)])
    assert blank == []
    assert any("launch day at" in line.text.lower() for line in lines), lines
    line = next(x for x in lines if "launch" in x.text.lower())
    assert line.confidence > 0.8
    xs, ys = line.box[0::2], line.box[1::2]
    assert min(xs) < 60 and 420 < min(ys) and max(ys) < 500  # where it was drawn


def test_registry_prefers_pulled_yolo_weights_and_loads_them_from_the_cache(yolo_files, tmp_path, astronaut) -> None:
    from resources.model_pull import pull
    from resources.models import MODEL_CACHE, ModelRegistry

    cache = tmp_path / "cache"
    empty = ModelRegistry(cache_dir=str(cache), device="cpu")
    assert empty.spec("person_detector").backend == "mediapipe"  # nothing pulled: the bundled CPU detector
    hand_copied = tmp_path / "copied"
    hand_copied.mkdir()
    (hand_copied / "yolov8s.pt").write_bytes(yolo_files["pt"].read_bytes())  # stands in for the real yolov8s.pt
    pull(get_spec("person_detector", "yolo"), cache, source_dir=hand_copied)

    registry = ModelRegistry(cache_dir=str(cache), device="cpu")
    detector = registry.load("person_detector", conf=1e-6, max_det=3, imgsz=320)
    assert isinstance(detector, YoloPersonDetector) and detector.loaded
    assert detector.version == "yolov8s@8.3.0"  # a verified pull carries the catalog version
    assert registry.load("person_detector", conf=1e-6, max_det=3, imgsz=320) is detector  # loaded once
    _assert_boxes_contract(detector.predict([astronaut]), [astronaut])
    # One process cache, whichever registry copy asks (Dagster makes one per run); clear() forgets.
    again = ModelRegistry(cache_dir=str(cache), device="cpu")
    assert again.backend("person_detector", conf=1e-6, max_det=3, imgsz=320) is detector
    MODEL_CACHE.clear()
    assert registry.load("person_detector", conf=1e-6, max_det=3, imgsz=320) is not detector


def test_loading_and_running_every_backend_leaves_the_environment_as_it_was(yolo_files, tmp_path, astronaut,
                                                                              monkeypatch) -> None:
    """What the libraries set in os.environ on their own import happens first; our load and predict add nothing."""
    ensure_torchvision()
    import cv2  # noqa: F401
    import mediapipe  # noqa: F401
    import rapidocr_onnxruntime  # noqa: F401
    import ultralytics  # noqa: F401

    for var in ("YOLO_CONFIG_DIR", "YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE"):  # read at import, done
        monkeypatch.delenv(var, raising=False)
    face = tiny_arcface_onnx(tmp_path / "w600k_r50.onnx", batch="N")
    everything = dict(os.environ)
    runs = [
        (MediaPipePose, "pose", None, None, {}), (MediaPipePersonDetector, "person_detector", "mediapipe", None, {}),
        (HogPersonDetector, "person_detector", "hog", None, {}), (SelfieSegmenter, "segmentation", None, None, {}),
        (MediaPipeFaceDetector, "face_detector", None, None, {}), (RapidOcr, "ocr", None, None, {}),
        (YoloPersonDetector, "person_detector", "yolo", yolo_files["pt"], {"imgsz": 320}),
    ]
    for cls, family, backend, weights, options in runs:
        assert len(_backend(cls, family, backend, weights, **options).predict([astronaut])) == 1
    assert len(_backend(ArcFaceEmbedder, "face_embedder", weights=face).predict([astronaut[:112, :112]])) == 1
    assert dict(os.environ) == everything
    from ultralytics.utils import SETTINGS

    assert SETTINGS["sync"] is False  # analytics off through ultralytics' own settings, not YOLO_* variables
