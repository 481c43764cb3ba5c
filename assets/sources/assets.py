"""Sources → ``raw/profiles`` and ``raw/posts`` for one creator batch.

The batch's members come from the warehouse (``creator_batches``); their rows come from the
source folders. Source-level rejects (malformed CSV rows, unreadable JSON files) are recorded
in ``source_rejects`` and summarised in the metadata; a member missing from every source is
listed, not dropped silently.
"""


import dataclasses

import dagster as dg
import pandas as pd

from assets.common.keys import RAW_POSTS, RAW_PROFILES
from assets.common.metadata import (
    BATCH_BACKFILL_POLICY,
    GROUP_INGEST,
    batch_check,
    check_result,
    preview_table,
    reason_counts,
    stopwatch,
    throughput_metadata,
)
from assets.common.partitions import creator_batches
from assets.common.promotion import CREATOR_COLUMNS, POST_COLUMNS
from assets.common.quality import gxe, validate_frame
from assets.sources.batching import batch_members
from assets.sources.parsing import SourceSnapshot, load_sources, read_stored_responses
from creatorlens.fields import USERNAME_PATTERN
from creatorlens.queries import load_queries
from resources.blobstore import BlobStore
from resources.sources import SourceFiles
from resources.warehouse import Warehouse


def load_snapshot(sources: SourceFiles) -> SourceSnapshot:
    """Everything the configured sources hold, read into one snapshot (CSVs, JSON dumps, MongoDB)."""
    mongo = sources.mongo()
    stored = [read_stored_responses(mongo.documents(), mongo.label)] if mongo.configured else []
    return load_sources(sources.csv_paths(), sources.json_dirs(), stored, header_map=sources.csv_header_map)


UPLOAD_POST_PREFIX = "upload-"


