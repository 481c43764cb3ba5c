"""What the vision stages share: asset keys, the image scan loop, status rows and metadata.

Every ``ok`` image of ``images/creator_images`` gets at least one row in each stage's frame:
its results (``status == "ok"``, one row per person / text line / face), or one row saying why it
has none (``no_person``, ``no_text``, ``no_face``, ``too_small``, ``failed``) with a ``reason``.
Nothing is dropped silently and nothing raises out of a batch because of one bad image.
"""

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from PIL import Image

from assets.common.metadata import (
    GPU_POOL,
    GROUP_VISION,
    batch_asset,
    reason_counts,
    stopwatch,
    throughput_metadata,
)
from assets.vision.config import VisionConfig
from gpu_ops.base import ModelBackend
from gpu_ops.loader import decode_rgb, image_batches
from gpu_ops.ocr import RapidOcr
from gpu_ops.pool import PooledModel, default_workers
from resources.blobstore import BlobStore

BASE_COLUMNS = ["image_key", "platform", "username", "status", "reason", "error"]
PROGRESS_SECONDS = 30


def ok_images(creator_images: pd.DataFrame) -> list[dict[str, Any]]:
    """The images a vision stage works on: those the ingest stage decoded and stored."""
    ok = creator_images[creator_images["status"] == "ok"]
    return ok.to_dict("records")


def status_row(image: dict[str, Any], status: str, reason: str | None = None, error: str | None = None,
               **extra: Any) -> dict[str, Any]:
    """A stage row for ``image`` (or for a person crop, whose ``person_idx`` it keeps)."""
    keys = {"person_idx": image["person_idx"]} if "person_idx" in image else {}
    return {"image_key": image["image_key"], "platform": image["platform"], "username": image["username"],
            **keys, "status": status, "reason": reason, "error": (error or None) and error[:500], **extra}


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "missing_blob"
    if isinstance(exc, (OSError, SyntaxError, ValueError, Image.DecompressionBombError)):
        return "decode_error"  # PIL: truncated/unidentified files are OSErrors
    return "internal_error"


def safe_predict(model: ModelBackend, inputs: Sequence[Any]) -> list[Any]:
    """``model.predict(inputs)``; when the batch fails, each input alone, so one bad input fails alone.

    Items that still fail come back as the exception instead of a result.
    """
    if not inputs:
        return []
    try:
        return model.predict(list(inputs))
    except Exception:  # fall back to isolating the culprit; each failure is returned as a value
        out: list[Any] = []
        for item in inputs:
            try:
                out.extend(model.predict([item]))
            except Exception as exc:  # recorded as this item's failure row by the caller
                out.append(exc)
        return out


def computes_on_cpu(model: ModelBackend) -> bool:
    """Does this loaded backend do its work on the CPU? MediaPipe/OpenCV backends always do; RapidOCR
    unless ONNX Runtime's CUDA provider is there; torch backends follow their device."""
    if tuple(model.spec.device_kinds) == ("cpu",):
        return True
    if isinstance(model, RapidOcr):
        return "CUDAExecutionProvider" not in (model.device.onnx_providers if model.device else [])
    return model.device is None or model.device.kind == "cpu"


@contextmanager
def cpu_pool(model: ModelBackend, vision: VisionConfig, items: int,
             worker_options: Mapping[str, Any] | None = None) -> Iterator[Any]:
    """``model`` on a process pool of ``vision.cpu_workers`` (0: one per core) when it computes on the CPU
    and the stage has at least ``vision.pool_min_images`` items; else ``model`` itself. Either way the
    result has ``predict``/``version``/``device``, and the same answers."""
    model.load()
    workers = default_workers(vision.cpu_workers)
    if workers <= 1 or items < vision.pool_min_images or not computes_on_cpu(model):
        yield model
        return
    pooled = PooledModel(model, min(workers, items), worker_options=worker_options)
    try:
        yield pooled.load()
    finally:
        pooled.close()


# What a stage makes of one decoded image and the model's answer for it.
RowsFn = Callable[[dict[str, Any], np.ndarray, Any], list[dict[str, Any]]]


def per_image(model: ModelBackend, rows_for: RowsFn) -> "BatchFn":
    """A batch step that runs ``model`` on the batch and turns each answer into rows with ``rows_for``;
    an image the model fails on gets one ``failed`` row (``inference_error``)."""

    def process(images: list[dict[str, Any]], arrays: list[np.ndarray]) -> list[list[dict[str, Any]]]:
        out = []
        for image, array, result in zip(images, arrays, safe_predict(model, arrays), strict=True):
            if isinstance(result, Exception):
                out.append([status_row(image, "failed", "inference_error", f"{type(result).__name__}: {result}")])
            else:
                out.append(rows_for(image, array, result))
        return out

    return process


def stage_asset(key: dg.AssetKey, upstream: tuple[str, dg.AssetKey], *, kinds: set[str], description: str):
    """The decorator every model-running vision stage shares: partitioned per batch, pool ``gpu``."""
    return batch_asset(
        key=key,
        ins={upstream[0]: dg.AssetIn(key=upstream[1])},
        group_name=GROUP_VISION,
        pool=GPU_POOL,
        kinds=kinds,
        description=description,
    )


def scale_to_original(image: dict[str, Any], array: np.ndarray) -> tuple[float, float]:
    """Factors from decoded-array pixels to the stored image's pixels (the decode may have shrunk it)."""
    h, w = array.shape[:2]
    width, height = image.get("width"), image.get("height")
    sx = float(width) / w if width and w else 1.0
    sy = float(height) / h if height and h else 1.0
    return sx, sy


