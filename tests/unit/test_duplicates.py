"""Tests for assets.images.pdq (exact and PDQ near-duplicate pairs)."""

from __future__ import annotations

import io
import itertools
import random

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps
from skimage import data as skdata

from assets.images import pdq as duplicates
from assets.images.imaging import pdq, process_image_bytes
from assets.images.pdq import PAIR_COLUMNS, exact_duplicate_pairs, hamming, hex_to_bits, near_duplicate_pairs


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _hash(image: Image.Image, quality: int = 90) -> str:
    return process_image_bytes(_jpeg(image, quality)).pdq_hash


def _frame(rows: list[tuple[str, str, str | None, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["image_key", "sha256", "pdq_hash", "pdq_quality"])


def _flip_bits(hex_hash: str, n: int, rng: random.Random) -> str:
    value = int(hex_hash, 16)
    for bit in rng.sample(range(256), n):
        value ^= 1 << bit
    return f"{value:064x}"


# --------------------------------------------------------------------------- primitives


def test_hex_to_bits_and_hamming() -> None:
    zero, ones = "0" * 64, "f" * 64
    bits = hex_to_bits([zero, ones, "8" + "0" * 63])
    assert bits.shape == (3, 4) and bits.dtype == np.uint64
    assert bits[1].tolist() == [2**64 - 1] * 4
    assert bits[2, 0] == 2**63 and bits[2, 1:].tolist() == [0, 0, 0]
    assert hamming(zero, ones) == 256
    assert hamming(zero, "0" * 63 + "1") == 1
    assert hamming("a" * 64, "a" * 64) == 0
    with pytest.raises(ValueError):
        hex_to_bits(["abc"])
    with pytest.raises(ValueError):
        hex_to_bits(["z" * 64])


def test_variants_are_near_and_other_photos_far() -> None:
    photo = Image.fromarray(skdata.astronaut())
    original = _hash(photo)
    w, h = photo.size
    crop = photo.crop((5, 5, w - 5, h - 5))  # ~98% crop
    resized = photo.resize((w * 6 // 10, h * 6 // 10), Image.Resampling.LANCZOS)
    for variant in (_hash(crop), _hash(resized), _hash(photo, quality=15)):
        assert hamming(original, variant) <= 31
    assert hamming(original, _hash(Image.fromarray(skdata.coffee()))) > 60
    assert hamming(original, _hash(ImageOps.mirror(photo))) > 60


# --------------------------------------------------------------------------- pairs


def test_near_pairs_within_new() -> None:
    photo = Image.fromarray(skdata.chelsea())
    hashes = {
        "cat": _hash(photo),
        "cat_small": _hash(photo.resize((225, 150))),
        "coffee": _hash(Image.fromarray(skdata.coffee())),
    }
    new = _frame([(k, f"sha-{k}", h, 100) for k, h in hashes.items()])
    out = near_duplicate_pairs(new)
    assert list(out.columns) == PAIR_COLUMNS
    assert out[["image_key_a", "image_key_b", "kind"]].values.tolist() == [
        ["cat", "cat_small", "near"]
    ]
    assert out["distance"].iloc[0] == hamming(hashes["cat"], hashes["cat_small"])
    assert out["distance"].dtype == np.int64


def test_quality_filter_excludes_flat_images() -> None:
    flat_hash, flat_quality = pdq(Image.new("RGB", (100, 100), (120, 120, 120)))
    assert flat_quality < 50
    new = _frame(
        [
            ("flat1", "s1", flat_hash, flat_quality),
            ("flat2", "s2", flat_hash, flat_quality),
            ("nohash", "s3", None, 100),
            ("nohash2", "s4", "", 100),
        ]
    )
    assert near_duplicate_pairs(new).empty
    assert len(near_duplicate_pairs(new, min_quality=0)) == 1


def test_exact_duplicates_reported_once_as_exact() -> None:
    h = "0f" * 32
    new = _frame(
        [
            ("b", "same", h, 100),
            ("a", "same", h, 100),
            ("c", "same", _flip_bits(h, 3, random.Random(1)), 100),
            ("low", "same", h, 10),  # exact duplicates ignore PDQ quality
        ]
    )
    out = near_duplicate_pairs(new)
    records = out[["image_key_a", "image_key_b", "distance", "kind"]].values.tolist()
    assert set(out["transform"]) == {"none"}
    assert records == [
        ["a", "b", 0, "exact"],
        ["a", "c", 0, "exact"],
        ["a", "low", 0, "exact"],
        ["b", "c", 0, "exact"],
        ["b", "low", 0, "exact"],
        ["c", "low", 0, "exact"],
    ]
    assert exact_duplicate_pairs(new).equals(out)


def test_pairs_are_canonical_and_unique() -> None:
    rng = random.Random(3)
    base = f"{rng.getrandbits(256):064x}"
    keys = ["z", "m", "a", "q"]
    new = _frame([(k, f"s{k}", _flip_bits(base, i, rng), 90) for i, k in enumerate(keys)])
    out = near_duplicate_pairs(new, new.iloc[:2])  # overlap with "existing" as a re-run
    assert (out["image_key_a"] < out["image_key_b"]).all()
    assert not out.duplicated(["image_key_a", "image_key_b"]).any()
    assert len(out) == 6
    assert out[["image_key_a", "image_key_b"]].values.tolist() == sorted(
        out[["image_key_a", "image_key_b"]].values.tolist()
    )


def test_new_against_existing() -> None:
    rng = random.Random(5)
    base = f"{rng.getrandbits(256):064x}"
    other = f"{rng.getrandbits(256):064x}"
    existing = _frame(
        [
            ("old1", "o1", _flip_bits(base, 10, rng), 100),
            ("old2", "o2", _flip_bits(base, 12, rng), 100),  # old1~old2 must NOT be reported
            ("old3", "dup", other, 100),
        ]
    )
    new = _frame([("new1", "n1", base, 100), ("new2", "dup", _flip_bits(other, 40, rng), 100)])
    out = near_duplicate_pairs(new, existing)
    assert out[["image_key_a", "image_key_b", "kind"]].values.tolist() == [
        ["new1", "old1", "near"],
        ["new1", "old2", "near"],
        ["new2", "old3", "exact"],
    ]
    assert out["distance"].tolist() == [10, 12, 0]


def test_empty_inputs() -> None:
    empty = _frame([])
    out = near_duplicate_pairs(empty, empty)
    assert out.empty and list(out.columns) == PAIR_COLUMNS
    with pytest.raises(ValueError, match="missing columns"):
        near_duplicate_pairs(pd.DataFrame({"image_key": ["a"]}))


def _brute_force(new: pd.DataFrame, existing: pd.DataFrame, max_d: int, min_q: int) -> set:
    pairs: dict[tuple[str, str], tuple[int, str]] = {}
    rows_new = list(new.itertuples(index=False))
    rows_old = list(existing.itertuples(index=False))
    candidates = list(itertools.combinations(rows_new, 2))
    candidates += [(a, b) for a in rows_new for b in rows_old]
    for a, b in candidates:
        if a.image_key == b.image_key:
            continue
        key = tuple(sorted((a.image_key, b.image_key)))
        if a.sha256 == b.sha256:
            pairs[key] = (0, "exact")
        elif a.pdq_quality >= min_q and b.pdq_quality >= min_q and key not in pairs:
            d = bin(int(a.pdq_hash, 16) ^ int(b.pdq_hash, 16)).count("1")
            if d <= max_d:
                pairs[key] = (d, "near")
    return {(a, b, d, k) for (a, b), (d, k) in pairs.items()}


@pytest.mark.parametrize("block_elements", [7, 1_000, 8_000_000])
def test_vectorised_equals_brute_force(
    monkeypatch: pytest.MonkeyPatch, block_elements: int
) -> None:
    monkeypatch.setattr(duplicates, "_BLOCK_ELEMENTS", block_elements)
    rng = random.Random(11)
    bases = [f"{rng.getrandbits(256):064x}" for _ in range(25)]
    rows = []
    for i in range(200):
        h = _flip_bits(rng.choice(bases), rng.randrange(0, 45), rng)
        sha = f"sha{rng.randrange(190)}"  # a few byte-identical collisions
        rows.append((f"img{i:03d}", sha, h, rng.choice([20, 49, 50, 80, 100])))
    frame = _frame(rows)
    new, existing = frame.iloc[:120], frame.iloc[120:]
    out = near_duplicate_pairs(new, existing, max_distance=31, min_quality=50)
    got = set(out[["image_key_a", "image_key_b", "distance", "kind"]].itertuples(index=False, name=None))
    assert set(out["transform"]) == {"none"}  # no dihedral hashes given: untransformed matches only
    expected = _brute_force(new, existing, 31, 50)
    assert got == expected
    assert len(expected) > 50 and any(k == "exact" for *_, k in expected)
    assert len(out) == len(got)


# --------------------------------------------------------------------------- mirrored and rotated reposts


def _processed(key: str, image: Image.Image) -> dict:
    result = process_image_bytes(_jpeg(image))
    return {"image_key": key, "sha256": result.sha256, "pdq_hash": result.pdq_hash,
            "pdq_quality": result.pdq_quality, "pdq_dihedral": list(result.pdq_dihedral)}


def test_dihedral_hashes_cost_nothing_extra_and_start_with_the_plain_hash() -> None:
    photo = Image.fromarray(skdata.astronaut())
    result = process_image_bytes(_jpeg(photo))
    assert len(result.pdq_dihedral) == len(duplicates.DIHEDRAL_TRANSFORMS) == 7
    assert result.pdq_hash == pdq(Image.open(io.BytesIO(_jpeg(photo))).convert("RGB"))[0]
    assert len(set(result.pdq_dihedral) | {result.pdq_hash}) == 8


@pytest.mark.parametrize(("transform", "make"), [
    ("flip_horizontal", ImageOps.mirror),
    ("flip_vertical", ImageOps.flip),
    ("rotate_90", lambda im: im.transpose(Image.Transpose.ROTATE_90)),  # PIL: counter-clockwise, as rot90
    ("rotate_180", lambda im: im.transpose(Image.Transpose.ROTATE_180)),
])
def test_a_mirrored_or_rotated_repost_is_a_near_pair_with_its_transform(transform, make) -> None:
    photo = Image.fromarray(skdata.astronaut())
    old = pd.DataFrame([_processed("old:original", photo), _processed("old:other", Image.fromarray(skdata.coffee()))])
    new = pd.DataFrame([_processed("new:repost", make(photo))])
    # Without the dihedral hashes the repost is far from its original (the plain comparison misses it).
    assert near_duplicate_pairs(new.drop(columns="pdq_dihedral"), old).empty
    pairs = near_duplicate_pairs(new, old)
    assert pairs[["image_key_a", "image_key_b", "kind"]].values.tolist() == [["new:repost", "old:original", "near"]]
    [row] = pairs.itertuples()
    assert row.distance <= 31
    # The transform of the newer image that matched; flips are their own inverse, rotations pair up.
    inverse = {"rotate_90": "rotate_270", "rotate_270": "rotate_90"}
    assert row.transform == inverse.get(transform, transform)


def test_an_untransformed_match_wins_and_the_repost_is_found_within_the_batch_too() -> None:
    photo = Image.fromarray(skdata.chelsea())
    w, h = photo.size
    new = pd.DataFrame([_processed("a", photo), _processed("b", photo.resize((w // 2, h // 2))),
                        _processed("c", ImageOps.mirror(photo))])
    pairs = {(r.image_key_a, r.image_key_b): r.transform for r in near_duplicate_pairs(new).itertuples()}
    assert pairs[("a", "b")] == "none"
    assert pairs[("a", "c")] == pairs[("b", "c")] == "flip_horizontal"
