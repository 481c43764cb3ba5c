"""``vision/ocr``: text in each image (RapidOCR: PP-OCRv4 detection + recognition on ONNX Runtime)."""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from assets.common.keys import CREATOR_IMAGES, OCR
from assets.common.metadata import batch_check, check_result
from assets.common.quality import validate_frame
from assets.vision.common import (
    BASE_COLUMNS,
    all_true,
    coverage_expectations,
    cpu_pool,
    in_unit_range,
    ok_images,
    per_image,
    scale_to_original,
    scan_images,
    stage_asset,
    stage_output,
    status_row,
)
from assets.vision.config import VisionConfig
from gpu_ops.ocr import TextLine, looks_like_text
from resources.blobstore import BlobStore
from resources.models import ModelRegistry

OCR_COLUMNS = [*BASE_COLUMNS, "line_idx", "text", "confidence", "box", "image_width", "image_height", "model_version"]


def text_rows(image: dict[str, Any], array: np.ndarray, lines: list[TextLine], version: str) -> list[dict[str, Any]]:
    if not lines:
        return [status_row(image, "no_text", "none_detected", model_version=version)]
    sx, sy = scale_to_original(image, array)
    scale = np.tile([sx, sy], 4)
    return [
        status_row(image, "ok", line_idx=i, text=line.text, confidence=line.confidence,
                   box=(np.asarray(line.box) * scale).tolist(), image_width=image["width"],
                   image_height=image["height"], model_version=version)
        for i, line in enumerate(lines)
    ]


PREFILTER_REASON = "no_text_edges"


def prefiltered(batch: list[dict[str, Any]], arrays: list[np.ndarray], run: Any, version: str,
                enabled: bool) -> list[list[dict[str, Any]]]:
    """``run`` (the OCR batch step) on the images that :func:`gpu_ops.ocr.looks_like_text`; the others get a
    ``no_text`` row saying the prefilter skipped them. ``enabled=False``: every image is OCRed."""
    if not enabled:
        return run(batch, arrays)
    likely = [looks_like_text(a) for a in arrays]
    ocred = iter(run([i for i, keep in zip(batch, likely, strict=True) if keep],
                     [a for a, keep in zip(arrays, likely, strict=True) if keep]))
    return [next(ocred) if keep else [status_row(image, "no_text", PREFILTER_REASON, model_version=version)]
            for image, keep in zip(batch, likely, strict=True)]


@stage_asset(OCR, ("creator_images", CREATOR_IMAGES), kinds={"python", "onnx", "pandas"},
             description="Text lines in each image with their boxes and confidence (RapidOCR, PaddleOCR's "
             "PP-OCRv4 models on ONNX Runtime). Images where detection finds no text skip recognition.")
def ocr(
    context: dg.AssetExecutionContext, creator_images: pd.DataFrame, blobs: BlobStore, models: ModelRegistry,
    vision: VisionConfig,
) -> dg.Output[pd.DataFrame]:
    engine = models.load("ocr")
    images = ok_images(creator_images)
    with cpu_pool(engine, vision, len(images), worker_options={"threads": 1}) as runner:
        run = per_image(runner, lambda image, array, lines: text_rows(image, array, lines, engine.version))

        def process(batch: list[dict[str, Any]], arrays: list[np.ndarray]) -> list[list[dict[str, Any]]]:
            return prefiltered(batch, arrays, run, engine.version, vision.ocr_prefilter)

        scan = scan_images(context, images, blobs, vision, models.batch_size, process, stage="ocr")
    lines = [r for r in scan.rows if r["status"] == "ok"]
    sample = pd.DataFrame(lines[:10], columns=["username", "text", "confidence"])
    return stage_output(scan, OCR_COLUMNS, ints=("line_idx", "image_width", "image_height"), unit="text_lines",
                        versions={"ocr": engine.version},
                        extra={"images_with_text": len({r["image_key"] for r in lines}),
               "skipped_by_prefilter": sum(r["reason"] == PREFILTER_REASON for r in scan.rows),
               "ocr_workers": getattr(runner, "workers", 1),
                               "sample_text": dg.MetadataValue.md(sample.to_markdown(index=False) if lines
                                                                  else "_no text found_")})


def polygon_inside(df: pd.DataFrame, tolerance: float = 0.5) -> pd.Series:
    def one(row: Any) -> bool | None:
        if row.status != "ok":
            return None
        pts = np.asarray(row.box, dtype=float).reshape(-1, 2)
        return bool(len(pts) == 4 and (pts >= -tolerance).all() and (pts[:, 0] <= row.image_width + tolerance).all()
                    and (pts[:, 1] <= row.image_height + tolerance).all())

    return pd.Series([one(r) for r in df.itertuples()], index=df.index, dtype=object)


@batch_check(asset=OCR,
                additional_ins={"creator_images": dg.AssetIn(key=CREATOR_IMAGES)},
                description="Every ok image has rows, confidences in [0, 1], text on every line, "
                            "boxes inside the image, unique (image, line) keys.")
def ocr_valid(ocr: pd.DataFrame, creator_images: pd.DataFrame, vision: VisionConfig) -> dg.AssetCheckResult:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    frame = ocr.assign(
        box_in_image=polygon_inside(ocr),
        line_key=ocr["image_key"] + "#" + ocr["line_idx"].astype("string").fillna("-"),
    )
    expectations = [
        *coverage_expectations(frame, creator_images, ["ok", "no_text"], vision),
        *in_unit_range("confidence"),
        all_true("box_in_image"),
        gxe.ExpectColumnValuesToBeUnique(column="line_key"),
    ]
    if (ocr["status"] == "ok").any():
        expectations.append(gxe.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=1, row_condition=Column("status") == "ok"))
    return check_result(validate_frame(frame, expectations, name="ocr"))
