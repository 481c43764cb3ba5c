"""``vision/persons`` (detector → crops in the blob store) and ``vision/keypoints`` (pose + silhouette per crop).

Boxes, crops and keypoints are in the stored image's pixel coordinates (images wider than
``VisionConfig.max_side`` are decoded smaller and mapped back). Each row records the version of
the model that produced it.
"""

import io
import math
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from PIL import Image

from assets.common.keys import CREATOR_IMAGES, KEYPOINTS, PERSONS
from assets.common.metadata import batch_check, check_result
from assets.common.quality import validate_frame
from assets.vision.common import (
    BASE_COLUMNS,
    all_true,
    box_inside,
    coverage_expectations,
    cpu_pool,
    in_unit_range,
    ok_images,
    per_image,
    safe_predict,
    scale_to_original,
    scan_images,
    stage_asset,
    stage_output,
    status_row,
)
from assets.vision.config import VisionConfig
from gpu_ops.detection import PersonBox
from gpu_ops.pose import N_LANDMARKS, Pose
from gpu_ops.segmentation import Silhouette
from resources.blobstore import BlobStore
from resources.models import ModelRegistry

PERSON_COLUMNS = [
    *BASE_COLUMNS, "person_idx", "x1", "y1", "x2", "y2", "score", "crop_x1", "crop_y1", "crop_x2", "crop_y2",
    "crop_key", "crop_width", "crop_height", "image_width", "image_height", "model_version",
]
KEYPOINT_COLUMNS = [
    *BASE_COLUMNS, "person_idx", "kp_x", "kp_y", "kp_z", "kp_visibility", "visible_count", "visibility_score",
    "mask_area", "fill_ratio", "aspect_ratio", "model_version", "segmentation_version",
]
VISIBLE = 0.5


