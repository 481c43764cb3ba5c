"""``vision/image_features``: per image, what the vision stages found and the rule tags it implies.

One row per ``ok`` image: each stage's status and reason for that image, person and face counts,
shot type, framing, pose visibility, relative face size, text lines, and rule tags
(:mod:`gpu_ops.features`; composition only, no body measurements).
"""

import json
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from assets.common.keys import CREATOR_IMAGES, FACES, IMAGE_FEATURES, KEYPOINTS, OCR, PERSONS
from assets.common.metadata import (
    GROUP_VISION,
    batch_asset,
    batch_check,
    check_result,
    stopwatch,
    throughput_metadata,
)
from assets.common.quality import validate_frame
from assets.vision.common import coverage_expectations, in_unit_range
from assets.vision.config import VisionConfig
from gpu_ops.features import FRAMINGS, RULES_VERSION, SHOT_TYPES, PersonObservation, image_features

FEATURE_COLUMNS = [
    "image_key", "platform", "username", "status", "reason", "persons_status", "persons_reason", "faces_status",
    "faces_reason", "ocr_status", "ocr_reason", "person_count", "face_count", "text_lines", "shot_type", "framing",
    "pose_visibility", "relative_face_size", "rule_tags", "rules_version", "model_versions",
]


def _image_status(df: pd.DataFrame) -> dict[str, tuple[str, str | None]]:
    """Per image: ``ok`` when the stage produced results, else its single status row's status and reason."""
    out: dict[str, tuple[str, str | None]] = {}
    for key, status, reason in df[["image_key", "status", "reason"]].itertuples(index=False):
        if out.get(key, ("",))[0] != "ok":
            out[key] = (status, None if pd.isna(reason) else reason)
    return out


def _versions(**frames: pd.DataFrame) -> dict[str, str | None]:
    found = {}
    for name, df in frames.items():
        values = df["model_version"].dropna() if "model_version" in df else pd.Series(dtype=object)
        found[name] = sorted(set(values))[0] if len(values) else None
    return found


def build_features(creator_images: pd.DataFrame, persons: pd.DataFrame, keypoints: pd.DataFrame,
                   faces: pd.DataFrame, ocr: pd.DataFrame) -> pd.DataFrame:
    ok_persons = persons[persons["status"] == "ok"]
    poses = {(r.image_key, r.person_idx): np.asarray(r.kp_visibility, dtype=float)
             for r in keypoints[keypoints["status"] == "ok"].itertuples()}
    people: dict[str, list[PersonObservation]] = {}
    for r in ok_persons.itertuples():
        people.setdefault(r.image_key, []).append(
            PersonObservation((r.x1, r.y1, r.x2, r.y2), float(r.score), poses.get((r.image_key, r.person_idx))))
    face_boxes: dict[str, list[tuple[float, float, float, float]]] = {}
    for r in faces[faces["status"] == "ok"].itertuples():
        face_boxes.setdefault(r.image_key, []).append((r.x1, r.y1, r.x2, r.y2))
    lines = ocr[ocr["status"] == "ok"].groupby("image_key").size().to_dict()
    statuses = {"persons": _image_status(persons), "faces": _image_status(faces), "ocr": _image_status(ocr)}
    versions = json.dumps({**_versions(persons=persons, keypoints=keypoints, faces=faces, ocr=ocr),
                           "rules": RULES_VERSION}, sort_keys=True)
    rows: list[dict[str, Any]] = []
    for image in creator_images[creator_images["status"] == "ok"].itertuples():
        f = image_features(int(image.width), int(image.height), people.get(image.image_key, []),
                           face_boxes.get(image.image_key, []), int(lines.get(image.image_key, 0)))
        stage = {name: found.get(image.image_key, ("missing", "not_processed")) for name, found in statuses.items()}
        rows.append({
            "image_key": image.image_key, "platform": image.platform, "username": image.username,
            "status": "ok", "reason": None,
            **{f"{name}_status": s for name, (s, _) in stage.items()},
            **{f"{name}_reason": r for name, (_, r) in stage.items()},
            "person_count": f.person_count, "face_count": f.face_count, "text_lines": f.text_lines,
            "shot_type": f.shot_type, "framing": f.framing, "pose_visibility": f.pose_visibility,
            "relative_face_size": f.relative_face_size, "rule_tags": f.tags, "rules_version": RULES_VERSION,
            "model_versions": versions,
        })
    return pd.DataFrame(rows, columns=FEATURE_COLUMNS)


@batch_asset(
    key=IMAGE_FEATURES,
    ins={
        "creator_images": dg.AssetIn(key=CREATOR_IMAGES),
        "persons": dg.AssetIn(key=PERSONS),
        "keypoints": dg.AssetIn(key=KEYPOINTS),
        "faces": dg.AssetIn(key=FACES),
        "ocr": dg.AssetIn(key=OCR),
    },
    group_name=GROUP_VISION,
    kinds={"python", "pandas"},
    description="Per image: person count, shot type (close-up / half-body / full-body from visible landmarks), "
    "framing, pose visibility, face count, relative face size, text lines, and the rule tags they imply.",
)
def image_features_asset(
    creator_images: pd.DataFrame, persons: pd.DataFrame, keypoints: pd.DataFrame, faces: pd.DataFrame,
    ocr: pd.DataFrame,
) -> dg.Output[pd.DataFrame]:
    with stopwatch() as elapsed:
        df = build_features(creator_images, persons, keypoints, faces, ocr)
    tags = pd.Series([t for ts in df["rule_tags"] for t in ts], dtype=object)
    return dg.Output(df, metadata={
        "images": len(df),
        "shot_types": dg.MetadataValue.json({k: int(v) for k, v in df["shot_type"].value_counts().items()}),
        "tags": dg.MetadataValue.json({k: int(v) for k, v in tags.value_counts().items()}),
        "rules_version": RULES_VERSION,
        **throughput_metadata(len(df), elapsed(), "images"),
    })


@batch_check(asset=IMAGE_FEATURES,
                additional_ins={"creator_images": dg.AssetIn(key=CREATOR_IMAGES)},
                description="One row per ok image, every stage status known, shot type and framing from the "
                            "rule set, ratios in [0, 1].")
def image_features_valid(image_features: pd.DataFrame, creator_images: pd.DataFrame,
                         vision: VisionConfig) -> dg.AssetCheckResult:
    import great_expectations.expectations as gxe

    expectations = [
        *coverage_expectations(image_features, creator_images, ["ok"], vision),
        gxe.ExpectColumnValuesToBeUnique(column="image_key"),
        gxe.ExpectColumnValuesToBeInSet(column="shot_type", value_set=list(SHOT_TYPES)),
        gxe.ExpectColumnValuesToBeInSet(column="framing", value_set=list(FRAMINGS)),
        gxe.ExpectColumnValuesToBeInSet(column="persons_status", value_set=["ok", "no_person", "too_small", "failed"]),
        gxe.ExpectColumnValuesToBeInSet(column="faces_status", value_set=["ok", "no_face", "too_small", "failed"]),
        gxe.ExpectColumnValuesToBeInSet(column="ocr_status", value_set=["ok", "no_text", "too_small", "failed"]),
        *in_unit_range("pose_visibility", "relative_face_size"),
    ]
    return check_result(validate_frame(image_features, expectations, name="image_features"))
