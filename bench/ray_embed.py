"""Image embedding in-process vs on a local 2-node Ray cluster, same cores, same model, same photos.

A randomly initialised SigLIP of realistic size (bench/embeddings.py's presets, built with the real
classes) embeds Instagram-sized JPEGs two ways, measured in the same run:

* in-process: what the ``images/embeddings`` step does without ``CREATORLENS_RAY_ADDRESS``: load the
  model (``ModelRegistry.load``), decode on threads (``gpu_ops.loader.image_batches``), embed;
* Ray: ``resources.ray_cluster.RayEmbedding.embed_paths`` on a head + one worker started here
  (``ray start --block`` children): decode as Ray tasks, one model replica (an actor asking for a
  custom resource that stands in for a GPU) built inside the actor, rows back in order.

Printed: each path at two batch counts, the ratio Ray / in-process, the per-run overhead (Ray's
time at the smaller size minus in-process's, model load included on both sides) and the
per-batch overhead (the difference of the two paths' slopes per extra batch).

    python bench/ray_embed.py                    # SigLIP base/16 @224, 16 and 32 photos, batch 8
    python bench/ray_embed.py --n 64 --batch 16
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")

from bench.embeddings import PRESETS, make_photos  # noqa: E402
from gpu_ops.loader import decode_rgb, image_batches  # noqa: E402
from resources.ray_cluster import RayEmbedding, load_registry_embedder, local_cluster  # noqa: E402
from tests.support.tiny_models import build_random_siglip  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def in_process(fields: dict, paths: list[Path], batch: int, max_side: int) -> float:
    """One cold step: a fresh model load (cache cleared) plus decode and embed."""
    from resources.models import MODEL_CACHE

    MODEL_CACHE.clear()
    start = time.perf_counter()
    embedder = load_registry_embedder(fields)
    n = 0
    for b in image_batches(paths, functools.partial(decode_rgb, max_side=max_side), batch, workers=2):
        if b.arrays:
            n += len(embedder.embed_images(b.arrays, batch_size=batch))
    assert n == len(paths)
    return time.perf_counter() - start


def on_ray(ray: RayEmbedding, fields: dict, paths: list[Path], max_side: int) -> float:
    start = time.perf_counter()
    result = ray.embed_paths([str(p) for p in paths], functools.partial(load_registry_embedder, fields), max_side)
    assert all(e is None for e in result.errors) and len(result.vectors) == len(paths)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="base")
    parser.add_argument("--n", type=int, default=16, help="photos in the smaller run (the larger has twice)")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        weights = build_random_siglip(tmp_path / "siglip", PRESETS[args.preset])
        fields = {"cache_dir": str(tmp_path / "cache"), "device": "cpu", "backends": {"image_embedder": "siglip"},
                  "weights": {"image_embedder": str(weights)}, "batch_size": args.batch}
        photos = make_photos(tmp_path / "photos", 2 * args.n)
        max_side = 2 * PRESETS[args.preset]["image_size"]  # as the asset decodes
        sizes = (args.n, 2 * args.n)

        local = {n: in_process(fields, photos[:n], args.batch, max_side) for n in sizes}
        t0 = time.perf_counter()
        # Same 2 cores: the head and the worker split them (1 logical CPU each).
        with local_cluster(head_cpus=1, workers=[{"num_cpus": 1, "resources": {"fake_gpu": 1}}],
                           pythonpath=str(ROOT)) as cluster:
            started = time.perf_counter() - t0
            ray = RayEmbedding(address=cluster.address, actors=1, actor_resource="fake_gpu", actor_cpus=1,
                               decode_cpus=1, batch_size=args.batch)
            remote = {n: on_ray(ray, fields, photos[:n], max_side) for n in sizes}
            local_again = {n: in_process(fields, photos[:n], args.batch, max_side) for n in sizes}

    local = {n: min(local[n], local_again[n]) for n in sizes}  # best of two: the cluster idles in between
    small, large = sizes
    batches = (large - small) / args.batch
    per_batch = ((remote[large] - remote[small]) - (local[large] - local[small])) / batches
    print(f"cpu_count={os.cpu_count()} loadavg={os.getloadavg()} preset={args.preset} batch={args.batch} "
          f"device=cpu cluster_start_s={started:.1f}")
    for n in sizes:
        print(f"n={n:4d}  in-process {local[n]:7.2f}s ({n / local[n]:5.2f} img/s)   "
              f"ray 2-node {remote[n]:7.2f}s ({n / remote[n]:5.2f} img/s)   ratio ray/in-process "
              f"{remote[n] / local[n]:.2f}")
    print(f"per-run overhead (ray - in-process at n={small}, model load on both sides): "
          f"{remote[small] - local[small]:+.2f}s")
    print(f"per-batch overhead (difference of slopes per extra batch of {args.batch}): {per_batch:+.3f}s")


if __name__ == "__main__":
    main()
