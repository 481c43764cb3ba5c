"""Exact (sha256) and near (PDQ Hamming distance) duplicate detection.

Input frames carry the columns ``image_key``, ``sha256``, ``pdq_hash`` (64 hex chars)
and ``pdq_quality`` (and optionally ``pdq_dihedral``: the 7 transformed hashes of a new image).
Output frames have one row per unordered pair with columns ``image_key_a < image_key_b``,
``distance``, ``kind`` ("exact" or "near") and ``transform`` (see ``TRANSFORMS``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "PAIR_COLUMNS",
    "exact_duplicate_pairs",
    "hamming",
    "hex_to_bits",
    "near_duplicate_pairs",
]

PAIR_COLUMNS = ["image_key_a", "image_key_b", "distance", "kind", "transform"]
#: What ``pdqhash.compute_dihedral``'s hashes 1..7 are the hash of (index 0 is the image itself,
#: transform ``"none"``); rotations counter-clockwise, as numpy's ``rot90``. Measured on a photo:
#: the hash of the transformed file is within 14-16 bits of the matching dihedral hash.
DIHEDRAL_TRANSFORMS = ("rotate_90", "rotate_180", "rotate_270", "flip_vertical", "flip_horizontal",
                       "transpose", "transverse")
TRANSFORMS = ("none", *DIHEDRAL_TRANSFORMS)
HASH_HEX_CHARS = 64
WORDS = 4  # 256 bits as four uint64 words
# Elements (rows x columns) compared per block: ~11 bytes each of scratch memory.
_BLOCK_ELEMENTS = 8_000_000


def hex_to_bits(hashes: Sequence[str]) -> np.ndarray:
    """Pack 64-hex-char PDQ hashes into an ``(n, 4)`` uint64 array."""
    hashes = list(hashes)
    for h in hashes:
        if not isinstance(h, str) or len(h) != HASH_HEX_CHARS:
            raise ValueError(f"expected a {HASH_HEX_CHARS}-char hex string, got {h!r}")
    raw = bytes.fromhex("".join(hashes))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(len(hashes), WORDS)


def hamming(a_hex: str, b_hex: str) -> int:
    """Hamming distance between two 256-bit hex hashes."""
    a, b = hex_to_bits([a_hex, b_hex])
    return int(np.bitwise_count(a ^ b).sum())


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_key_a": pd.Series(dtype=object),
            "image_key_b": pd.Series(dtype=object),
            "distance": pd.Series(dtype=np.int64),
            "kind": pd.Series(dtype=object),
            "transform": pd.Series(dtype=object),
        }
    )


def _require(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"missing columns {missing}; got {list(frame.columns)}")
    return frame.reset_index(drop=True)


def _finish(a: np.ndarray, b: np.ndarray, distance: np.ndarray, kind: str,
            transform: np.ndarray | None = None) -> pd.DataFrame:
    """Canonicalise key order, drop self-pairs and repeats (keeping the closest match of a pair,
    the untransformed one on a tie: it comes first), sort."""
    a = a.astype(str).astype(object)
    b = b.astype(str).astype(object)
    swap = a > b
    lo = np.where(swap, b, a)
    hi = np.where(swap, a, b)
    out = pd.DataFrame(
        {
            "image_key_a": lo,
            "image_key_b": hi,
            "distance": distance.astype(np.int64),
            "kind": kind,
            "transform": transform.astype(object) if transform is not None else "none",
        }
    )
    out = out[out["image_key_a"] != out["image_key_b"]]
    out = out.sort_values(["image_key_a", "image_key_b", "distance"], kind="stable")
    out = out.drop_duplicates(["image_key_a", "image_key_b"], keep="first")
    return out.reset_index(drop=True) if len(out) else _empty_pairs()


def exact_duplicate_pairs(
    new: pd.DataFrame, existing: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Pairs with identical sha256 within ``new`` and between ``new`` and ``existing``."""
    cols = ["image_key", "sha256"]
    new = _require(new, cols)[cols].dropna()
    parts = [new.assign(_new=True)]
    if existing is not None:
        parts.append(_require(existing, cols)[cols].dropna().assign(_new=False))
    both = pd.concat(parts, ignore_index=True)
    both = both[both["sha256"].duplicated(keep=False)]
    if both.empty:
        return _empty_pairs()
    both = both.reset_index(names="_i")
    # Join only new rows against everything: cost is |new group| x |group|, never old x old.
    joined = both[both["_new"]].merge(both, on="sha256", suffixes=("_l", "_r"))
    joined = joined[~joined["_new_r"] | (joined["_i_l"] < joined["_i_r"])]
    return _finish(
        joined["image_key_l"].to_numpy(),
        joined["image_key_r"].to_numpy(),
        np.zeros(len(joined), dtype=np.int64),
        "exact",
    )


