"""``images/creator_images``: top-N images per creator → fetched, decoded, hashed, stored.

The top posts by likes + comments give their images: every child of a carousel (keys
``<platform>:<post_id>`` for the first, ``…:<position>`` for the rest), a video's cover image.
Each selected image ends as one row with ``status`` ``ok`` (sha256, PDQ hash, size, blob keys)
or ``failed`` (a stable ``error_reason`` code and a human-readable ``error``). Originals are
stored content-addressed, with a 400 px JPEG thumbnail. A re-run re-uses blobs already stored.

Images never gate source data: an image that could not be had (expired signed URL, 404, network
error — the ``"source"`` side of ``imaging.REASON_SIDES``) is a recorded ``failed`` row but does not
count against the failure-rate ceiling of ``creator_images_quality``, which measures only failures
of our own processing, so such a batch still promotes its creators and posts.
"""


import base64
import dataclasses
import os
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import httpx
import numpy as np
import pandas as pd

from assets.common.keys import CREATOR_IMAGES, RAW_POSTS
from assets.common.metadata import (
    GROUP_INGEST,
    NETWORK_RETRY_POLICY,
    batch_asset,
    batch_check,
    check_result,
    reason_counts,
    stopwatch,
    throughput_metadata,
)
from assets.common.promotion import IMAGE_COLUMNS
from assets.common.quality import column, gxe, validate_frame
from assets.images.config import IngestConfig
from assets.images.imaging import (
    SOURCE_REASONS,
    ImageError,
    ImageLimits,
    ProcessedImage,
    fetch_bytes,
    fetch_bytes_retrying,
    process_image_bytes,
)
from assets.images.keyframes import extract_keyframes, keyframe_key, keyframe_uri
from assets.images.local_copies import local_copy_for
from gpu_ops.prefetch import prefetch_map
from resources.blobstore import BlobStore

_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "HEIF": "heic", "MPO": "jpg", "BMP": "bmp", "TIFF": "tif"}
PROGRESS_EVERY = 100


