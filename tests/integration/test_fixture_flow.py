"""Every published source fixture (tests/fixtures/sources/SOURCES.md) through a real batch and run:
what the parsers read is what the warehouse holds — creators, posts, one image row per carousel
child — and every rejected record is recorded with its reason.

The fixtures' Instagram CDN hosts (``scontent*.cdninstagram.com``, ``*.fbcdn.net``, an image proxy) are rewritten to
a loopback CDN that serves a real photo for each path, so every carousel child is really fetched,
decoded and analysed; nothing else in the files is changed.
"""

from __future__ import annotations

import lzma
import re
import shutil
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from assets.images.assets import image_key, select_top_images
from assets.images.keyframes import keyframe_key, keyframe_times
from assets.sources.parsing import load_sources
from assets.sources.sample_data import build_sample_data
from creatorlens.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch
from tests.support.http import LoopbackHandler, serve_handler

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
# The CDN hosts, and the image proxy one published mock put in front of them (phosphor.*.workers.dev).
CDN_HOST = re.compile(r"https://(?:scontent[a-z0-9.-]*\.cdninstagram\.com|[a-z0-9.-]+\.fbcdn\.net|"
                      r"[a-z0-9.-]+\.workers\.dev)/")
PHOTOS = ["astronaut.jpg", "brick.jpg", "coffee.jpg", "clock.jpg", "chelsea.jpg", "grass.jpg"]
TOP_N = 10
# Instagram's video paths: progressive MP4 files (…/t50.2886-16/….mp4) and the o1/v/t16 reel URLs.
VIDEO_PATH = re.compile(r"\.mp4|/o1/v/t16/|t50\.2886-16")
KEYFRAMES = 3  # the reel_keyframes default


