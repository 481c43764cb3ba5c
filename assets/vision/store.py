"""Promote one batch's vision results into the warehouse in a single transaction.

:func:`warehouse_frames` turns the stage frames (which also carry one status row per image
without results) into exactly the rows each table holds; :func:`promote_vision` COPYs them into
temporary staging tables, upserts on natural keys, removes rows of the batch that this run no
longer produced, and adds its counts to the run's ``promotions`` row. Parents (``images``,
written by the backbone's promotion in the same run, then ``persons``) are written before children.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from assets.common.promotion import PromotionResult, copy_rows, frame_rows
from creatorlens.queries import load_queries

IMAGE_VISION_COLUMNS = (
    "image_key", "persons_status", "persons_reason", "faces_status", "faces_reason", "ocr_status", "ocr_reason",
    "person_count", "face_count", "text_lines", "shot_type", "framing", "pose_visibility", "relative_face_size",
    "rule_tags", "rules_version", "model_versions",
)
PERSON_COLUMNS = (
    "image_key", "person_idx", "x1", "y1", "x2", "y2", "score", "crop_x1", "crop_y1", "crop_x2", "crop_y2",
    "crop_key", "crop_width", "crop_height", "pose_status", "mask_area", "fill_ratio", "aspect_ratio",
    "model_version", "segmentation_version",
)
KEYPOINT_COLUMNS = (
    "image_key", "person_idx", "x", "y", "z", "visibility", "visible_count", "visibility_score", "model_version",
)
OCR_COLUMNS = ("image_key", "line_idx", "text", "confidence", "box", "model_version")
FACE_COLUMNS = (
    "image_key", "face_idx", "platform", "username", "x1", "y1", "x2", "y2", "score", "keypoints", "embedding",
    "embedding_model", "cluster_id", "model_version",
)
# Parents first: persons before keypoints (FK). Name = table = statement suffix; staging table stage_<name>.
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("image_vision", IMAGE_VISION_COLUMNS),
    ("persons", PERSON_COLUMNS),
    ("keypoints", KEYPOINT_COLUMNS),
    ("ocr_texts", OCR_COLUMNS),
    ("faces", FACE_COLUMNS),
)


def _floats_or_null(values: Any) -> list[float | None] | None:
    """An array cell as plain floats, NaN → NULL (Postgres would store NaN as a value)."""
    if values is None or (isinstance(values, float) and math.isnan(values)):
        return None
    return [None if v is None or math.isnan(v) else float(v) for v in np.asarray(values, dtype=float)]


def _vector_literal(values: Any) -> str | None:
    if values is None or (isinstance(values, float) and math.isnan(values)):
        return None
    return "[" + ",".join(f"{v:.6g}" for v in np.asarray(values, dtype=float)) + "]"


def warehouse_frames(image_features: pd.DataFrame, persons: pd.DataFrame, keypoints: pd.DataFrame,
                     ocr: pd.DataFrame, faces: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The rows each warehouse table gets from the stage frames (status-only rows left out)."""
    features = image_features.assign(model_versions=image_features["model_versions"].map(
        lambda v: v if isinstance(v, str) else json.dumps(v, sort_keys=True)))
    kp = keypoints.rename(columns={"status": "pose_status"})
    silhouettes = kp[["image_key", "person_idx", "pose_status", "mask_area", "fill_ratio", "aspect_ratio",
                      "segmentation_version"]]
    people = persons[persons["status"] == "ok"].drop(columns=["segmentation_version"], errors="ignore")
    people = people.merge(silhouettes, on=["image_key", "person_idx"], how="left")
    poses = keypoints[keypoints["status"] == "ok"]
    poses = pd.DataFrame({
        "image_key": poses["image_key"], "person_idx": poses["person_idx"],
        **{axis: poses[f"kp_{axis}"].map(_floats_or_null) for axis in ("x", "y", "z")},
        "visibility": poses["kp_visibility"].map(_floats_or_null),
        "visible_count": poses["visible_count"], "visibility_score": poses["visibility_score"],
        "model_version": poses["model_version"],
    })
    ok_faces = faces[faces["status"] == "ok"]
    ok_faces = ok_faces.assign(embedding=ok_faces["embedding"].map(_vector_literal),
                               keypoints=ok_faces["keypoints"].map(_floats_or_null))
    return {
        "image_vision": features,
        "persons": people,
        "keypoints": poses,
        "ocr_texts": ocr[ocr["status"] == "ok"].assign(box=lambda d: d["box"].map(_floats_or_null)),
        "faces": ok_faces,
    }


def promote_vision(conn: psycopg.Connection, batch_key: str, frames: dict[str, pd.DataFrame], *, run_id: str,
                   code_version: str, flags_before: datetime | None = None) -> PromotionResult:
    """Write one batch's vision tables atomically; returns staged/written/deleted counts per table.

    ``flags_before`` (the run's start): reviewers' re-analysis flags on the batch raised before it
    are resolved in the same transaction (``result.written["flags_resolved"]``)."""
    q = load_queries("promote_vision.sql")
    result = PromotionResult(batch_key)
    params = {"batch_key": batch_key}
    started = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(q["lock_batch"], params)
        cur.execute(q["create_stage"])
        for table, columns in TABLES:
            result.staged[table] = copy_rows(cur, f"stage_{table}", columns, frame_rows(frames[table], columns))
        for table, _ in TABLES:
            cur.execute(q[f"upsert_{table}"], params)
            result.written[table] = cur.rowcount
        for table, _ in reversed(TABLES):  # children before parents
            cur.execute(q[f"delete_stale_{table}"], params)
            result.deleted[table] = cur.rowcount
        if flags_before is not None:
            cur.execute(q["resolve_flags"], {**params, "run_id": run_id, "flags_before": flags_before})
            result.written["flags_resolved"] = cur.rowcount
        counts = {"staged": result.staged, "written": result.written, "deleted": result.deleted}
        cur.execute(q["record_promotion"],
                    {**params, "run_id": run_id, "code_version": code_version, "counts": json.dumps(counts)})
    result.seconds = time.perf_counter() - started
    return result
