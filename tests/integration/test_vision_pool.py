"""The CPU-bound vision stages on a worker pool give exactly what they give in the step's process.

Each stage asset (persons, keypoints, faces, OCR) runs twice on the same real photos in a real blob
store: once with ``cpu_workers=1`` (the models in this process) and once on a pool of two worker
processes (``pool_min_images=1`` so this small batch uses it), and the frames must be equal, row for
row. The OCR prefilter skips a flat image with its own reason and never a captioned one; switched off,
OCR itself decides. A bad input in a pooled batch fails alone.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont
from skimage import data

from assets.vision import faces as vision_faces
from assets.vision import ocr as vision_ocr
from assets.vision import persons as vision
from assets.vision.common import safe_predict
from assets.vision.config import VisionConfig
from gpu_ops.device import choose_device
from gpu_ops.faces import MediaPipeFaceDetector
from gpu_ops.ocr import looks_like_text
from gpu_ops.pool import PooledModel
from gpu_ops.registry import get_spec
from resources.blobstore import BlobStore
from resources.models import ModelRegistry

BATCH = "batch-00001"


def _jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=92)
    return out.getvalue()


def _captioned(array: np.ndarray, text: str, y: int) -> np.ndarray:
    img = Image.fromarray(array)
    ImageDraw.Draw(img).text((30, y), text, fill=(255, 255, 255), font=ImageFont.load_default(size=30),
                             stroke_width=2, stroke_fill=(0, 0, 0))
    return np.asarray(img)


def _flat() -> np.ndarray:
    return np.tile(np.linspace(40, 220, 480, dtype=np.uint8)[None, :, None], (360, 1, 3))


PHOTOS = {
    0: lambda: data.astronaut(),
    1: lambda: _captioned(data.astronaut(), "Launch day at KSC", 440),
    4: lambda: _captioned(data.chelsea(), "new drop friday", 250),
    5: _flat,
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("vision-pool")
    blobs = BlobStore(root=str(root / "blobs"))
    rows = []
    for i, make in PHOTOS.items():
        arr = make()
        rows.append({"image_key": f"instagram:{i}", "platform": "instagram", "post_id": str(i), "username": "u",
                     "status": "ok", "blob_key": blobs.put(_jpeg(arr), "originals", "jpg"),
                     "width": arr.shape[1], "height": arr.shape[0], "processed_at": datetime.now(UTC)})
    creator_images = pd.DataFrame(rows).astype({"width": "Int64", "height": "Int64"})
    models = ModelRegistry(cache_dir=str(root / "models"), device="cpu", batch_size=4)

    def run(vision_cfg: VisionConfig) -> dict:
        common = {"blobs": blobs, "models": models, "vision": vision_cfg}
        out = {}
        with dg.build_asset_context(partition_key=BATCH) as ctx:
            out["persons"] = vision.persons(context=ctx, creator_images=creator_images, **common)
        with dg.build_asset_context(partition_key=BATCH) as ctx:
            out["keypoints"] = vision.keypoints(context=ctx, persons=out["persons"].value, **common)
        with dg.build_asset_context(partition_key=BATCH) as ctx:
            out["faces"] = vision_faces.faces(context=ctx, creator_images=creator_images, **common)
        with dg.build_asset_context(partition_key=BATCH) as ctx:
            out["ocr"] = vision_ocr.ocr(context=ctx, creator_images=creator_images, **common)
        return out

    single = run(VisionConfig(decode_workers=2, cpu_workers=1))
    pooled = run(VisionConfig(decode_workers=2, cpu_workers=2, pool_min_images=1))
    return {"single": single, "pooled": pooled, "run": run}


@pytest.mark.parametrize("stage", ["persons", "keypoints", "faces", "ocr"])
def test_pool_output_equals_single_process_output(world, stage: str) -> None:
    single, pooled = world["single"][stage].value, world["pooled"][stage].value
    assert len(single) >= (2 if stage == "keypoints" else len(PHOTOS))
    pd.testing.assert_frame_equal(single.reset_index(drop=True), pooled.reset_index(drop=True))


def test_the_stages_found_something_to_compare(world) -> None:
    single = world["single"]
    assert (single["persons"].value["status"] == "ok").sum() >= 2
    assert (single["keypoints"].value["status"] == "ok").sum() >= 1
    assert (single["faces"].value["status"] == "ok").sum() >= 1
    texts = " ".join(single["ocr"].value["text"].dropna())
    assert "Launch" in texts or "KSC" in texts
    assert world["pooled"]["ocr"].metadata["ocr_workers"].value == 2
    assert world["single"]["ocr"].metadata["ocr_workers"].value == 1


def test_ocr_prefilter_skips_the_flat_image_only(world) -> None:
    ocr = world["single"]["ocr"].value.drop_duplicates("image_key").set_index("image_key")
    assert (ocr.loc["instagram:5", "status"], ocr.loc["instagram:5", "reason"]) == ("no_text", "no_text_edges")
    skipped = set(ocr.index[ocr["reason"] == "no_text_edges"])
    assert skipped == {"instagram:5"}  # every photo, captioned or not, went to OCR
    assert not looks_like_text(_flat()) and looks_like_text(PHOTOS[1]()) and looks_like_text(PHOTOS[4]())
    assert world["single"]["ocr"].metadata["skipped_by_prefilter"].value == 1


def test_ocr_prefilter_off_runs_ocr_on_every_image(tmp_path) -> None:
    blobs = BlobStore(root=str(tmp_path / "blobs"))
    arr = _flat()
    creator_images = pd.DataFrame([{
        "image_key": "instagram:9", "platform": "instagram", "post_id": "9", "username": "u", "status": "ok",
        "blob_key": blobs.put(_jpeg(arr), "originals", "jpg"), "width": arr.shape[1], "height": arr.shape[0]}])
    models = ModelRegistry(cache_dir=str(tmp_path / "models"), device="cpu", batch_size=4)
    with dg.build_asset_context(partition_key=BATCH) as ctx:
        out = vision_ocr.ocr(context=ctx, creator_images=creator_images, blobs=blobs, models=models,
                             vision=VisionConfig(decode_workers=1, cpu_workers=1, ocr_prefilter=False))
    row = out.value.iloc[0]
    assert (row["status"], row["reason"]) == ("no_text", "none_detected")
    assert out.metadata["skipped_by_prefilter"].value == 0


def test_a_bad_input_in_a_pooled_batch_fails_alone() -> None:
    detector = MediaPipeFaceDetector(get_spec("face_detector"), None, choose_device("cpu"))
    with PooledModel(detector, 2) as pooled:
        pooled.load()
        good = data.astronaut()
        out = safe_predict(pooled, [good, "not an image", good, good])
    assert isinstance(out[1], Exception)
    assert [type(o) for i, o in enumerate(out) if i != 1] == [list, list, list]
    expected = detector.predict([good])[0]
    assert expected, "the astronaut has a face"

    def same(a, b) -> bool:
        return len(a) == len(b) and all((f.x1, f.y1, f.x2, f.y2, f.score) == (g.x1, g.y1, g.x2, g.y2, g.score)
                                        and np.array_equal(f.keypoints, g.keypoints) for f, g in zip(a, b))

    assert same(out[0], expected) and same(out[2], expected) and same(out[3], expected)