def _video(path: Path, seconds: int = 5, fps: int = 10) -> bytes:
    """A real MP4 (OpenCV's writer), each second another colour."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (320, 240))
    for i in range(seconds * fps):
        frame = np.full((240, 320, 3), ((i // fps) * 50 % 256, 200 - (i // fps) * 30, 90), np.uint8)
        cv2.putText(frame, str(i), (60, 150), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5)
        writer.write(frame)
    writer.release()
    return path.read_bytes()


@pytest.fixture
def cdn(tmp_path_factory):
    """(base URL, requested paths): a real JPEG for every path, chosen by the path's checksum."""
    root = tmp_path_factory.mktemp("sample")
    sample = build_sample_data(root)
    photos = [(sample.image_dir / p).read_bytes() for p in PHOTOS]
    reel = _video(root / "reel.mp4")
    hits: list[str] = []

    class Handler(LoopbackHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if VIDEO_PATH.search(self.path):
                self.answer(200, reel, "video/mp4")
            else:
                self.answer(200, photos[zlib.crc32(self.path.encode()) % len(photos)], "image/jpeg")

    with serve_handler(Handler) as base_url:
        yield base_url, hits


def _copy_sources(root: Path, base_url: str) -> tuple[Path, Path]:
    csv_dir, json_dir = root / "csv", root / "json"
    shutil.copytree(FIXTURES / "csv", csv_dir)
    json_dir.mkdir()
    for path in [*sorted((FIXTURES / "json").iterdir()), *sorted((FIXTURES / "instaloader").iterdir())]:
        if path.name.endswith(".xz"):
            text = lzma.decompress(path.read_bytes()).decode()
            (json_dir / path.name).write_bytes(lzma.compress(CDN_HOST.sub(f"{base_url}/", text).encode()))
        else:
            (json_dir / path.name).write_text(CDN_HOST.sub(f"{base_url}/", path.read_text()))
    return csv_dir, json_dir


def test_every_fixture_flows_through_a_batch_with_counts_in_equal_to_counts_out(
    cdn, tmp_path, database_url, dagster_instance, engine
):
    base_url, hits = cdn
    csv_dir, json_dir = _copy_sources(tmp_path / "sources", base_url)
    snapshot = load_sources(sorted(csv_dir.glob("*.csv")), [json_dir])
    assert len(snapshot.creators) >= 20 and len(snapshot.posts) >= 10  # the fixtures as published

    # What the parsers read, and what the images stage must make of it.
    posts = pd.DataFrame([{"platform": p.platform, "post_id": p.post_id, "username": p.username,
                           "likes": p.likes, "comments": p.comments, "taken_at": p.taken_at,
                           "media_url": p.media_url, "carousel": [i.url for i in p.images],
                           "is_video": p.is_video, "video_url": p.video_url}
                          for p in snapshot.posts])
    posts = posts.drop_duplicates(["platform", "post_id"]).reset_index(drop=True)
    expected_images = select_top_images(posts, TOP_N)
    expected_keys = {image_key(r.platform, r.post_id, r.position) for r in expected_images.itertuples()}
    # A video post's cover is its image; its video gives KEYFRAMES more, keyed by their time.
    reels = [r for r in expected_images.itertuples() if r.position == 1 and r.is_video and r.video_url]
    assert len(reels) >= 2
    expected_keys |= {keyframe_key(r.platform, r.post_id, t) for r in reels for t in keyframe_times(5.0, KEYFRAMES)}
    carousels = posts[posts["carousel"].map(len) > 1]
    assert len(carousels) >= 3  # sidecar, carousel_media, a collab carousel
    assert len(expected_keys) > len(posts)  # carousel children are images of their own

    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, csv_dir=csv_dir,
                        json_dir=json_dir, top_n_images=TOP_N, batch_size=100)
    discovery = discover_batches(settings, dagster_instance)
    assert discovery.assignment.all_batches == ["batch-00001"]
    run = materialize_batch(build_definitions(settings).resolve_job_def(INGEST_JOB), dagster_instance, "batch-00001")
    assert run.success and run.promoted and not run.failed_checks, run

    with engine.connect() as conn:
        creators = set(conn.exec_driver_sql("SELECT username FROM creators").scalars())
        warehouse_posts = {(u, p) for u, p in conn.exec_driver_sql("SELECT username, post_id FROM posts")}
        images = conn.exec_driver_sql("SELECT image_key, status, error_reason FROM images").all()
        rejects = conn.exec_driver_sql("SELECT source, record, reason FROM source_rejects").all()
        warnings = conn.exec_driver_sql("SELECT source, record, message FROM source_warnings").all()
        analysed = conn.exec_driver_sql("SELECT count(*) FROM image_vision").scalar_one()
    assert creators == set(snapshot.creators)
    # Video posts keep their video's URL, duration and counts; profiles their other fields.
    videos = {p.post_id: (p.video_url, p.video_duration, p.view_count, p.play_count)
              for p in snapshot.posts if p.video_url}
    profiles = {c.username: (c.following, c.post_count, c.external_url, c.is_private)
                for c in snapshot.creators.values() if c.following is not None or c.external_url}
    assert videos and profiles  # the fixtures hold both
    with engine.connect() as conn:
        stored_videos = {r[0]: tuple(r[1:]) for r in conn.exec_driver_sql(
            "SELECT post_id, video_url, video_duration, view_count, play_count FROM posts WHERE video_url IS NOT NULL")}
        stored_profiles = {r[0]: tuple(r[1:]) for r in conn.exec_driver_sql(
            "SELECT username, following, post_count, external_url, is_private FROM creators")}
    assert {k: v for k, v in stored_videos.items() if k in videos} == videos
    assert {u: stored_profiles[u] for u in profiles} == profiles
    assert warehouse_posts == {(r.username, r.post_id) for r in posts.itertuples()}
    assert {k for k, *_ in images} == expected_keys
    assert {(s, r) for _, s, r in images} == {("ok", None)}, images
    assert analysed == len(expected_keys)  # every child went through the vision stage too
    # Each child was fetched from its own URL (once: the blob store keeps what a re-run needs).
    child_urls = {u for c in carousels["carousel"] for u in c}
    assert len({h for h in hits}) >= len({u.removeprefix(base_url) for u in child_urls if u})
    # The records no parser could use are recorded with their reason, each once.
    assert sorted((Path(s).name, rec) for s, rec, _ in rejects) == sorted(
        (Path(r.source).name, r.record) for r in snapshot.rejects)
    assert all(reason for *_, reason in rejects)
    # So are the caveats of the records that were kept (the Windows-1252 export, unparsed counts).
    assert {(Path(s).name, rec, msg) for s, rec, msg in warnings} == {
        (Path(w.source).name, w.record, w.message) for w in snapshot.warnings}
    assert any("decoded as windows-1252" in msg for *_, msg in warnings), warnings

    # A re-run of the same batch duplicates nothing.
    again = materialize_batch(build_definitions(settings).resolve_job_def(INGEST_JOB), dagster_instance, "batch-00001")
    assert again.success and again.promoted
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM images").scalar_one() == len(expected_keys)
        assert conn.exec_driver_sql("SELECT count(*) FROM posts").scalar_one() == len(posts)
        assert conn.exec_driver_sql("SELECT count(*) FROM source_rejects").scalar_one() == len(snapshot.rejects)
        assert conn.exec_driver_sql("SELECT count(*) FROM source_warnings").scalar_one() == len(warnings)
