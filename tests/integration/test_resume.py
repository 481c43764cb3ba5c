"""Images fetched over real HTTP on 127.0.0.1, and a run killed mid-batch that resumes cleanly.

The killed run is a real `creatorlens run` subprocess, SIGKILLed while it downloads images
from a deliberately slow local server; the re-run must lose and duplicate nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from assets.sources.sample_data import build_sample_data
from creatorlens.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch, prepare_dagster_home
from tests.support.http import Route, serve_cdn

pytestmark = pytest.mark.e2e

GOOD = ["astronaut.jpg", "coffee.jpg", "chelsea.jpg", "rocket.jpg", "moon.jpg", "brick.jpg",
        "grass.jpg", "gravel.jpg", "clock.jpg", "hubble.jpg", "ihc.jpg", "astronaut_crop98.jpg"]


def _dump(json_dir: Path, username: str, urls: list[str]) -> None:
    edges = [
        {"node": {"id": f"{9000 + i}{len(username)}", "shortcode": f"sc{i}", "display_url": url, "is_video": False,
                  "taken_at_timestamp": 1714560000 + i, "edge_liked_by": {"count": 100 - i},
                  "edge_media_to_comment": {"count": 1}, "edge_media_to_caption": {"edges": []}}}
        for i, url in enumerate(urls)
    ]
    doc = {"data": {"user": {"username": username, "full_name": username.title(), "biography": "cdn test",
                             "category_name": "Test", "edge_followed_by": {"count": 10},
                             "is_business_account": False, "is_verified": False,
                             "edge_owner_to_timeline_media": {"count": len(edges), "edges": edges}}}}
    (json_dir / f"web_profile_info({username})_1.json").write_text(json.dumps(doc))


@pytest.fixture
def cdn_sources(tmp_path_factory):
    """A JSON dump whose images live on a local HTTP server (good, 404, HTML and slow images)."""
    sample = build_sample_data(tmp_path_factory.mktemp("sample"))
    json_dir = tmp_path_factory.mktemp("json")
    with serve_cdn() as cdn:
        yield cdn, sample, json_dir


def _settings(tmp_path: Path, database_url: str, json_dir: Path, **kw) -> Settings:
    return Settings(state_dir=tmp_path / "state", database_url=database_url, csv_dir=tmp_path / "no-csv",
                    json_dir=json_dir, top_n_images=20, **kw)


def test_images_fetched_over_http_with_errors_recorded(cdn_sources, tmp_path, database_url, dagster_instance, engine):
    cdn, sample, json_dir = cdn_sources
    urls = [cdn.add_file(f"img/{name}", sample.image_dir / name) for name in GOOD[:8]]
    urls.append(cdn.url("img/missing.jpg"))  # 404
    cdn.routes["/page.jpg"] = Route(200, b"<html>login</html>", "text/html")
    urls.append(cdn.url("page.jpg"))  # an HTML page where an image should be
    _dump(json_dir, "cdn.user", urls)

    settings = _settings(tmp_path, database_url, json_dir)
    discover_batches(settings, dagster_instance)
    run = materialize_batch(build_definitions(settings).resolve_job_def(INGEST_JOB), dagster_instance, "batch-00001")
    assert run.promoted, run
    with engine.connect() as conn:
        rows = dict(conn.exec_driver_sql("SELECT coalesce(error_reason, status), count(*) FROM images GROUP BY 1").all())
    assert rows == {"ok": 8, "http_error": 1, "bad_content_type": 1}
    assert len([h for h in cdn.hits if h.startswith("/img/")]) == 9


def _cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATORLENS_")}
    env.update({
        "CREATORLENS_STATE_DIR": str(settings.state_dir),
        "DATABASE_URL": settings.database_url or "",
        "CREATORLENS_CSV_DIR": str(settings.csv_dir),
        "CREATORLENS_JSON_DIR": str(settings.json_dir),
        "CREATORLENS_TOP_N_IMAGES": str(settings.top_n_images),
        "CREATORLENS_IMAGE_WORKERS": "1",
        "DAGSTER_HOME": str(prepare_dagster_home(settings)),
    })
    return env


def _snapshot(engine: sa.Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return {
            "images": conn.exec_driver_sql("SELECT image_key, status, sha256 FROM images ORDER BY 1").all(),
            "posts": conn.exec_driver_sql("SELECT count(*) FROM posts").scalar_one(),
            "creators": conn.exec_driver_sql("SELECT count(*) FROM creators").scalar_one(),
            "pairs": conn.exec_driver_sql("SELECT image_key_a, image_key_b FROM image_duplicates ORDER BY 1, 2").all(),
        }


def test_killed_run_resumes_without_loss_or_duplicates(cdn_sources, tmp_path, database_url, engine):
    cdn, sample, json_dir = cdn_sources
    urls = [cdn.add_file(f"slow/{name}", sample.image_dir / name, delay_s=0.4) for name in GOOD]
    _dump(json_dir, "slow.user", urls)
    settings = _settings(tmp_path, database_url, json_dir)
    env = _cli_env(settings)
    cli = [sys.executable, "-m", "orchestration.cli"]
    subprocess.run([*cli, "batch"], env=env, check=True, capture_output=True, timeout=120)

    proc = subprocess.Popen([*cli, "run", "--partition", "batch-00001"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    thumbs = settings.blob_root / "thumbnails"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(thumbs.rglob("*.jpg"))) < 3:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-download: some blobs stored, nothing promoted
    proc.wait(timeout=30)
    stored_before = len(list(thumbs.rglob("*.jpg")))
    assert 3 <= stored_before < len(GOOD)
    assert _snapshot(engine)["images"] == []  # the warehouse saw nothing of the killed run

    for _ in range(2):  # resume, then once more: identical
        done = subprocess.run([*cli, "run", "--partition", "batch-00001"], env=env, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stdout.decode()[-3000:] + done.stderr.decode()[-3000:]
        snap = _snapshot(engine)
        assert [s for _, s, _ in snap["images"]] == ["ok"] * len(GOOD)
        assert len({sha for *_, sha in snap["images"]}) == len(GOOD)
        assert snap["posts"] == len(GOOD) and snap["creators"] == 1
    assert len(list(thumbs.rglob("*.jpg"))) == len(GOOD)  # blobs are content-addressed: no copies
