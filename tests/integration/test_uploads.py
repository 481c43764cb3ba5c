"""Upload → tags end to end: a reviewer uploads a photo for a creator through the real app, the upload
sensor asks for a run of the creator's batch, the run (executed as the daemon would, with the
request's selection and tags) turns the upload into an image of the creator and tags it with a tiny
random SigLIP, and the status sensor records the outcome the app then shows. A corrupt file is
refused with its reason and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from app.auth import create_user, issue_api_token
from app.main import create_app
from assets.sources.sample_data import build_sample_data
from creatorlens.queries import load_queries
from creatorlens.settings import Settings
from orchestration.definitions import ASSET_CHECKS, ASSETS, JOBS, build_resources
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches
from orchestration.sensors import (
    UPLOAD_RUN_TAG,
    UPLOAD_SENSOR,
    UPLOAD_STATUS_SENSOR,
    upload_run_selection,
    upload_sensor,
    upload_status_sensor,
)
from resources.models import ModelRegistry
from tests.support.tiny_models import build_tiny_siglip

pytestmark = pytest.mark.e2e

CREATOR = "pixel.thief"
TOP_N = 2  # fewer than the creator's posts: the upload must still be kept


def _rows(engine: sa.Engine, sql: str, **params) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql, params).all()]


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, name: str):
    sensor = defs.resolve_sensor_def(name)
    return sensor(dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources,
                                          sensor_name=name))


def _png_header_bomb(side: int = 8_000) -> bytes:
    """A PNG whose header says side × side pixels (64 M: over the pipeline's 60 M cap), a few bytes long."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(side + 1)))
            + chunk(b"IEND", b""))


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def test_upload_is_processed_and_tagged_and_a_corrupt_file_is_refused(
    tmp_path: Path, database_url: str, engine: sa.Engine, dagster_instance: dg.DagsterInstance
) -> None:
    sample = build_sample_data(tmp_path / "sample")
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, csv_dir=sample.csv_paths[0].parent,
                        json_dir=sample.json_dirs[0], image_workers=2, decode_workers=1, device="cpu",
                        top_n_images=TOP_N)
    # The creator is in the warehouse already (the app takes uploads for known creators only); written
    # directly, as another system may, instead of a first pipeline run (~40 s on 2 busy cores).
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO creators (platform, username) VALUES ('instagram', %(u)s)", {"u": CREATOR})
    discover_batches(settings, dagster_instance, batch_size=4)
    ((batch,),) = _rows(engine, "SELECT batch_key FROM creator_batches WHERE username = %(u)s", u=CREATOR)
    models = ModelRegistry.from_settings(settings, device="cpu", backends={"image_embedder": "siglip"},
                                         weights={"image_embedder": str(build_tiny_siglip(tmp_path / "siglip"))})
    defs = dg.Definitions(assets=ASSETS, asset_checks=ASSET_CHECKS, jobs=JOBS,
                          sensors=[upload_sensor, upload_status_sensor],
                          resources={**build_resources(settings), "models": models})
    job = defs.resolve_job_def(INGEST_JOB)
    selection = sorted(upload_run_selection().resolve(defs.resolve_asset_graph()), key=lambda k: k.to_user_string())
    assert not any(k.path[0] == "profiles" or k.path[-1] == "promoted_profiles" for k in selection)

    with engine.begin() as conn:
        create_user(conn, "rita", "correct horse battery", "reviewer")
        create_user(conn, "vic", "correct horse battery", "viewer")
        rita, vic = issue_api_token(conn, "rita"), issue_api_token(conn, "vic")
    client = TestClient(create_app(engine, settings.blob_root))
    reviewer = {"Authorization": f"Bearer {rita}"}
    url = f"/api/creators/instagram/{CREATOR}/uploads"
    photo_path = next(p for p in sorted(sample.image_dir.glob("*.jpg")) if p.name not in sample.broken_image_files)
    photo = photo_path.read_bytes()
    sha = hashlib.sha256(photo).hexdigest()

    # Refused, nothing stored: a corrupt JPEG (truncated header), a non-image; a viewer may not upload.
    blobs_before = _files(settings.blob_root)
    corrupt = client.post(url, headers=reviewer, files={"file": ("broken.jpg", photo[:40], "image/jpeg")})
    assert corrupt.status_code == 422 and "broken.jpg" in corrupt.json()["detail"]
    assert "nothing was stored" in corrupt.json()["detail"]
    bomb = client.post(url, headers=reviewer, files={"file": ("bomb.png", _png_header_bomb(), "image/png")})
    assert bomb.status_code == 413 and "bomb.png" in bomb.json()["detail"] and "pixels" in bomb.json()["detail"]
    both = client.post(url, headers=reviewer, files=[("file", ("ok.jpg", photo, "image/jpeg")),
                                                     ("file", ("notes.txt", b"hello", "text/plain"))])
    assert both.status_code == 422 and "notes.txt" in both.json()["detail"]
    assert client.post(url, headers={"Authorization": f"Bearer {vic}"},
                       files={"file": ("ok.jpg", photo, "image/jpeg")}).status_code == 403
    assert client.post("/api/creators/instagram/nobody.here/uploads", headers=reviewer,
                       files={"file": ("ok.jpg", photo, "image/jpeg")}).status_code == 404
    assert _rows(engine, "SELECT count(*) FROM uploads") == [(0,)]
    assert _files(settings.blob_root) == blobs_before

    created = client.post(url, headers=reviewer, files={"file": ("ok.jpg", photo, "image/jpeg")})
    assert created.status_code == 201, created.text
    (upload,) = created.json()["uploads"]
    assert upload["status"] == "pending" and upload["sha256"] == sha and upload["uploaded_by"] == "rita"
    assert upload["image_key"] == f"instagram:upload-{sha[:16]}"
    assert (settings.blob_root / upload["blob_key"]).read_bytes() == photo  # content-addressed
    again = client.post(url, headers=reviewer, files={"file": ("same.jpg", photo, "image/jpeg")})
    assert again.status_code == 200 and again.json()["uploads"][0]["id"] == upload["id"]  # idempotent
    # The creator page's form: the same photo again is the same row; a bad one comes back as a message.
    form = client.post(f"/creators/instagram/{CREATOR}/uploads", headers=reviewer, follow_redirects=False,
                       files={"file": ("again.jpg", photo, "image/jpeg")})
    assert form.status_code == 303 and "0+photo%28s%29+uploaded%2C+1+already+there" in form.headers["location"]
    refused = client.post(f"/creators/instagram/{CREATOR}/uploads", headers=reviewer, follow_redirects=False,
                          files={"file": ("notes.txt", b"hello", "text/plain")})
    assert refused.status_code == 303 and "error=notes.txt" in refused.headers["location"]
    assert _rows(engine, "SELECT count(*) FROM uploads") == [(1,)]

    # The upload sensor asks for one run of the batch (without the profile stage), marks it processing.
    result = _tick(defs, dagster_instance, UPLOAD_SENSOR)
    (request,) = result.run_requests
    assert request.partition_key == batch and request.run_key.startswith(f"upload:{batch}:")
    assert sorted(request.asset_selection, key=lambda k: k.to_user_string()) == selection
    state = client.get(f"/api/uploads/{upload['id']}", headers=reviewer).json()
    assert state["status"] == "processing" and state["run_id"] is None
    # Not launched yet: the next tick asks again under the same key (Dagster launches one run per key).
    (repeat,) = _tick(defs, dagster_instance, UPLOAD_SENSOR).run_requests
    assert repeat.run_key == request.run_key
    assert isinstance(_tick(defs, dagster_instance, UPLOAD_STATUS_SENSOR), dg.SkipReason)  # no run yet

    run = job.execute_in_process(partition_key=request.partition_key, asset_selection=request.asset_selection,
                                 instance=dagster_instance, tags=request.tags, raise_on_error=False)
    assert run.success
    assert dagster_instance.get_run_by_id(run.run_id).tags[UPLOAD_RUN_TAG] == request.run_key
    skipped = _tick(defs, dagster_instance, UPLOAD_STATUS_SENSOR)
    assert "finished" in skipped.skip_message

    state = client.get(f"/api/uploads/{upload['id']}", headers=reviewer).json()
    assert state["run_id"] == run.run_id
    assert state["status"] in ("completed", "partial"), state
    image = _rows(engine, "SELECT status, sha256, rank, post_id FROM images WHERE image_key = %(k)s",
                  k=upload["image_key"])
    assert image == [("ok", sha, 0, f"upload-{sha[:16]}")]
    # The creator's own posts were cut at TOP_N images; the upload is kept on top of them.
    assert len(_rows(engine, "SELECT 1 FROM posts WHERE username = %(u)s AND post_id NOT LIKE 'upload-%%'",
                     u=CREATOR)) > TOP_N
    assert _rows(engine, "SELECT count(*) FROM images WHERE username = %(u)s", u=CREATOR)[0][0] == TOP_N + 1
    embedded = _rows(engine, "SELECT count(*) FROM image_embeddings e JOIN images i USING (image_id) "
                             "WHERE i.image_key = %(k)s", k=upload["image_key"])[0][0]
    assert embedded == 1  # the tiny SigLIP embedded it
    tags = {r[0] for r in _rows(engine, "SELECT t.name FROM image_tags it JOIN tags t USING (tag_id) JOIN images i "
                                        "USING (image_id) WHERE i.image_key = %(k)s AND it.present",
                                k=upload["image_key"])}
    if state["status"] == "completed":
        assert tags and {t["name"] for t in state["tags"]} <= tags and state["reason"] is None
    else:
        assert not tags and "threshold" in state["reason"]
    # The creator page lists the upload with its state and tags; the list endpoint agrees.
    listed = client.get(url, headers=reviewer).json()
    assert [(u["id"], u["status"]) for u in listed] == [(upload["id"], state["status"])]
    page = client.get(f"/creators/instagram/{CREATOR}", headers=reviewer)
    assert page.status_code == 200 and f"#{upload['id']}" in page.text and state["status"] in page.text
    assert 'action="/creators/instagram/pixel.thief/uploads"' in page.text
    # Finished uploads are left alone by later ticks; nothing new to launch.
    assert not _tick(defs, dagster_instance, UPLOAD_SENSOR).run_requests