def _jpeg(array: np.ndarray, quality: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def person_rows(image: dict[str, Any], array: np.ndarray, boxes: list[PersonBox], *, vision: VisionConfig,
                blobs: BlobStore, version: str) -> list[dict[str, Any]]:
    """One row per kept person (crop stored), or one ``no_person`` row saying why none was kept."""
    sx, sy = scale_to_original(image, array)
    h, w = array.shape[:2]
    rows: list[dict[str, Any]] = []
    too_small = 0
    for box in boxes:
        if min(box.width * sx, box.height * sy) < vision.min_person_px:
            too_small += 1
            continue
        mx, my = box.width * vision.crop_margin, box.height * vision.crop_margin
        cx1, cy1 = max(0, math.floor(box.x1 - mx)), max(0, math.floor(box.y1 - my))
        cx2, cy2 = min(w, math.ceil(box.x2 + mx)), min(h, math.ceil(box.y2 + my))
        crop = array[cy1:cy2, cx1:cx2]
        rows.append(status_row(
            image, "ok", person_idx=len(rows),
            x1=box.x1 * sx, y1=box.y1 * sy, x2=box.x2 * sx, y2=box.y2 * sy, score=box.score,
            crop_x1=cx1 * sx, crop_y1=cy1 * sy, crop_x2=cx2 * sx, crop_y2=cy2 * sy,
            crop_key=blobs.put(_jpeg(crop, vision.crop_jpeg_quality), "crops", "jpg"),
            crop_width=crop.shape[1], crop_height=crop.shape[0],
            image_width=image["width"], image_height=image["height"], model_version=version,
        ))
    if rows:
        return rows
    reason = "below_min_size" if too_small else "none_detected"
    detail = f"{too_small} detections under {vision.min_person_px} px" if too_small else None
    return [status_row(image, "no_person", reason, detail, model_version=version)]


@stage_asset(PERSONS, ("creator_images", CREATOR_IMAGES), kinds={"python", "pytorch", "pandas"},
             description="People in each image (YOLOv8 on a GPU; MediaPipe's or OpenCV's bundled detector on a "
             "CPU): boxes, scores, and crops above a minimum size stored in the blob store.")
def persons(
    context: dg.AssetExecutionContext, creator_images: pd.DataFrame, blobs: BlobStore, models: ModelRegistry,
    vision: VisionConfig,
) -> dg.Output[pd.DataFrame]:
    detector = models.load("person_detector")
    context.log.info(f"person detector {detector.version} on {detector.device}")
    images = ok_images(creator_images)
    with cpu_pool(detector, vision, len(images)) as finder:
        process = per_image(finder, lambda image, array, boxes: person_rows(
            image, array, boxes, vision=vision, blobs=blobs, version=detector.version))
        scan = scan_images(context, images, blobs, vision, models.batch_size, process, stage="persons")
    dropped = sum(r["reason"] == "below_min_size" for r in scan.rows)
    return stage_output(scan, PERSON_COLUMNS, ints=("person_idx", "crop_width", "crop_height", "image_width",
                                                    "image_height"),
                        unit="persons", versions={"person_detector": detector.version},
                        extra={"device": str(detector.device), "batch_size": models.batch_size,
                               "dropped_below_min_size": dropped})


@batch_check(asset=PERSONS,
                additional_ins={"creator_images": dg.AssetIn(key=CREATOR_IMAGES)},
                description="Every ok image has rows, boxes inside their image and crop, scores in [0, 1], "
                            "a crop for every person, unique (image, person) keys.")
def persons_valid(persons: pd.DataFrame, creator_images: pd.DataFrame, vision: VisionConfig) -> dg.AssetCheckResult:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    ok = persons["status"] == "ok"
    frame = persons.assign(
        box_in_image=box_inside(persons),
        box_in_crop=((persons["x1"] >= persons["crop_x1"] - 0.5) & (persons["y1"] >= persons["crop_y1"] - 0.5)
                     & (persons["x2"] <= persons["crop_x2"] + 0.5) & (persons["y2"] <= persons["crop_y2"] + 0.5))
        .astype(object).where(ok, None),
        person_key=persons["image_key"] + "#" + persons["person_idx"].astype("string").fillna("-"),
    )
    expectations = [
        *coverage_expectations(frame, creator_images, ["ok", "no_person"], vision),
        *in_unit_range("score"),
        all_true("box_in_image"),
        all_true("box_in_crop"),
        gxe.ExpectColumnValuesToBeUnique(column="person_key"),
    ]
    if ok.any():
        expectations += [gxe.ExpectColumnValuesToNotBeNull(column=c, row_condition=Column("status") == "ok")
                         for c in ("crop_key", "model_version")]
    return check_result(validate_frame(frame, expectations, name="persons"))


def _pose_row(person: dict[str, Any], pose: Pose | None, silhouette: Silhouette | Exception,
              versions: tuple[str, str]) -> dict[str, Any]:
    sil = {} if isinstance(silhouette, Exception) else {
        "mask_area": silhouette.mask_area, "fill_ratio": silhouette.fill_ratio,
        "aspect_ratio": silhouette.aspect_ratio, "segmentation_version": versions[1],
    }
    key = {"model_version": versions[0]}
    if pose is None:
        return status_row(person, "no_pose", "none_detected", **key, **sil)
    lm = pose.landmarks
    cw, ch = person["crop_x2"] - person["crop_x1"], person["crop_y2"] - person["crop_y1"]
    vis = lm[:, 3].astype(float)
    return status_row(
        person, "ok", **key, **sil,
        kp_x=(person["crop_x1"] + lm[:, 0].astype(float) * cw).tolist(),
        kp_y=(person["crop_y1"] + lm[:, 1].astype(float) * ch).tolist(),
        kp_z=lm[:, 2].astype(float).tolist(),
        kp_visibility=vis.tolist(),
        visible_count=int((vis >= VISIBLE).sum()),
        visibility_score=float(vis.mean()),
    )


@stage_asset(KEYPOINTS, ("persons", PERSONS), kinds={"python", "pandas"},
             description="MediaPipe Pose (33 landmarks with visibility) and selfie-segmentation silhouette "
             "statistics (mask area, box fill ratio, aspect ratio; no mask pixels) on each person crop.")
def keypoints(
    context: dg.AssetExecutionContext, persons: pd.DataFrame, blobs: BlobStore, models: ModelRegistry,
    vision: VisionConfig,
) -> dg.Output[pd.DataFrame]:
    pose_model, segmenter = models.load("pose"), models.load("segmentation")
    versions = (pose_model.version, segmenter.version)
    people = [{**p, "blob_key": p["crop_key"], "width": p["crop_width"], "height": p["crop_height"]}
              for p in persons[persons["status"] == "ok"].to_dict("records")]

    with cpu_pool(pose_model, vision, len(people)) as poser, cpu_pool(segmenter, vision, len(people)) as masker:

        def process(crops: list[dict[str, Any]], arrays: list[np.ndarray]) -> list[list[dict[str, Any]]]:
            silhouettes = {id(a): s for a, s in zip(arrays, safe_predict(masker, arrays), strict=True)}
            pose_rows = per_image(poser, lambda person, array, pose: [
                _pose_row(person, pose, silhouettes[id(array)], versions)])
            return pose_rows(crops, arrays)

        scan = scan_images(context, people, blobs, vision, models.batch_size, process, stage="keypoints")
    return stage_output(scan, KEYPOINT_COLUMNS, ints=("person_idx", "visible_count"), unit="poses",
                        versions={"pose": versions[0], "segmentation": versions[1]},
                        extra={"persons": len(people), "no_pose": sum(r["status"] == "no_pose" for r in scan.rows)})


def landmarks_in_crop(keypoints: pd.DataFrame, persons: pd.DataFrame, tolerance: float = 0.5) -> pd.Series:
    """Per ok row: are all 33 landmarks present in count, and every located one inside its person's crop?"""
    crops = persons[persons["status"] == "ok"].set_index(["image_key", "person_idx"])[
        ["crop_x1", "crop_y1", "crop_x2", "crop_y2"]]
    out: list[bool | None] = []
    for row in keypoints.itertuples():
        if row.status != "ok":
            out.append(None)
            continue
        key = (row.image_key, row.person_idx)
        if key not in crops.index:
            out.append(False)  # an orphan: no such person
            continue
        x1, y1, x2, y2 = crops.loc[key]
        xs, ys = np.asarray(row.kp_x, dtype=float), np.asarray(row.kp_y, dtype=float)
        located = ~np.isnan(xs) & ~np.isnan(ys)
        inside = (xs[located] >= x1 - tolerance) & (xs[located] <= x2 + tolerance) \
            & (ys[located] >= y1 - tolerance) & (ys[located] <= y2 + tolerance)
        out.append(bool(len(xs) == N_LANDMARKS and len(ys) == N_LANDMARKS and inside.all()))
    return pd.Series(out, index=keypoints.index, dtype=object)


@batch_check(asset=KEYPOINTS,
                additional_ins={"persons": dg.AssetIn(key=PERSONS)},
                description="Keypoints inside their crop, visibilities and silhouette ratios in [0, 1], "
                            "one row per detected person and none for a person that does not exist.")
def keypoints_valid(keypoints: pd.DataFrame, persons: pd.DataFrame, vision: VisionConfig) -> dg.AssetCheckResult:
    import great_expectations.expectations as gxe

    ok_persons = persons[persons["status"] == "ok"]
    person_keys = sorted(ok_persons["image_key"] + "#" + ok_persons["person_idx"].astype(str))
    frame = keypoints.assign(
        person_key=keypoints["image_key"] + "#" + keypoints["person_idx"].astype("string").fillna("-"),
        landmarks_in_crop=landmarks_in_crop(keypoints, persons),
        visibility_in_range=keypoints["kp_visibility"].map(
            lambda v: None if v is None else bool(len(v) == N_LANDMARKS and np.all((np.asarray(v) >= 0)
                                                                                    & (np.asarray(v) <= 1)))),
    )
    failed = (keypoints["status"] == "failed").sum()
    expectations = [
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "no_pose", "failed"]),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "no_pose"],
                                        mostly=1.0 - vision.max_failure_rate),
        gxe.ExpectColumnValuesToBeInSet(column="person_key", value_set=person_keys),  # no orphans
        gxe.ExpectColumnValuesToBeUnique(column="person_key"),
        all_true("landmarks_in_crop"),
        all_true("visibility_in_range"),
        *in_unit_range("visibility_score", "mask_area", "fill_ratio"),
    ]
    if person_keys:
        expectations.append(gxe.ExpectColumnDistinctValuesToContainSet(column="person_key", value_set=person_keys))
    return check_result(validate_frame(frame, expectations, name="keypoints"),
                        extra={"failed_crops": int(failed)})
