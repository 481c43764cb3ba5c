"""Images never gate source data: a dump whose signed CDN URLs expired still promotes its creators and posts.

A real loopback server plays Instagram's CDN: a URL whose ``oe=`` (hex unix time) is past answers
403 "URL signature expired", a fresh one serves the image. The batch runs through
``materialize_batch`` on a real Dagster instance into the real warehouse.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlparse

import dagster as dg
import pytest

from assets.sources.sample_data import build_sample_data
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch
from tests.integration.test_resume import GOOD, _dump, _settings
from tests.support.http import LoopbackHandler, serve_handler

pytestmark = pytest.mark.e2e

PAST = format(int(time.time()) - 30 * 86400, "x")  # signed a month ago: long expired
FUTURE = format(int(time.time()) + 30 * 86400, "x")
CHECK_KEY = dg.AssetCheckKey(dg.AssetKey(["images", "creator_images"]), "creator_images_quality")


@pytest.fixture
def signed_cdn(tmp_path_factory):
    """(base URL, {path: bytes}, hits): 403 "URL signature expired" for a past ``oe=``, else the file
    (404 for an unknown path); ``/forbidden/...`` answers a plain 403 and ``/expired-body/...`` a 403
    whose body alone says the signature expired."""
    files: dict[str, bytes] = {}
    hits: list[str] = []

    class Handler(LoopbackHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            url = urlparse(self.path)
            oe = parse_qs(url.query).get("oe", [""])[0]
            if oe and int(oe, 16) < time.time():
                self.answer(403, b"URL signature expired", "text/plain")
            elif url.path.startswith("/forbidden/"):
                self.answer(403, b"<html>Forbidden</html>", "text/html")
            elif url.path.startswith("/expired-body/"):
                self.answer(403, b"Bad request: URL signature expired", "text/plain")
            elif url.path in files:
                self.answer(200, files[url.path], "image/jpeg")
            else:
                self.answer(404, b"<html>not found</html>", "text/html")

    sample = build_sample_data(tmp_path_factory.mktemp("sample"))
    for name in GOOD:
        files[f"/v/t51.2885-15/{name}"] = (sample.image_dir / name).read_bytes()
    with serve_handler(Handler) as base_url:
        yield base_url, hits


def _signed(base_url: str, name: str, oe: str, prefix: str = "v/t51.2885-15") -> str:
    return f"{base_url}/{prefix}/{name}?stp=dst-jpg_e35&_nc_ht=scontent.cdninstagram.com&oh=00_AfB{name[:3]}&oe={oe}"


def _run(tmp_path, database_url, dagster_instance, json_dir):
    settings = _settings(tmp_path, database_url, json_dir)
    discover_batches(settings, dagster_instance)
    return materialize_batch(build_definitions(settings).resolve_job_def(INGEST_JOB), dagster_instance, "batch-00001")


def _check_metadata(instance: dg.DagsterInstance) -> dict:
    record = instance.event_log_storage.get_asset_check_execution_history(CHECK_KEY, limit=1)[0]
    evaluation = record.event.dagster_event.event_specific_data
    return {"passed": evaluation.passed, **{k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}}


def test_batch_whose_every_image_url_expired_still_promotes_creators_and_posts(
    signed_cdn, tmp_path, tmp_path_factory, database_url, dagster_instance, engine
):
    base_url, hits = signed_cdn
    json_dir = tmp_path_factory.mktemp("json")
    _dump(json_dir, "old.dump", [_signed(base_url, name, PAST) for name in GOOD[:6]])
    _dump(json_dir, "older.dump", [_signed(base_url, name, PAST) for name in GOOD[6:10]])

    run = _run(tmp_path, database_url, dagster_instance, json_dir)

    assert run.success and run.promoted and not run.failed_checks, run
    with engine.connect() as conn:
        creators = conn.exec_driver_sql("SELECT username FROM creators ORDER BY 1").scalars().all()
        posts = dict(conn.exec_driver_sql("SELECT username, count(*) FROM posts GROUP BY 1").all())
        images = conn.exec_driver_sql(
            "SELECT username, status, error_reason, error, source_uri FROM images ORDER BY source_uri").all()
    assert creators == ["old.dump", "older.dump"]
    assert posts == {"old.dump": 6, "older.dump": 4}
    assert len(images) == 10
    assert {(status, reason) for _, status, reason, _, _ in images} == {("failed", "url_expired")}
    assert all("HTTP 403" in error and f"oe={PAST}" in error for *_, error, _ in images)
    assert sorted(uri for *_, uri in images) == sorted(
        [_signed(base_url, n, PAST) for n in GOOD[:10]])
    assert len([h for h in hits if "oe=" in h]) == 10  # one try each: an expired URL is not retried

    meta = _check_metadata(dagster_instance)
    assert meta["passed"] is True
    assert (meta["source_failures"], meta["processing_failures"], meta["failure_rate"]) == (10, 0, 0.0)
    assert meta["source_failures_by_reason"] == {"url_expired": 10}


def test_mixed_batch_records_each_reason_and_counts_only_processing_failures(
    signed_cdn, tmp_path, tmp_path_factory, database_url, dagster_instance, engine
):
    base_url, _ = signed_cdn
    json_dir = tmp_path_factory.mktemp("json")
    urls = [_signed(base_url, name, FUTURE) for name in GOOD[:4]]  # still valid: fetched and decoded
    urls += [_signed(base_url, name, PAST) for name in GOOD[4:8]]  # expired by oe=
    urls.append(f"{base_url}/expired-body/a.jpg")  # no oe=, but the 403 body says so
    urls.append(f"{base_url}/forbidden/b.jpg?oe={FUTURE}")  # a 403 that is not about expiry
    urls.append(f"{base_url}/v/t51.2885-15/gone.jpg")  # 404
    _dump(json_dir, "mixed.dump", urls)

    run = _run(tmp_path, database_url, dagster_instance, json_dir)

    assert run.success and run.promoted and not run.failed_checks, run
    with engine.connect() as conn:
        reasons = dict(conn.exec_driver_sql(
            "SELECT coalesce(error_reason, status), count(*) FROM images GROUP BY 1").all())
        n_posts = conn.exec_driver_sql("SELECT count(*) FROM posts").scalar_one()
        n_creators = conn.exec_driver_sql("SELECT count(*) FROM creators").scalar_one()
    assert reasons == {"ok": 4, "url_expired": 5, "http_error": 2}
    assert (n_posts, n_creators) == (11, 1)

    meta = _check_metadata(dagster_instance)
    assert (meta["source_failures"], meta["processing_failures"], meta["processed_images"]) == (7, 0, 4)
    assert meta["source_failures_by_reason"] == {"url_expired": 5, "http_error": 2}
