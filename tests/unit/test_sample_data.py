"""Tests for assets.sources.sample_data (generated offline into tmp_path)."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
import socket
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from assets.images.imaging import ImageError, ProcessedImage, process_image_bytes
from assets.images.pdq import hamming
from assets.sources.sample_data import CSV_HEADER, OFFLINE_PHOTOS, SampleManifest, build_sample_data

_HANDLE = re.compile(r"^[A-Za-z0-9._]{1,30}$")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleManifest:
    return build_sample_data(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def processed(sample: SampleManifest) -> dict[str, ProcessedImage]:
    return {
        path.name: process_image_bytes(path.read_bytes())
        for path in sorted(sample.image_dir.iterdir())
        if path.name not in sample.broken_image_files
    }


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _posts(sample: SampleManifest) -> list[tuple[str, str, str]]:
    """(username, post id, image reference) for every post in parseable JSON files."""
    out = []
    for path in sorted(sample.json_dirs[0].glob("*.json")):
        if path.name in sample.malformed_json_files:
            continue
        payload = json.loads(path.read_text(encoding="utf-8"))
        if "user" in payload["data"]:
            user = payload["data"]["user"]
            for edge in user["edge_owner_to_timeline_media"]["edges"]:
                node = edge["node"]
                out.append((user["username"], node["id"], node["display_url"]))
        else:
            username = re.search(r"\(([^)]+)\)", path.name).group(1)
            for item in payload["data"]["items"]:
                url = item["image_versions2"]["candidates"][0]["url"]
                out.append((username, item["id"], url))
    return out


def test_skimage_photos_load_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for name, loader in OFFLINE_PHOTOS.items():
        array = loader()
        assert isinstance(array, np.ndarray) and array.dtype == np.uint8, name
        assert min(array.shape[:2]) >= 100, name


def test_deterministic_and_idempotent(tmp_path: Path, sample: SampleManifest) -> None:
    second = build_sample_data(tmp_path / "again")
    assert _digests(sample.root) == _digests(second.root)
    before = {p: p.stat().st_mtime_ns for p in second.root.rglob("*") if p.is_file()}
    third = build_sample_data(second.root)
    after = {p: p.stat().st_mtime_ns for p in third.root.rglob("*") if p.is_file()}
    assert before == after  # nothing rewritten
    assert third.near_duplicate_groups == sample.near_duplicate_groups
    other_seed = build_sample_data(tmp_path / "seed8", seed=8)
    assert _digests(other_seed.root) != _digests(sample.root)


def test_layout(sample: SampleManifest) -> None:
    assert sample.image_dir == sample.root / "images"
    assert sample.csv_paths == [sample.root / "csv" / "creators.csv"]
    assert sample.json_dirs == [sample.root / "json"]
    names = {p.name for p in sample.image_dir.iterdir()}
    assert {p.suffix for p in sample.image_dir.iterdir()} <= {".jpg", ".png", ".gif"}
    assert set(sample.broken_image_files) <= names
    for group in sample.near_duplicate_groups + sample.exact_duplicate_groups:
        assert set(group) <= names
    assert sample.n_creators_expected == len(sample.usernames_expected) == 14


def test_broken_files_give_expected_reasons(sample: SampleManifest) -> None:
    assert set(sample.broken_image_files.values()) == {
        "truncated",
        "empty_file",
        "not_an_image",
        "decompression_bomb",
    }
    for name, reason in sample.broken_image_files.items():
        with pytest.raises(ImageError) as info:
            process_image_bytes((sample.image_dir / name).read_bytes())
        assert info.value.reason == reason, name
    bomb = sample.image_dir / "bomb.png"
    assert bomb.stat().st_size < 100_000


def test_special_images_decode(processed: dict[str, ProcessedImage]) -> None:
    assert processed["rocket_exif6.jpg"].exif_rotated
    assert (processed["rocket_exif6.jpg"].width, processed["rocket_exif6.jpg"].height) == (
        processed["rocket.jpg"].width,
        processed["rocket.jpg"].height,
    )
    assert processed["ihc_cmyk.jpg"].source_mode == "CMYK"
    assert processed["camera_16bit.png"].source_mode == "I;16"
    assert processed["coffee_anim.gif"].frames == 3
    assert processed["logo.png"].source_mode == "RGBA"
    assert processed["hubble_palette.png"].source_mode == "P"


def test_near_duplicate_groups_are_close(
    sample: SampleManifest, processed: dict[str, ProcessedImage]
) -> None:
    for group in sample.near_duplicate_groups:
        for a, b in itertools.combinations(group, 2):
            assert hamming(processed[a].pdq_hash, processed[b].pdq_hash) <= 31, (a, b)
    for a, b in sample.not_near_duplicate_pairs:
        assert hamming(processed[a].pdq_hash, processed[b].pdq_hash) > 31, (a, b)
    for group in sample.exact_duplicate_groups:
        assert len({processed[name].sha256 for name in group}) == 1
    grouped = {name for group in sample.near_duplicate_groups for name in group}
    for a, b in itertools.combinations(sorted(processed), 2):
        if a not in grouped or b not in grouped:
            continue
        same = any({a, b} <= set(g) for g in sample.near_duplicate_groups)
        assert (hamming(processed[a].pdq_hash, processed[b].pdq_hash) <= 31) == same, (a, b)


def test_csv(sample: SampleManifest) -> None:
    raw = sample.csv_paths[0].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == CSV_HEADER
    physical_lines = raw.count(b"\n")
    assert physical_lines > len(rows)
    body = rows[1:]
    assert len(body) == 15
    assert sum(len(r) != len(CSV_HEADER) for r in body) == 1
    full = [r for r in body if len(r) == len(CSV_HEADER)]
    assert sum(not _HANDLE.match(r[1]) for r in full) == 1
    assert sum(r[3] == "12abc" for r in full) == 1
    followers = {r[3] for r in full}
    assert {"1.2M", "350K", "12,345"} <= followers


def test_json_dumps(sample: SampleManifest) -> None:
    json_dir = sample.json_dirs[0]
    names = sorted(p.name for p in json_dir.iterdir())
    assert sum("(" not in n for n in names) == 1
    for name in sample.malformed_json_files:
        with pytest.raises(json.JSONDecodeError):
            json.loads((json_dir / name).read_text(encoding="utf-8"))
    posts = _posts(sample)
    per_creator: dict[str, set[str]] = defaultdict(set)
    images_by_creator: dict[str, set[str]] = defaultdict(set)
    for username, post_id, ref in posts:
        per_creator[username].add(post_id)
        assert ref.startswith("../images/")
        resolved = (json_dir / ref).resolve()
        assert resolved.exists() or resolved.name in sample.missing_image_refs
        images_by_creator[username].add(resolved.name)
    assert all(3 <= len(ids) <= 8 for ids in per_creator.values())
    all_ids = [post_id for _, post_id, _ in posts]
    assert len(all_ids) > len(set(all_ids)) == sample.n_posts_expected  # overlapping dumps
    referenced = set().union(*images_by_creator.values())
    assert set(sample.broken_image_files) <= referenced
    # the same near-duplicate family is posted by two different creators
    cross = [
        g
        for g in sample.near_duplicate_groups
        if sum(bool(images_by_creator[u] & set(g)) for u in images_by_creator) >= 2
    ]
    assert len(cross) >= 2
    csv_users = {r[1] for r in csv.reader(io.StringIO(sample.csv_paths[0].read_text("utf-8-sig")))}
    json_users = set(per_creator)
    assert json_users & csv_users and json_users - csv_users and csv_users - json_users
    assert json_users <= set(sample.usernames_expected)


def test_sixteen_bit_png_matches_eight_bit(sample: SampleManifest) -> None:
    wide = np.asarray(Image.open(sample.image_dir / "camera_16bit.png")).astype(np.int64)
    eight = np.asarray(Image.open(sample.image_dir / "camera.png")).astype(np.int64)
    assert wide.max() > 255 * 256  # genuinely 16-bit data
    assert np.array_equal(np.rint(wide / 257), eight)