def select_top_posts(posts: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """Top ``top_n`` posts per creator by likes + comments (ties: newest first, then post id)."""
    if posts.empty:
        return posts.assign(engagement=pd.Series(dtype="int64"), rank=pd.Series(dtype="int64"))
    ranked = posts.assign(engagement=posts["likes"].astype("int64") + posts["comments"].astype("int64"))
    ranked = ranked.sort_values(
        ["username", "engagement", "taken_at", "post_id"], ascending=[True, False, False, True], na_position="last"
    )
    ranked["rank"] = ranked.groupby("username").cumcount() + 1
    return ranked[ranked["rank"] <= top_n].reset_index(drop=True)


def image_key(platform: str, post_id: str, position: int = 1) -> str:
    """``<platform>:<post_id>`` for a post's first (or only) image, ``…:<position>`` for the next
    children of a carousel: a single-image post keeps the key it always had."""
    return f"{platform}:{post_id}" if position <= 1 else f"{platform}:{post_id}:{position}"


# Photos a reviewer uploaded in the app become posts with this post-id prefix (raw_sources).
UPLOADED_POST_PREFIX = "upload-"


def select_top_images(posts: pd.DataFrame, top_n: int) -> pd.DataFrame:
    """The images of the top posts, ``top_n`` per creator: posts ranked by likes + comments
    (:func:`select_top_posts`), each expanded into every child of its carousel in order (a single
    image or video: its one image), then cut at ``top_n`` images per creator. One row per image,
    with the post's fields, the child's ``media_url`` and its 1-based ``position``.

    Uploaded photos (post ids ``upload-…``) are always kept: they are taken out before the ranking
    and the cut, and appended after it with ``rank`` 0 (outside the engagement ranking) and
    ``engagement`` 0, so they never displace nor are displaced by a creator's top posts."""
    uploaded = posts["post_id"].astype(str).str.startswith(UPLOADED_POST_PREFIX) if len(posts) else None
    if uploaded is None or not uploaded.any():
        return _top_images(posts, top_n)
    images = _top_images(posts[~uploaded], top_n)
    kept = posts[uploaded].drop(columns=["carousel"], errors="ignore").assign(engagement=0, rank=0, position=1)
    kept = kept.reindex(columns=images.columns)
    return kept.reset_index(drop=True) if images.empty else pd.concat([images, kept], ignore_index=True)


def _top_images(posts: pd.DataFrame, top_n: int) -> pd.DataFrame:
    ranked = select_top_posts(posts, top_n)
    rows = []
    for post in ranked.to_dict("records"):
        children = post.pop("carousel", None)  # a list, or a numpy array once read back from Parquet
        urls = list(children) if isinstance(children, list | tuple | np.ndarray) and len(children) else [
            post.get("media_url")]
        for position, url in enumerate(urls, start=1):
            rows.append({**post, "media_url": url, "position": position})
    images = pd.DataFrame(rows, columns=[*(c for c in ranked.columns if c != "carousel"), "position"])
    if images.empty:
        return images
    images = images.sort_values(["username", "rank", "position"], kind="stable")
    images = images[images.groupby("username").cumcount() < top_n].reset_index(drop=True)
    images["media_url"] = images["media_url"].astype(object).where(images["media_url"].notna(), None)
    return images


def _base_row(post: dict[str, Any]) -> dict[str, Any]:
    return {
        "image_key": image_key(post["platform"], post["post_id"], int(post.get("position") or 1)),
        "platform": post["platform"],
        "post_id": post["post_id"],
        "username": post["username"],
        "rank": int(post["rank"]),
        "engagement": int(post["engagement"]),
        "source_uri": post.get("media_url"),
        "processed_at": datetime.now(UTC),
    }


def _fetch(post: dict[str, Any], *, limits: ImageLimits, client: httpx.Client) -> bytes:
    """I/O half (threads): the original bytes, or an ImageError with a reason.

    A copy saved by ``creatorlens fetch`` while the signed URL was valid comes first
    (:func:`local_copy_for`; ``post["image_origin"] = "local_copy"``); none, or one that cannot be
    read, falls back to the URL."""
    local = local_copy_for(post)
    if local is not None:
        try:
            data = fetch_bytes(str(local), limits=limits)
        except ImageError:
            pass
        else:
            post["image_origin"] = "local_copy"
            return data
    uri = post.get("media_url")
    if not isinstance(uri, str) or not uri:
        raise ImageError("no_media_url", "post has no image URL")
    return fetch_bytes_retrying(uri, limits=limits, client=client)


def _decode(item: tuple[bytes | BaseException, ImageLimits]) -> ProcessedImage:
    """CPU half, run in processes (bench/decode_pdq.py: 1.81x vs 1.56x for threads on 2 cores)."""
    data, limits = item
    if isinstance(data, BaseException):
        raise data
    return process_image_bytes(data, limits=limits)


def _keyframe_rows(post: dict[str, Any], n: int, video_limits: ImageLimits, limits: ImageLimits,
                   client: httpx.Client, blobs: BlobStore) -> list[dict[str, Any]]:
    """The keyframes of a video post (``assets/images/keyframes.py``), each a row keyed
    ``<platform>:<post_id>:t<ms>`` with source ``<video_url>#t=<s>``; a video that cannot be had or
    read is one failed row keyed ``…:video`` with its reason."""
    video_url = post["video_url"]
    try:
        frames = extract_keyframes(fetch_bytes_retrying(video_url, limits=video_limits, client=client), n)
    except Exception as exc:  # noqa: BLE001 - every failure is a recorded row
        return [_video_failure_row(post, exc, blobs)]
    rows = []
    for frame in frames:
        base = {**_base_row({**post, "media_url": keyframe_uri(video_url, frame.seconds)}),
                "image_key": keyframe_key(post["platform"], post["post_id"], frame.seconds)}
        try:
            result: ProcessedImage | BaseException = process_image_bytes(frame.jpeg, limits=limits)
        except Exception as exc:  # noqa: BLE001
            result = exc
        rows.append(_result_row(base, frame.jpeg, result, blobs))
    return rows


def _video_failure_row(post: dict[str, Any], error: BaseException, blobs: BlobStore) -> dict[str, Any]:
    """The one failed row (``…:video``) of a video post whose keyframes could not be had."""
    base = {**_base_row({**post, "media_url": post["video_url"]}),
            "image_key": f"{post['platform']}:{post['post_id']}:video"}
    return _result_row(base, error, error, blobs)


def _row(post: dict[str, Any], original: bytes | BaseException, result: ProcessedImage | BaseException,
         blobs: BlobStore) -> dict[str, Any]:
    """One warehouse row of a post's image: ``ok`` with hashes and blob keys, or ``failed`` with a reason."""
    return _result_row(_base_row(post), original, result, blobs)


def _result_row(row: dict[str, Any], original: bytes | BaseException, result: ProcessedImage | BaseException,
                blobs: BlobStore) -> dict[str, Any]:
    """``row`` (key, post fields, source) completed with what processing the image gave."""
    if isinstance(result, ImageError):
        return {**row, "status": "failed", "error_reason": result.reason, "error": result.detail[:1000]}
    if isinstance(result, BaseException):
        # Not an expected image problem (a bug or an environment failure): still a row with its reason.
        return {**row, "status": "failed", "error_reason": "internal_error",
                "error": f"{type(result).__name__}: {result}"[:1000]}
    assert isinstance(original, bytes)
    ext = _EXT.get(result.source_format.upper(), "bin")
    return {
        **row,
        "status": "ok",
        "error_reason": None,
        "error": None,
        "sha256": result.sha256,
        "blob_key": blobs.put(original, "originals", ext, sha256=result.sha256),
        "thumb_key": blobs.put(result.thumbnail_jpeg, "thumbnails", "jpg", sha256=result.sha256),
        "byte_size": len(original),
        "width": result.width,
        "height": result.height,
        "source_format": result.source_format,
        "source_mode": result.source_mode,
        "frames": result.frames,
        "exif_rotated": result.exif_rotated,
        "pdq_hash": result.pdq_hash,
        "pdq_quality": result.pdq_quality,
        "pdq_dihedral": list(result.pdq_dihedral),
    }


def _preview(df: pd.DataFrame, blobs: BlobStore, limit: int = 6) -> str:
    """Markdown table with small inline thumbnails of the first few ok images."""
    ok = df[df["status"] == "ok"].head(limit)
    if ok.empty:
        return "_no images decoded_"
    lines = ["| creator | post | size | thumbnail |", "|---|---|---|---|"]
    for r in ok.itertuples():
        data = base64.b64encode(blobs.get(r.thumb_key)).decode()
        lines.append(f"| {r.username} | {r.post_id} | {r.width}×{r.height} | ![{r.post_id}](data:image/jpeg;base64,{data}) |")
    return "\n".join(lines)


@batch_asset(
    key=CREATOR_IMAGES,
    ins={"raw_posts": dg.AssetIn(key=RAW_POSTS)},
    group_name=GROUP_INGEST,
    kinds={"python", "pandas", "pillow"},
    description="Top-N images per creator: decoded, EXIF-rotated, thumbnailed, sha256 + PDQ hashed.",
    # Each image already retries its own transient errors (429, 5xx, resets) and ends as a row;
    # this retries the step when the run itself hits one (blob store, worker lost), spread by jitter.
    retry_policy=NETWORK_RETRY_POLICY,
)
def creator_images(
    context: dg.AssetExecutionContext, raw_posts: pd.DataFrame, blobs: BlobStore, ingest: IngestConfig
) -> dg.Output[pd.DataFrame]:
    selected = select_top_images(raw_posts, ingest.top_n_images)
    limits = ImageLimits(
        max_bytes=ingest.max_image_bytes,
        max_pixels=ingest.max_image_pixels,
        timeout_s=ingest.http_timeout_s,
        thumbnail_px=ingest.thumbnail_px,
    )
    io_workers = ingest.image_workers or min(32, (os.cpu_count() or 1) * 2)
    cpu_workers = ingest.decode_workers or os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    total = len(selected)
    context.log.info(f"processing {total} images: {io_workers} fetch threads, {cpu_workers} decode processes")
    with stopwatch() as elapsed, httpx.Client(timeout=limits.timeout_s, follow_redirects=True) as client:
        last_log = time.perf_counter()
        posts = selected.to_dict("records")
        fetched = prefetch_map(lambda p: _fetch(p, limits=limits, client=client), posts, workers=io_workers)
        # Both maps keep input order, and each decode item carries its original bytes back.
        mode = "process" if cpu_workers > 1 else "thread"
        decoded = prefetch_map(_decode, ((data, limits) for _, data in fetched), workers=cpu_workers, mode=mode)
        for i, ((original, _), result) in enumerate(decoded):
            rows.append(_row(posts[i], original, result, blobs))
            done = i + 1
            if done % PROGRESS_EVERY == 0 or time.perf_counter() - last_log > 30:
                last_log = time.perf_counter()
                context.log.info(f"{done}/{total} images ({done / max(elapsed(), 1e-9):.1f}/s)")
        videos = [p for p in posts if int(p.get("position") or 1) == 1 and p.get("is_video")
                  and isinstance(p.get("video_url"), str) and p["video_url"]] if ingest.reel_keyframes else []
        video_limits = dataclasses.replace(limits, max_bytes=ingest.max_video_bytes,
                                           allowed_content_types=("video/", "application/mp4"))
        for post, result in prefetch_map(
                lambda p: _keyframe_rows(p, ingest.reel_keyframes, video_limits, limits, client, blobs), videos,
                workers=min(io_workers, 4)):
            if isinstance(result, BaseException):  # _keyframe_rows records its own failures; a bug still gets a row
                result = [_video_failure_row(post, result, blobs)]
            rows.extend(result)
    # pdq_dihedral (the rotated/flipped hashes) feeds the duplicates stage; it is not promoted.
    df = pd.DataFrame(rows, columns=[*IMAGE_COLUMNS, "pdq_dihedral"])
    for col in ("byte_size", "width", "height", "frames", "pdq_quality"):
        df[col] = df[col].astype("Int64")
    df["exif_rotated"] = df["exif_rotated"].astype("boolean")
    failed = df[df["status"] == "failed"]
    by_reason = reason_counts(failed["error_reason"])
    health = failure_counts(df)
    context.log.info(f"{len(df) - len(failed)} ok, {len(failed)} failed {by_reason} "
                     f"({health['processing_failures']} of our processing, {health['source_failures']} "
                     f"unreachable/expired/missing) in {elapsed():.2f}s")
    return dg.Output(
        df,
        metadata={
            "images": len(df),
            "ok": int((df["status"] == "ok").sum()),
            "failed": len(failed),
            "failure_rate": dg.MetadataValue.float(round(len(failed) / len(df), 4) if len(df) else 0.0),
            "failures_by_reason": dg.MetadataValue.json(by_reason),
            "processing_failures": health["processing_failures"],
            "source_failures": health["source_failures"],
            "failures": dg.MetadataValue.md(
                failed[["username", "post_id", "error_reason", "error"]].head(20).to_markdown(index=False)
                if len(failed) else "_none_"
            ),
            "carousel_children": int(df["image_key"].str.fullmatch(r"[^:]+:[^:]+:\d+").sum()),
            "video_keyframes": int(df["image_key"].str.fullmatch(r"[^:]+:[^:]+:t\d+").sum()),
            "fetch_threads": io_workers,
            "from_local_copies": sum(p.get("image_origin") == "local_copy" for p in posts),
            "decode_processes": cpu_workers,
            **throughput_metadata(len(df), elapsed(), "images"),
            "preview": dg.MetadataValue.md(_preview(df, blobs)),
        },
    )


def _health_status(status: pd.Series, reason: pd.Series) -> pd.Series:
    """``ok``, ``failed`` (a failure of our own processing), or null (the image could not be had:
    unreachable, expired, missing — see ``imaging.REASON_SIDES``), which the ceiling leaves out."""
    counted = (status == "ok") | ~reason.isin(SOURCE_REASONS)
    return status.astype(object).where(counted & status.notna(), None)


def failure_counts(df: pd.DataFrame) -> dict[str, Any]:
    """Failures split by whose they are, and the rate the ceiling compares: processing failures
    among the images whose bytes reached our processing (ok + processing failures)."""
    failed = df["status"] == "failed"
    source = failed & df["error_reason"].isin(SOURCE_REASONS)
    processing = int((failed & ~source).sum())
    ok = int((df["status"] == "ok").sum())
    processed = ok + processing
    return {
        "processing_failures": processing,
        "source_failures": int(source.sum()),
        "processed": processed,
        "failure_rate": round(processing / processed, 4) if processed else 0.0,
    }


@batch_check(asset=CREATOR_IMAGES,
                description="Unique image keys, hashes on every ok image, a reason on every failure, and a "
                            "rate of failures of our own processing (decode errors, limits, bugs) under the "
                            "configured ceiling; unreachable, expired or missing images are recorded, not counted.")
def creator_images_quality(creator_images: pd.DataFrame, ingest: IngestConfig) -> dg.AssetCheckResult:
    # The ceiling reads ``health_status``: null for source-side failures, which GX leaves out of
    # ``mostly``, so a batch whose every image URL expired still passes and promotes its creators.
    frame = creator_images.assign(
        health_status=_health_status(creator_images["status"], creator_images["error_reason"])
    )
    expectations = [
        gxe.ExpectColumnValuesToBeUnique(column="image_key"),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "failed"]),
        gxe.ExpectColumnValuesToBeInSet(column="health_status", value_set=["ok"], mostly=1.0 - ingest.max_failure_rate),
    ]
    if (frame["status"] == "ok").any():
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column=c, row_condition=column("status") == "ok")
            for c in ("sha256", "pdq_hash", "pdq_quality")
        ]
        expectations.append(
            gxe.ExpectColumnValueLengthsToEqual(column="pdq_hash", value=64, row_condition=column("status") == "ok")
        )
    if (frame["status"] == "failed").any():
        expectations.append(
            gxe.ExpectColumnValuesToNotBeNull(column="error_reason", row_condition=column("status") == "failed")
        )
    counts = failure_counts(frame)
    failed = frame[frame["status"] == "failed"]
    return check_result(
        validate_frame(frame, expectations, name="creator_images"),
        extra={
            "failure_rate": counts["failure_rate"],
            "max_failure_rate": ingest.max_failure_rate,
            "processing_failures": counts["processing_failures"],
            "source_failures": counts["source_failures"],
            "processed_images": counts["processed"],
            "processing_failures_by_reason": dg.MetadataValue.json(
                reason_counts(failed.loc[~failed["error_reason"].isin(SOURCE_REASONS), "error_reason"])),
            "source_failures_by_reason": dg.MetadataValue.json(
                reason_counts(failed.loc[failed["error_reason"].isin(SOURCE_REASONS), "error_reason"])),
        },
    )
