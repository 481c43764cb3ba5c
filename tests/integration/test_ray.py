"""images/embeddings on a real local 2-node Ray cluster (a head and a worker on this machine, CPU only).

The worker alone has the custom resource ``fake_gpu`` standing in for GPUs, so the model replicas
(actors asking for it) must land there while decode tasks run anywhere. Proves: the Ray path of
the asset gives the same rows as the in-process path; the resource request is honoured; a
replica killed mid-batch is survived (or the run fails cleanly and the re-run is identical).
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# No silent local Ray: a Ray call after shutdown (a Ray Data thread winding down) must not start one
# (read when ray is first imported, just below).
os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"

from resources.ray_cluster import RayEmbedding, load_registry_embedder, local_cluster, ray_available

pytestmark = pytest.mark.skipif(not ray_available(), reason="ray[data] is not installed (pip install -e '.[ray]')")

ROOT = Path(__file__).resolve().parents[2]
WORKER_RESOURCE = "fake_gpu"


@pytest.fixture(scope="module")
def cluster():
    """`ray start --head` + `ray start --address` (a worker with fake_gpu=2), each our own child,
    stopped by signalling it (resources/ray_cluster.local_cluster), never `ray stop`."""
    with local_cluster(head_cpus=2, workers=[{"num_cpus": 2, "resources": {WORKER_RESOURCE: 2}}],
                       pythonpath=str(ROOT)) as local:
        (worker,) = local.worker_node_ids
        yield {"address": local.address, "worker_node": worker}


@pytest.fixture(scope="module")
def model_fields(tmp_path_factory) -> dict:
    from tests.support.tiny_models import build_tiny_siglip

    weights = build_tiny_siglip(tmp_path_factory.mktemp("siglip"))
    return {"cache_dir": str(tmp_path_factory.mktemp("cache")), "device": "cpu",
            "backends": {"image_embedder": "siglip"}, "weights": {"image_embedder": str(weights)}, "batch_size": 4}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(7)
    paths = []
    for i in range(12):
        paths.append(root / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (40 + 3 * i, 48, 3), dtype=np.uint8)).save(paths[-1])
    (root / "broken.jpg").write_bytes(b"not an image")
    return [*paths[:5], root / "broken.jpg", *paths[5:]]


def _ray(cluster, **kwargs) -> RayEmbedding:
    return RayEmbedding(address=cluster["address"], actors=2, actor_resource=WORKER_RESOURCE, actor_cpus=0.5,
                        decode_cpus=0.5, batch_size=4, **kwargs)


def test_the_asset_gives_the_same_rows_on_ray_as_in_process(cluster, model_fields, images, tmp_path):
    import dagster as dg
    import pandas as pd

    from assets.tagging.assets import image_embeddings
    from assets.tagging.config import TaggingConfig
    from creatorlens.settings import REPO_ROOT
    from resources.blobstore import BlobStore
    from resources.models import ModelRegistry

    blobs = BlobStore(root=str(tmp_path / "blobs"))
    rows = [{"image_key": f"instagram:{i}", "platform": "instagram", "username": "alice", "status": "ok",
             "blob_key": blobs.put(path.read_bytes(), "originals", path.suffix.lstrip("."))}
            for i, path in enumerate(images)]
    models = ModelRegistry(**model_fields)
    taxonomy = str(REPO_ROOT / "taxonomy" / "default.yaml")

    def run(**ray_knobs) -> pd.DataFrame:
        out = image_embeddings(dg.build_asset_context(), creator_images=pd.DataFrame(rows), models=models,
                               blobs=blobs, tagging=TaggingConfig(taxonomy_path=taxonomy, **ray_knobs))
        return out.value.set_index("image_key").sort_index()

    local = run()
    on_ray = run(ray_address=cluster["address"], ray_actors=2, ray_actor_resource=WORKER_RESOURCE)
    assert list(on_ray.index) == list(local.index) and len(local) == len(images)
    meta = ["status", "error_reason", "model_version", "model_id", "backend", "dim"]
    pd.testing.assert_frame_equal(on_ray[meta], local[meta])
    assert (local["status"] == "failed").sum() == 1 and local.loc["instagram:5", "error_reason"] == "decode_error"
    assert on_ray.loc["instagram:5", "error"] == local.loc["instagram:5", "error"]
    ok = local.index[local["status"] == "ok"]
    np.testing.assert_allclose(np.stack(on_ray.loc[ok, "embedding"]), np.stack(local.loc[ok, "embedding"]),
                               atol=1e-5)


class _Slow:
    """The real embedder, slowed per batch so that its replica can be killed in the middle of one."""

    def __init__(self, fields: dict, marks: str, delay: float) -> None:
        self.embedder = load_registry_embedder(fields)
        self.marks, self.delay = Path(marks), delay

    def embed_images(self, arrays, batch_size=None):
        (self.marks / str(os.getpid())).touch()  # "a batch is in flight in this process"
        time.sleep(self.delay)
        return self.embedder.embed_images(arrays, batch_size=batch_size)


def _slow(fields: dict, marks: str, delay: float) -> _Slow:
    return _Slow(fields, marks, delay)


def test_a_replica_killed_mid_batch_is_survived_on_the_resource_node(cluster, model_fields, images, tmp_path):
    from gpu_ops.loader import decode_rgb

    paths = [str(p) for p in images]
    embedder = load_registry_embedder(model_fields)  # the in-process reference, in this process
    good = [p for p in paths if not p.endswith("broken.jpg")]
    expected = embedder.embed_images([decode_rgb(p, max_side=64) for p in good], batch_size=4)
    ray = RayEmbedding(address=cluster["address"], actors=1, actor_resource=WORKER_RESOURCE, actor_cpus=0.5,
                       decode_cpus=0.5, batch_size=4)

    def check(result) -> None:
        assert [e is None for e in result.errors] == [not p.endswith("broken.jpg") for p in paths]
        np.testing.assert_allclose(np.stack([v for v in result.vectors if v is not None]), expected, atol=1e-5)
        assert set(result.node_ids) == {cluster["worker_node"]}  # replicas ask for fake_gpu: only the worker has it

    marks = tmp_path / "marks"
    marks.mkdir()
    outcome: dict = {}

    def embed() -> None:
        try:
            outcome["result"] = ray.embed_paths(paths, functools.partial(_slow, model_fields, str(marks), 2.0), 64)
        except Exception as exc:  # a clean failure is allowed; a hang or a wrong answer is not
            outcome["error"] = exc

    thread = threading.Thread(target=embed)
    thread.start()
    deadline = time.monotonic() + 300  # a replica's start (torch, transformers) is slow on a loaded box
    while not list(marks.iterdir()) and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    victims = [int(p.name) for p in marks.iterdir()]
    assert victims, f"no replica started a batch: {outcome}"
    os.kill(victims[0], signal.SIGKILL)  # mid-batch: it is sleeping inside embed_images
    thread.join(300)
    assert not thread.is_alive(), "the run hung after a replica was killed"
    if "error" in outcome:  # failed cleanly with Ray's error: then the re-run must be right
        assert "ray" in type(outcome["error"]).__module__.lower(), repr(outcome["error"])
        check(ray.embed_paths(paths, functools.partial(load_registry_embedder, model_fields), 64))
    else:  # survived: the killed replica's batch was retried on a replacement
        check(outcome["result"])
        assert {int(p.name) for p in marks.iterdir()} - {victims[0]}, "no replacement replica ran a batch"
