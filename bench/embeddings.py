"""Image embedding throughput, decode included: batched versus one image at a time, in the same run.

A randomly initialised SigLIP of realistic size is built with the real classes, saved and loaded
through the production loader (``gpu_ops.embeddings.SiglipEmbedder``); JPEG photos (1080×1350,
Instagram portrait size, made from scikit-image's bundled photos) are decoded on threads by
``gpu_ops.loader.image_batches`` exactly as the ``images/embeddings`` asset does. Random weights
cost the same FLOPs as trained ones.

    python bench/embeddings.py                          # CPU: SigLIP base/16 @224
    python bench/embeddings.py --preset so400m --n 1024 --batch 64    # GPU: SigLIP SO400M/14 @384, fp16
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._record import record  # noqa: E402
from gpu_ops.device import choose_device  # noqa: E402
from gpu_ops.embeddings import SiglipEmbedder  # noqa: E402
from gpu_ops.loader import decode_rgb, image_batches  # noqa: E402
from gpu_ops.registry import get_spec  # noqa: E402
from tests.support.tiny_models import build_random_siglip  # noqa: E402

PRESETS = {
    # google/siglip-base-patch16-224's vision tower
    "base": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
             "image_size": 224, "patch_size": 16},
    # google/siglip-so400m-patch14-384's vision tower (the production default)
    "so400m": {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
               "image_size": 384, "patch_size": 14},
}


def gflop_per_image(config: dict) -> float:
    """Forward FLOPs of a ViT vision tower from its config (patch embedding + attention + MLP), in GFLOP."""
    h, inter, p = config["hidden_size"], config["intermediate_size"], config["patch_size"]
    tokens = (config["image_size"] // p) ** 2
    per_layer = 2 * tokens * (4 * h * h + 2 * h * inter) + 4 * tokens * tokens * h
    return (2 * tokens * 3 * p * p * h + config["num_hidden_layers"] * per_layer) / 1e9


def make_photos(directory: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` distinct 1080×1350 JPEGs (crops, flips and tints of scikit-image's bundled photos)."""
    from skimage import data as skdata

    sources = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket(), skdata.immunohistochemistry()]
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        base = Image.fromarray(sources[i % len(sources)]).convert("RGB")
        w, h = base.size
        crop = base.crop((int(rng.integers(0, w // 5)), int(rng.integers(0, h // 5)), w, h))
        img = crop.resize((1080, 1350), Image.Resampling.BILINEAR)
        tint = (np.asarray(img, dtype=np.float32) * rng.uniform(0.7, 1.1, 3)).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(tint[:, ::-1] if i % 2 else tint)
        paths.append(directory / f"photo_{i:05d}.jpg")
        img.save(paths[-1], quality=90)
    return paths


def sync(embedder: SiglipEmbedder) -> None:
    if embedder.device.kind == "cuda":
        import torch

        torch.cuda.synchronize()


def pipeline(embedder: SiglipEmbedder, paths: list[Path], batch_size: int, workers: int, max_side: int) -> float:
    """Seconds to decode and embed ``paths`` in batches of ``batch_size`` (images/embeddings asset path)."""
    sync(embedder)
    started = time.perf_counter()
    n = 0
    for batch in image_batches(paths, lambda p: decode_rgb(p, max_side=max_side), batch_size, workers=workers):
        if batch.failures:
            raise RuntimeError(f"decode failed: {batch.failures[0]}")
        n += len(embedder.embed_images(batch.arrays, batch_size=batch_size))
    sync(embedder)
    assert n == len(paths)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="base")
    ap.add_argument("--n", type=int, default=48, help="images per measured pass")
    ap.add_argument("--batch", default="16", help="batched runs' batch sizes, comma-separated (baseline: 1)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="decode threads")
    ap.add_argument("--record", action="store_true",
                    help="write bench/results/<name>.json for bench/figures.py (the README's figures table)")
    args = ap.parse_args()

    device = choose_device(args.device)
    root = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    t = time.perf_counter()
    paths = make_photos(root / "photos", args.n)
    weights = build_random_siglip(root / f"siglip-{args.preset}", PRESETS[args.preset],
                                  {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1})
    embedder = SiglipEmbedder(get_spec("image_embedder", "siglip"), weights, device).load()
    max_side = 2 * (embedder.input_size or 224)
    print(f"{args.preset}: vision tower {PRESETS[args.preset]['num_hidden_layers']} layers × "
          f"{PRESETS[args.preset]['hidden_size']} @ {embedder.input_size}px, {embedder.dim}-d, on {device} "
          f"({'fp16' if device.fp16 else 'fp32'}); {args.n} JPEGs 1080×1350; {args.workers} decode threads "
          f"(setup {time.perf_counter() - t:.0f}s)")

    batches = [int(b) for b in args.batch.split(",")]
    for bs in (1, *batches):  # warm-up: kernels and allocator for every shape
        pipeline(embedder, paths[:max(bs, 4)], bs, args.workers, max_side)
    rows = []
    pipeline_rate, embed_rate = {}, {}
    for bs in (1, *batches):
        seconds = pipeline(embedder, paths, bs, args.workers, max_side)
        rows.append((f"decode + embed, batch {bs}", args.n / seconds))
        pipeline_rate[bs] = rows[-1][1]
    arrays = [decode_rgb(p, max_side=max_side) for p in paths]
    for bs in batches:
        sync(embedder)
        t = time.perf_counter()
        embedder.embed_images(arrays, batch_size=bs)
        sync(embedder)
        rows.append((f"embed only (pre-decoded), batch {bs}", args.n / (time.perf_counter() - t)))
        embed_rate[bs] = rows[-1][1]
    t = time.perf_counter()
    for _ in image_batches(paths, lambda p: decode_rgb(p, max_side=max_side), batches[-1], workers=args.workers):
        pass
    rows.append((f"decode only, {args.workers} threads", args.n / (time.perf_counter() - t)))
    decode_rate = rows[-1][1]

    baseline = rows[0][1]
    print(f"\n{'pass':<40} {'img/s':>9} {'vs batch 1':>11}")
    for name, rate in rows:
        print(f"{name:<40} {rate:>9.1f} {rate / baseline:>10.2f}×")
    if args.record:
        config = PRESETS[args.preset]
        gflop = gflop_per_image(config)
        benchmark = (f"image embeddings, SigLIP-{args.preset}/{config['patch_size']} @{config['image_size']} "
                     f"random weights, {device.kind.upper()} {'fp16' if device.fp16 else 'fp32'}, "
                     f"{args.n} JPEGs 1080×1350")
        record("embeddings", [(
            benchmark,
            f"batch {bs}: {pipeline_rate[bs]:.1f} img/s decode included (embed alone {embed_rate[bs]:.1f} img/s, "
            f"≈ {embed_rate[bs] * gflop:,.0f} GFLOP/s at {gflop:,.0f} GFLOP per image)",
            f"batch 1: {baseline:.1f} img/s, so batching is {pipeline_rate[bs] / baseline:.2f}× faster; decoding "
            f"alone runs at {decode_rate:,.0f} img/s on {args.workers} thread{'s' if args.workers != 1 else ''}, so "
            f"{'the model' if decode_rate > pipeline_rate[bs] else 'decoding'} is the bottleneck",
        ) for bs in batches])


if __name__ == "__main__":
    main()