def _hashable(frame: pd.DataFrame, min_quality: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys and packed hashes of rows that may take part in near matching."""
    has_hash = frame["pdq_hash"].fillna("").astype(str) != ""
    ok = has_hash & (pd.to_numeric(frame["pdq_quality"], errors="coerce") >= min_quality)
    kept = frame[ok]
    return kept["image_key"].astype(str).to_numpy(), hex_to_bits(kept["pdq_hash"].tolist())


def _dihedral_variants(frame: pd.DataFrame, min_quality: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per transform in ``DIHEDRAL_TRANSFORMS``: (keys, packed hashes) of the rows whose
    ``pdq_dihedral`` holds all 7 transformed hashes; empty when the frame has no such column."""
    if "pdq_dihedral" not in frame.columns:
        return []
    quality = pd.to_numeric(frame["pdq_quality"], errors="coerce") >= min_quality
    rows = [(str(key), list(hashes)) for key, hashes, ok in zip(frame["image_key"], frame["pdq_dihedral"], quality,
                                                                 strict=True)
            if ok and hashes is not None and not isinstance(hashes, float) and len(hashes) == len(DIHEDRAL_TRANSFORMS)]
    if not rows:
        return []
    keys = np.array([key for key, _ in rows], dtype=object)
    return [(keys, hex_to_bits([hashes[k] for _, hashes in rows])) for k in range(len(DIHEDRAL_TRANSFORMS))]


def _close_pairs(
    queries: np.ndarray, targets: np.ndarray, max_distance: int, *, upper_only: bool
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (query_idx, target_idx, distance) with distance <= max_distance, blockwise.

    With ``upper_only`` the two arrays are the same set and only ``j > i`` is kept.
    """
    n, m = len(queries), len(targets)
    if n == 0 or m == 0:
        return
    step = max(1, _BLOCK_ELEMENTS // m)
    xor = np.empty((step, m), dtype=np.uint64)
    bits = np.empty((step, m), dtype=np.uint8)
    dist = np.empty((step, m), dtype=np.uint16)
    for start in range(0, n, step):
        stop = min(n, start + step)
        rows = stop - start
        x, c, d = xor[:rows], bits[:rows], dist[:rows]
        d.fill(0)
        for w in range(WORDS):
            np.bitwise_xor(queries[start:stop, w, None], targets[None, :, w], out=x)
            np.bitwise_count(x, out=c)
            np.add(d, c, out=d)
        hit = d <= max_distance
        if upper_only:
            hit &= np.arange(m)[None, :] > np.arange(start, stop)[:, None]
        qi, ti = np.nonzero(hit)
        if len(qi):
            yield qi + start, ti, d[qi, ti]


def near_duplicate_pairs(
    new: pd.DataFrame,
    existing: pd.DataFrame | None = None,
    *,
    max_distance: int = 31,
    min_quality: int = 50,
) -> pd.DataFrame:
    """Exact and near-duplicate pairs within ``new`` and between ``new`` and ``existing``.

    Exact (same sha256) pairs are reported once with ``kind="exact"`` and distance 0,
    never repeated as "near". Near pairs need both sides' PDQ quality >= ``min_quality``.
    When ``new`` has a ``pdq_dihedral`` column (:func:`assets.images.imaging.pdq_dihedral`), a new
    image whose rotated or flipped hash is close to another image's is a near pair too, with that
    ``transform`` (``"none"`` for an untransformed match, which wins a tie).
    """
    cols = ["image_key", "sha256", "pdq_hash", "pdq_quality"]
    new = _require(new, cols)
    existing = _require(existing, cols) if existing is not None else None
    exact = exact_duplicate_pairs(new, existing)

    new_keys, new_bits = _hashable(new, min_quality)
    old_keys, old_bits = _hashable(existing, min_quality) if existing is not None else (new_keys[:0], new_bits[:0])
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray, str]] = []
    for qi, ti, d in _close_pairs(new_bits, new_bits, max_distance, upper_only=True):
        chunks.append((new_keys[qi], new_keys[ti], d, "none"))
    for qi, ti, d in _close_pairs(new_bits, old_bits, max_distance, upper_only=False):
        chunks.append((new_keys[qi], old_keys[ti], d, "none"))
    # Mirrored and rotated reposts: each new image's 7 transformed hashes against every original
    # (the new ones and the existing ones). One side's transforms suffice: the dihedral group holds
    # each transform's inverse, so a flipped copy of an old photo is found from either side.
    for k, (variant_keys, variant_bits) in enumerate(_dihedral_variants(new, min_quality)):
        transform = DIHEDRAL_TRANSFORMS[k]
        for qi, ti, d in _close_pairs(variant_bits, new_bits, max_distance, upper_only=False):
            chunks.append((variant_keys[qi], new_keys[ti], d, transform))
        for qi, ti, d in _close_pairs(variant_bits, old_bits, max_distance, upper_only=False):
            chunks.append((variant_keys[qi], old_keys[ti], d, transform))
    if not chunks:
        return exact
    near = _finish(
        np.concatenate([c[0] for c in chunks]),
        np.concatenate([c[1] for c in chunks]),
        np.concatenate([c[2] for c in chunks]),
        "near",
        np.concatenate([np.full(len(c[0]), c[3], dtype=object) for c in chunks]),
    )
    if not exact.empty:
        exact_keys = pd.MultiIndex.from_frame(exact[["image_key_a", "image_key_b"]])
        near_keys = pd.MultiIndex.from_frame(near[["image_key_a", "image_key_b"]])
        near = near[~near_keys.isin(exact_keys)]
    if near.empty:
        return exact
    if exact.empty:
        return near
    out = pd.concat([exact, near], ignore_index=True)
    return out.sort_values(["image_key_a", "image_key_b"], kind="stable").reset_index(drop=True)