@dataclass
class ScanResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    images: int = 0
    seconds: float = 0.0

    def frame(self, columns: Sequence[str]) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(columns))


# One stage's work on a batch: (image rows, decoded arrays) -> list of output rows per image.
BatchFn = Callable[[list[dict[str, Any]], list[np.ndarray]], list[list[dict[str, Any]]]]


def scan_images(
    context: dg.AssetExecutionContext,
    images: list[dict[str, Any]],
    blobs: BlobStore,
    vision: VisionConfig,
    batch_size: int,
    process: BatchFn,
    *,
    stage: str,
) -> ScanResult:
    """Decode ``images`` on threads in fixed-size batches and hand them to ``process``.

    Too-small images never reach the model; decode failures become ``failed`` rows.
    """
    result = ScanResult(images=len(images))
    is_small = [min(i.get("width") or 0, i.get("height") or 0) < vision.min_image_px for i in images]
    small = [i for i, s in zip(images, is_small, strict=True) if s]
    todo = [i for i, s in zip(images, is_small, strict=True) if not s]
    result.rows += [status_row(i, "too_small", "image_below_min_side",
                               f"{i.get('width')}x{i.get('height')} < {vision.min_image_px} px") for i in small]

    def read(image: dict[str, Any]) -> np.ndarray:
        return decode_rgb(blobs.path(image["blob_key"]), max_side=vision.max_side)

    done, last_log = 0, time.perf_counter()
    with stopwatch() as elapsed:
        for batch in image_batches(todo, read, batch_size, workers=vision.decode_workers):
            for image, exc in batch.failures:
                result.rows.append(status_row(image, "failed", failure_reason(exc), f"{type(exc).__name__}: {exc}"))
            if batch.arrays:
                for rows in process(batch.items, batch.arrays):
                    result.rows += rows
            done += len(batch.items) + len(batch.failures)
            if time.perf_counter() - last_log > PROGRESS_SECONDS:
                last_log = time.perf_counter()
                context.log.info(f"{stage}: {done}/{len(todo)} images ({done / max(elapsed(), 1e-9):.1f}/s)")
    result.seconds = elapsed()
    return result


def stage_output(scan: ScanResult, columns: Sequence[str], *, ints: Sequence[str], unit: str,
                 versions: dict[str, str | None], extra: dict[str, Any] | None = None) -> dg.Output[pd.DataFrame]:
    """The stage's frame (nullable integer columns as ``Int64``) with its metadata."""
    df = scan.frame(columns)
    for col in ints:
        df[col] = df[col].astype("Int64")
    return dg.Output(df, metadata=stage_metadata(df, scan, unit=unit, versions=versions, extra=extra))


def stage_metadata(df: pd.DataFrame, scan: ScanResult, *, unit: str, versions: dict[str, str | None],
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Counts, statuses, failures by reason, seconds, images/s and model versions for the UI."""
    failed = df[df["status"] == "failed"] if len(df) else df
    by_status = df.drop_duplicates("image_key")["status"].value_counts().to_dict() if len(df) else {}
    found = int((df["status"] == "ok").sum()) if len(df) else 0
    return {
        "images": scan.images,
        unit: found,
        "images_by_status": dg.MetadataValue.json({k: int(v) for k, v in by_status.items()}),
        "failed": len(failed),
        "failures_by_reason": dg.MetadataValue.json(reason_counts(failed["reason"]) if len(failed) else {}),
        **throughput_metadata(scan.images, scan.seconds, "images"),
        "model_versions": dg.MetadataValue.json(versions),
        **(extra or {}),
    }


def coverage_expectations(df: pd.DataFrame, creator_images: pd.DataFrame, statuses: Sequence[str],
                          vision: VisionConfig, *, key: str = "image_key") -> list[Any]:
    """What every stage frame owes the batch: known statuses, a reason for every non-ok row, no row
    for an image that is not an ``ok`` image of this batch (no orphans), every ``ok`` image present
    (no silent drop), and a failure rate under the ceiling."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    ok_keys = sorted(creator_images.loc[creator_images["status"] == "ok", "image_key"])
    expectations: list[Any] = [
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=[*statuses, "too_small", "failed"]),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=[*statuses, "too_small"],
                                        mostly=1.0 - vision.max_failure_rate),
        gxe.ExpectColumnValuesToBeInSet(column=key, value_set=ok_keys),
    ]
    if ok_keys:
        expectations.append(gxe.ExpectColumnDistinctValuesToContainSet(column=key, value_set=ok_keys))
    if len(df) and (df["status"] != "ok").any():
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column="reason", row_condition=Column("status") != "ok"))
    return expectations


def in_unit_range(*columns: str) -> list[Any]:
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0.0, max_value=1.0) for c in columns]


def all_true(column: str) -> Any:
    """A derived boolean column (None where it does not apply) must be True everywhere else."""
    import great_expectations.expectations as gxe

    return gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True])


def box_inside(df: pd.DataFrame, prefix: str = "", tolerance: float = 0.5) -> pd.Series:
    """Per ok row: is the box ``{prefix}x1..y2`` non-empty and inside the image? None on other rows."""
    x1, y1, x2, y2 = (df[f"{prefix}{c}"].astype(float) for c in ("x1", "y1", "x2", "y2"))
    w, h = df["image_width"].astype(float), df["image_height"].astype(float)
    inside = (x1 >= -tolerance) & (y1 >= -tolerance) & (x2 <= w + tolerance) & (y2 <= h + tolerance) \
        & (x1 < x2) & (y1 < y2)
    return inside.astype(object).where(df["status"] == "ok", None)
