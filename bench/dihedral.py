"""Cost of finding mirrored and rotated reposts: near-duplicate comparison with the 7 dihedral
hashes of each new image vs the plain comparison (the baseline), in the same run.

    python bench/dihedral.py [--new 2000] [--existing 100000] [--repeats 3]

Random 256-bit hashes (the comparison's cost does not depend on the content); the hashing itself
costs nothing extra (``pdqhash.compute_dihedral`` derives all 8 hashes from one DCT), measured
here on a real photo too.
"""

from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np
import pandas as pd
from PIL import Image
from skimage import data as skdata

from assets.images.imaging import pdq, pdq_dihedral
from assets.images.pdq import near_duplicate_pairs


def _frame(rng: np.random.Generator, n: int, prefix: str, dihedral: bool) -> pd.DataFrame:
    def hexes(k: int) -> list[str]:
        return [bytes(row).hex() for row in rng.integers(0, 256, size=(k, 32), dtype=np.uint8)]

    frame = pd.DataFrame({"image_key": [f"{prefix}{i}" for i in range(n)], "sha256": [f"{prefix}{i}" for i in range(n)],
                          "pdq_hash": hexes(n), "pdq_quality": 100})
    if dihedral:
        variants = [hexes(n) for _ in range(7)]
        frame["pdq_dihedral"] = [[v[i] for v in variants] for i in range(n)]
    return frame


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new", type=int, default=2000, help="new images in the batch")
    parser.add_argument("--existing", type=int, default=100_000, help="images already in the warehouse")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    new = _frame(rng, args.new, "n", dihedral=True)
    existing = _frame(rng, args.existing, "e", dihedral=False)

    plain = _best(lambda: near_duplicate_pairs(new.drop(columns="pdq_dihedral"), existing), args.repeats)
    with_dihedral = _best(lambda: near_duplicate_pairs(new, existing), args.repeats)

    photo = Image.open(io.BytesIO(_jpeg(Image.fromarray(skdata.astronaut())))).convert("RGB")
    hash_plain = _best(lambda: pdq(photo), 10)
    hash_dihedral = _best(lambda: pdq_dihedral(photo), 10)

    print(f"cores: {os.cpu_count()}  load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"comparison, {args.new:,} new x ({args.new:,} new + {args.existing:,} existing) hashes:")
    print(f"  plain (baseline)      {plain * 1000:9.1f} ms   {args.new / plain:10,.0f} new images/s")
    print(f"  + 7 dihedral hashes   {with_dihedral * 1000:9.1f} ms   {args.new / with_dihedral:10,.0f} new images/s"
          f"   ratio {with_dihedral / plain:.2f}x the baseline's time")
    print("hashing one 512x512 photo:")
    print(f"  pdq (baseline)        {hash_plain * 1000:9.1f} ms")
    print(f"  pdq_dihedral (8)      {hash_dihedral * 1000:9.1f} ms   ratio {hash_dihedral / hash_plain:.2f}x")


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


if __name__ == "__main__":
    main()
