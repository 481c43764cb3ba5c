"""Hostile input and outages (issue 14): upload bombs and oversized bodies, a database that is down,
blob names the file system refuses, and the stats page's per-batch counts."""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib

import psutil
import psycopg
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import text

from app.main import create_app
from tests.app.conftest import bearer, login
from tests.support.live import serve_app


def _png_bomb(side: int = 12_000) -> bytes:
    """A valid grayscale PNG of side × side zero pixels (~144 MB decoded from ~150 KB), built row by row."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0 + zero pixels
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_an_upload_bomb_is_refused_from_its_header(web_app, tokens) -> None:
    """Defect 3: a 12,000 × 12,000 PNG was decoded whole (GBs of RSS). The pipeline's pixel cap now
    applies before decoding: 413 within a second, and the server's memory barely moves."""
    bomb = _png_bomb()
    assert len(bomb) < 1_000_000
    me = psutil.Process()
    peak = [me.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            time.sleep(0.01)

    client = TestClient(web_app, headers=bearer(tokens["viewer"]))
    before = me.memory_info().rss
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        response = client.post("/api/search/image", files={"file": ("bomb.png", bomb, "image/png")})
    finally:
        stop.set()
        sampler.join(5)
    elapsed = time.monotonic() - started
    assert response.status_code == 413 and "pixels" in response.json()["detail"], response.text
    assert elapsed < 1.0
    assert peak[0] - before < 300 * 1024 * 1024


def test_too_many_photos_in_one_upload_are_refused_as_the_schema_says(web_app, tokens) -> None:
    """Schemathesis (stateful phase) found the upload schema allowing any number of photos while the
    handler answered 413 over 20: the document now says maxItems 20 and a 21st photo is a 422."""
    client = TestClient(web_app, headers=bearer(tokens["reviewer"]))
    path = "/api/creators/{platform}/{username}/uploads"
    body = client.get("/openapi.json").json()["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    assert client.get("/openapi.json").json()["components"]["schemas"][ref]["properties"]["file"]["maxItems"] == 20
    files = [("file", (f"p{i}.png", b"not read", "image/png")) for i in range(21)]
    response = client.post("/api/creators/instagram/nobody/uploads", files=files)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["ctx"] == {"field_type": "List", "max_length": 20, "actual_length": 21}


def test_an_oversized_body_is_refused_before_it_is_read(web_app, tokens) -> None:
    """Defect 3: a 50 MB upload was read whole before the 413. Now the declared length is enough."""
    with serve_app(web_app) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall((
                "POST /api/search/image HTTP/1.1\r\n"
                f"Host: {host}\r\nAuthorization: Bearer {tokens['viewer']}\r\n"
                "Content-Type: multipart/form-data; boundary=xyz\r\n"
                f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
            ).encode() + b"--xyz\r\n" + b"x" * 1024)  # the rest never comes
            answer = sock.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer


def test_a_database_outage_answers_503_with_retry_after_and_the_app_recovers(web_app, tokens, app_engine,
                                                                            filled_warehouse) -> None:
    """Defect 7: a database that is down gave plain-text 500s. Now JSON 503 with Retry-After."""
    down = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", pool_pre_ping=True)
    app = create_app(down, filled_warehouse.settings.blob_root)
    client = TestClient(app, headers=bearer(tokens["viewer"]), raise_server_exceptions=False)
    for path in ("/api/me", "/api/search?q=beach&mode=keyword", "/"):
        response = client.get(path)
        assert response.status_code == 503, (path, response.text)
        assert response.headers["retry-after"].isdigit() and "unavailable" in response.json()["detail"]
    down.dispose()

    # The real app, its pooled connections killed under it (a database restart): the next request works.
    live = TestClient(web_app, headers=bearer(tokens["viewer"]))
    assert live.get("/api/me").status_code == 200
    database = app_engine.url.database
    admin = app_engine.url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                     (database,))
    assert live.get("/api/me").status_code == 200
    assert live.get("/api/search", params={"q": "beach", "mode": "keyword"}).status_code == 200


def test_a_blob_name_too_long_for_the_file_system_is_a_404(web_app) -> None:
    """Defect 7: a path segment over 255 bytes raised ENAMETOOLONG (a 500)."""
    client = TestClient(web_app, raise_server_exceptions=False)
    login(client, "vic")
    assert client.get("/blobs/" + "a" * 300).status_code == 404
    assert client.get("/blobs/thumbs/" + "b" * 256 + "/x.jpg").status_code == 404


def test_stats_count_each_creator_once_however_often_its_batch_was_promoted(web_app, tokens, app_engine) -> None:
    """Defect 11: creators per batch were multiplied by the batch's promotions (count over a LEFT JOIN)."""
    with app_engine.begin() as conn:
        expected = dict(conn.execute(text("SELECT batch_key, count(*) FROM creator_batches GROUP BY batch_key")).all())
        conn.execute(text(
            "INSERT INTO promotions (batch_key, run_id, code_version, counts) "
            "SELECT batch_key, 'again-' || n, 'test', '{}'::jsonb FROM (SELECT DISTINCT batch_key FROM creator_batches) b, "
            "generate_series(1, 2) n"))
        promotions = conn.execute(text("SELECT count(*) FROM promotions")).scalar_one()
    assert promotions >= 3 * len(expected)
    stats = TestClient(web_app, headers=bearer(tokens["viewer"])).get("/api/stats").json()
    assert {b["batch_key"]: b["creators"] for b in stats["batches"]} == expected
