"""Cost of VLM escalation per image, against the loopback OpenAI-compatible vision server.

One batch of synthetic JPEGs (``--images``, 640x480), each with two queued tags in two categories (two
questions per image), in a fresh embedded PostgreSQL. In the same run it measures:

* baseline: the batch's tagging promotion (embeddings, tags, review queue, creator tags, history), the
  work every image costs without escalation;
* escalation, cold: every question sent (image re-encoded as a data URL, HTTP to 127.0.0.1, answer parsed,
  ``vlm`` rows and outcomes written); the server answers at once unless ``--latency-ms`` says otherwise,
  so this is the pipeline's own overhead, not a model's inference time;
* escalation, warm: the re-run, every answer from the warehouse cache;
* the data-URL encoding alone.

    python bench/escalation.py --images 200
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from PIL import Image
from psycopg import sql as pgsql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assets.common.promotion import promote  # noqa: E402
from assets.tagging.escalation import escalate  # noqa: E402
from assets.tagging.scoring import TAG_COLUMNS, creator_tag_rows  # noqa: E402
from assets.tagging.store import promote_tags  # noqa: E402
from assets.tagging.taxonomy import parse_taxonomy  # noqa: E402
from resources.blobstore import BlobStore  # noqa: E402
from resources.vlm import VisionChat, image_data_url  # noqa: E402
from resources.warehouse import apply_migrations, dispose_engines, embedded_server, get_engine  # noqa: E402
from tests.support.vlm_server import FakeVlm, serve_vlm  # noqa: E402

BATCH = "batch-bench"
VERSION = "bench-model@1"
TAXONOMY = parse_taxonomy({
    "name": "bench", "defaults": {"templates": ["a photo of {}."], "threshold": 0.5},
    "categories": {"topic": {"tags": {"food": ["food"], "travel": ["travel"], "fitness": ["fitness"]}},
                   "shot": {"exclusive": True, "tags": {"selfie": ["a selfie"], "group": ["a group photo"]}}},
})


def jpeg(rng: np.random.Generator) -> bytes:
    x = np.linspace(0, 255, 640, dtype=np.float32)
    base = (np.outer(np.linspace(0.2, 1, 480), x)[..., None] * rng.uniform(0.3, 1, 3)).astype(np.uint8)
    y0, x0 = rng.integers(0, 380), rng.integers(0, 540)
    base[y0:y0 + 100, x0:x0 + 100] = rng.integers(0, 255, 3)
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def frames(n: int, blobs: BlobStore) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    images = []
    for i in range(n):
        data = jpeg(rng)
        sha = hashlib.sha256(data).hexdigest()
        images.append({"image_key": f"instagram:b{i}", "platform": "instagram", "post_id": f"b{i}",
                       "username": f"user{i // 10}", "rank": i % 10 + 1, "engagement": i, "status": "ok",
                       "sha256": sha, "pdq_hash": f"{i:064x}", "pdq_quality": 90, "processed_at": now,
                       "blob_key": blobs.put(data, "originals", "jpg", sha)})
    users = sorted({r["username"] for r in images})
    ingest = {"creators": pd.DataFrame([{"platform": "instagram", "username": u, "sources": ["b.csv"]} for u in users]),
              "posts": pd.DataFrame([{"platform": "instagram", "post_id": f"b{i}", "username": f"user{i // 10}",
                                      "likes": i, "comments": 0, "media_url": f"/b/{i}.jpg", "is_video": False}
                                     for i in range(n)]),
              "images": pd.DataFrame(images),
              "duplicates": pd.DataFrame(columns=["image_key_a", "image_key_b", "distance", "kind"])}
    vectors = rng.normal(size=(n, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    embeddings = pd.DataFrame({
        "image_key": [r["image_key"] for r in images], "platform": "instagram",
        "username": [r["username"] for r in images], "status": "ok", "error_reason": None, "error": None,
        "model_version": VERSION, "model_id": "bench", "backend": "siglip", "scoring": "sigmoid", "dim": 64,
        "embedding": list(vectors)})
    rows = []
    for r in images:
        base = {"image_key": r["image_key"], "platform": "instagram", "username": r["username"], "threshold": 0.5,
                "threshold_source": "taxonomy", "review_floor": 0.25, "model_version": VERSION,
                "taxonomy_version": TAXONOMY.version}
        rows += [{**base, "tag": "food", "category": "topic", "exclusive": False, "confidence": 0.9, "assigned": True,
                  "review_reason": None},
                 {**base, "tag": "travel", "category": "topic", "exclusive": False,
                  "confidence": float(rng.uniform(0.3, 0.5)), "assigned": False, "review_reason": "low_confidence"},
                 {**base, "tag": "selfie", "category": "shot", "exclusive": True,
                  "confidence": float(rng.uniform(0.3, 0.5)), "assigned": False, "review_reason": "low_confidence"}]
    return ingest, embeddings, pd.DataFrame(rows, columns=list(TAG_COLUMNS))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, default=0.0, help="simulated model latency per answer")
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="creatorlens-bench-esc-"))
    server = None
    if args.database_url:
        url = args.database_url.replace("+psycopg", "")
    else:
        server = embedded_server(tmp / "pgdata")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute(pgsql.SQL("CREATE DATABASE bench_escalation"))
        url = server.get_uri(database="bench_escalation")
    try:
        run(args, url, tmp)
    finally:
        dispose_engines()
        if server is not None:  # an embedded server left running would outlive the benchmark
            server.cleanup()


def run(args: argparse.Namespace, url: str, tmp: Path) -> None:
    apply_migrations(get_engine(url))
    blobs = BlobStore(root=str(tmp / "blobs"))
    ingest, embeddings, tags = frames(args.images, blobs)
    n = args.images
    with psycopg.connect(url) as conn:
        promote(conn, BATCH, **ingest, run_id="ingest", code_version="bench")
        started = time.perf_counter()
        promote_tags(conn, BATCH, taxonomy=TAXONOMY, embeddings=embeddings, image_tags=tags,
                     creator_tags=creator_tag_rows(tags, embeddings), run_id="bench")
        baseline = time.perf_counter() - started

        started = time.perf_counter()
        for key in ingest["images"]["blob_key"]:
            image_data_url(blobs.get(key))
        encode = time.perf_counter() - started

        with serve_vlm(FakeVlm(delay_s=args.latency_ms / 1000)) as vlm:
            chat = VisionChat(vlm.base_url, "bench-vlm", rate_limit="100000/second")
            started = time.perf_counter()
            cold = escalate(conn, BATCH, chat=chat, taxonomy=TAXONOMY, read_blob=blobs.get, max_calls=10 * n,
                            run_id="cold")
            cold_s = time.perf_counter() - started
            started = time.perf_counter()
            warm = escalate(conn, BATCH, chat=chat, taxonomy=TAXONOMY, read_blob=blobs.get, max_calls=10 * n,
                            run_id="warm")
            warm_s = time.perf_counter() - started
            assert len(vlm.requests) == cold.calls and warm.calls == 0, "the re-run must be served by the cache"
            chat.close()

    ms = lambda s: 1000 * s / n  # noqa: E731 - per image
    print(f"images: {n} (640x480 JPEG), questions per image: 2, simulated model latency: {args.latency_ms} ms")
    print(f"cpu_count: {os.cpu_count()}  loadavg: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"baseline (tagging promotion, no escalation): {ms(baseline):7.2f} ms/image")
    print(f"escalation cold: {ms(cold_s):7.2f} ms/image, {cold.calls / cold_s:7.1f} calls/s, outcomes "
          f"{dict(cold.outcomes)}, p50 HTTP latency {sorted(cold.latencies_ms)[len(cold.latencies_ms) // 2]:.2f} ms")
    print(f"  of which data-URL encoding: {ms(encode):7.2f} ms/image")
    print(f"escalation warm (cache): {ms(warm_s):7.2f} ms/image, {warm.cache_hits} cache hits, 0 calls")
    print(f"ratio cold/baseline: {cold_s / baseline:.2f}x  warm/baseline: {warm_s / baseline:.2f}x")


if __name__ == "__main__":
    main()