def test_a_failed_run_fails_its_uploads_with_the_reason_and_a_re_upload_tries_again(
    tmp_path: Path, database_url: str, engine: sa.Engine, dagster_instance: dg.DagsterInstance
) -> None:
    """The status sensor's failure path against a real failed run (a job whose step raises), tagged as
    the upload sensor tags its runs; the same bytes uploaded again put the failed row back to pending."""
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url)
    defs = dg.Definitions(sensors=[upload_sensor, upload_status_sensor], resources=build_resources(settings))
    key = "upload:batch-00001:0123456789abcdef"
    sha = "ab" * 32
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO creators (platform, username) VALUES ('instagram', 'late.user')")
        conn.exec_driver_sql("INSERT INTO uploads (platform, username, sha256, blob_key, uploaded_by, image_key, "
                             "status, run_key) VALUES ('instagram', 'late.user', %(s)s, %(b)s, 'rita', %(k)s, "
                             "'processing', %(r)s)",
                             {"s": sha, "b": f"originals/ab/{sha}.jpg", "k": f"instagram:upload-{sha[:16]}", "r": key})

    @dg.op
    def promote() -> None:
        raise OSError("No space left on device")

    @dg.job
    def upload_run() -> None:
        promote()

    failed = upload_run.execute_in_process(instance=dagster_instance, tags={UPLOAD_RUN_TAG: key},
                                           raise_on_error=False)
    assert not failed.success
    _tick(defs, dagster_instance, UPLOAD_STATUS_SENSOR)
    ((status, reason, run_id),) = _rows(engine, "SELECT status, reason, run_id FROM uploads")
    assert (status, run_id) == ("failed", failed.run_id)
    assert "OSError: No space left on device" in reason and "[promote]" in reason

    with engine.begin() as conn:  # the reviewer uploads the same photo again: same row, tried again
        (row,) = conn.exec_driver_sql(load_queries("uploads.sql")["upload_upsert"], {
            "platform": "instagram", "username": "late.user", "sha256": sha, "blob_key": f"originals/ab/{sha}.jpg",
            "uploaded_by": "rita"}).all()
    assert not row.created
    assert _rows(engine, "SELECT id, status, reason, run_id FROM uploads") == [(row.id, "pending", None, None)]