def upload_posts(engine, batch: str, blobs: BlobStore) -> list[dict]:
    """Photos uploaded in the app for the batch's creators (table ``uploads``), as posts of theirs:
    post id ``upload-<sha256[:16]>``, the blob's local path as ``media_url``, taken at upload time,
    no likes or comments. None uploaded: an empty list, and the stage reads the sources as before."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(load_queries("uploads.sql")["uploads_of_batch"], {"batch_key": batch}).all()
    return [{**dict.fromkeys(POST_COLUMNS), "platform": r.platform, "post_id": f"{UPLOAD_POST_PREFIX}{r.sha256[:16]}",
             "username": r.username, "taken_at": r.created_at, "likes": 0, "comments": 0,
             "media_url": str(blobs.path(r.blob_key)), "is_video": False, "source": "upload", "carousel": []}
            for r in rows]


@dg.multi_asset(
    outs={
        "raw_profiles": dg.AssetOut(
            key=RAW_PROFILES, description="One normalised row per creator of the batch.", kinds={"python", "pandas"}
        ),
        "raw_posts": dg.AssetOut(
            key=RAW_POSTS, description="Posts of the batch's creators, de-duplicated by post id.", kinds={"python", "pandas"}
        ),
    },
    partitions_def=creator_batches,
    group_name=GROUP_INGEST,
    can_subset=False,
    backfill_policy=BATCH_BACKFILL_POLICY,
)
def raw_sources(context: dg.AssetExecutionContext, warehouse: Warehouse, sources: SourceFiles, blobs: BlobStore):
    batch = context.partition_key
    with stopwatch() as elapsed:
        engine = warehouse.get_engine()
        members = batch_members(engine, batch)
        snapshot = load_snapshot(sources)  # rejects were recorded when the batches were discovered
        wanted = set(members)
        creators = [dataclasses.asdict(snapshot.creators[u]) for u in members if u in snapshot.creators]
        missing = [u for u in members if u not in snapshot.creators]
        posts = [{**dataclasses.asdict(p), "carousel": [img.url for img in p.images]}
                 for p in snapshot.posts if p.username in wanted]
        posts += upload_posts(engine, batch, blobs)  # the app's uploads for these creators (issue 16)
    profiles_df = pd.DataFrame(creators, columns=list(CREATOR_COLUMNS))
    profiles_df["sources"] = profiles_df["sources"].map(lambda s: list(s) if s is not None else [])
    for col in ("followers", "following", "post_count"):
        profiles_df[col] = profiles_df[col].astype("Int64")
    for col in ("is_business", "is_verified", "is_private"):
        profiles_df[col] = profiles_df[col].astype("boolean")
    # ``carousel``: every child's image URL in order (``None`` for a child without one), empty for a
    # single image or video; the images stage makes one image of each. Not promoted (posts rows are
    # one per post); the children become ``images`` rows.
    posts_df = pd.DataFrame(posts, columns=[*POST_COLUMNS, "source", "carousel"])
    posts_df["carousel"] = posts_df["carousel"].map(lambda c: list(c) if isinstance(c, list | tuple) else [])
    # A collab post can sit in two creators' dumps; the warehouse keys posts on (platform, post_id),
    # so the first creator (batch order) keeps it and the repeat is counted, not silently merged.
    shared = posts_df.duplicated(["platform", "post_id"], keep="first")
    if shared.any():
        context.log.warning(f"{int(shared.sum())} posts appear under several creators; first owner kept")
    posts_df = posts_df[~shared].reset_index(drop=True)
    posts_df["taken_at"] = pd.to_datetime(posts_df["taken_at"], utc=True)
    posts_df[["likes", "comments"]] = posts_df[["likes", "comments"]].fillna(0).astype("int64")
    posts_df["is_video"] = posts_df["is_video"].fillna(False).astype(bool)
    for col in ("view_count", "play_count"):
        posts_df[col] = posts_df[col].astype("Int64")
    posts_df["video_duration"] = posts_df["video_duration"].astype("Float64")
    if missing:
        context.log.warning(f"{len(missing)} batch members not found in any source: {missing[:20]}")
    context.log.info(f"batch {batch}: {len(profiles_df)} creators, {len(posts_df)} posts in {elapsed():.2f}s")
    seconds = elapsed()
    yield dg.Output(
        profiles_df,
        output_name="raw_profiles",
        metadata={
            **throughput_metadata(len(profiles_df), seconds, "creators"),
            "creators": len(profiles_df),
            "batch_members": len(members),
            "missing_from_sources": dg.MetadataValue.json(missing),
            "source_rejects": len(snapshot.rejects),
            # Kept with a caveat (table source_warnings); these are this batch's members' files'.
            "source_warnings": len(snapshot.warnings),
            "source_rejects_by_reason": dg.MetadataValue.json(
                reason_counts(r.reason.split(":")[0].split(" '")[0] for r in snapshot.rejects)
            ),
            "preview": preview_table(profiles_df, ["username", "full_name", "followers", "category", "country"]),
        },
    )
    yield dg.Output(
        posts_df,
        output_name="raw_posts",
        metadata={
            **throughput_metadata(len(posts_df), seconds, "posts"),
            "posts": len(posts_df),
            "creators_with_posts": int(posts_df["username"].nunique()),
            "carousel_posts": int((posts_df["carousel"].map(len) > 1).sum()),
            "carousel_children": int(posts_df["carousel"].map(len).where(lambda n: n > 1, 0).sum()),
            "posts_shared_with_another_creator": int(shared.sum()),
            "preview": preview_table(posts_df, ["username", "post_id", "likes", "comments", "taken_at"]),
        },
    )


@batch_check(asset=RAW_PROFILES,
                description="Usernames present, valid and unique within the batch.")
def raw_profiles_valid(raw_profiles: pd.DataFrame) -> dg.AssetCheckResult:
    return check_result(
        validate_frame(
            raw_profiles,
            [
                gxe.ExpectColumnValuesToNotBeNull(column="username"),
                gxe.ExpectColumnValuesToBeUnique(column="username"),
                gxe.ExpectColumnValuesToMatchRegex(column="username", regex=USERNAME_PATTERN),
                gxe.ExpectColumnValuesToBeBetween(column="followers", min_value=0),
            ],
            name="raw_profiles",
        )
    )


@batch_check(asset=RAW_POSTS,
                description="Post ids present and unique per platform; counts non-negative.")
def raw_posts_valid(raw_posts: pd.DataFrame) -> dg.AssetCheckResult:
    return check_result(
        validate_frame(
            raw_posts,
            [
                gxe.ExpectColumnValuesToNotBeNull(column="post_id"),
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["platform", "post_id"]),
                gxe.ExpectColumnValuesToBeBetween(column="likes", min_value=0),
                gxe.ExpectColumnValuesToBeBetween(column="comments", min_value=0),
            ],
            name="raw_posts",
        )
    )
