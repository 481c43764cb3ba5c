"""Real-world CSV exports and Instagram JSON shapes (issue 13): every physical row or file ends as
a creator/post or a recorded reject with its reason, counted per fixture.

CSV inputs are written byte for byte in each test (encodings and delimiters matter); JSON
fixtures live in tests/fixtures/sources/ with the public source of their shape cited inside.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from assets.sources.parsing import (
    Reject,
    decode_csv_bytes,
    load_sources,
    parse_header_map,
    read_csv_export,
    read_csv_file,
    sniff_delimiter,
)
from creatorlens.fields import parse_count
from creatorlens.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("3.4M", 3_400_000), ("12,345", 12345), ("1.2K", 1200), ("12.345", 12345), ("1.234.567", 1234567),
     ("1,2M", 1_200_000), ("\u2014", None), ("\u2013", None), ("12 345", 12345)],
)
def test_parse_count_export_formats(raw, expected) -> None:
    assert parse_count(raw) == expected


@pytest.mark.parametrize("raw", ["1.2.3", "1,23", "1,2", "12abc", "12.345.6"])
def test_parse_count_still_refuses_garbage(raw) -> None:
    with pytest.raises(ValueError):
        parse_count(raw)


# --------------------------------------------------------------------------- CSV


def test_csv_unmappable_file_is_a_file_reject_not_an_exception(tmp_path: Path) -> None:
    no_user = write(tmp_path / "nouser.csv", b"Rank,Name,Followers\n1,Jane,10\n2,Bob,20\n")
    empty = write(tmp_path / "empty.csv", b"\n\n")
    binary = write(tmp_path / "binary.csv", b"\x00\x01\x02PK\x03\x04\x00\x00garbage\xff\x00")
    for path, reason in [(no_user, "no username column; headers: ['Rank', 'Name', 'Followers']"),
                         (empty, "no username column; headers: []; the file has no header row"),
                         (binary, "undecodable: binary content")]:
        read = read_csv_file(path)
        assert read.records == []
        assert len(read.rejects) == 1
        assert read.rejects[0].record == path.name and read.rejects[0].reason.startswith(reason)
    # The strict reader keeps raising for the same files.
    with pytest.raises(ValueError, match="binary content"):
        read_csv_export(binary)


def test_drop_folder_with_a_broken_csv_loads_the_rest(tmp_path: Path) -> None:
    good = write(tmp_path / "a_good.csv", b"username,followers\njane,10\nbob,20\n")
    bad = write(tmp_path / "b_bad.csv", b"Rank,Name\n1,nobody\n")
    good2 = write(tmp_path / "c_good.csv", b"handle;followers\nzoe;3\n")
    snap = load_sources([good, bad, good2])
    assert list(snap.creators) == ["jane", "bob", "zoe"]
    assert [(r.source, r.record) for r in snap.rejects] == [(str(bad), "b_bad.csv")]
    assert load_sources([good, bad, good2]) == snap  # re-reading gives the same snapshot


def test_semicolon_export_with_windows_1252(tmp_path: Path) -> None:
    text = "Instagram name;Followers count;Category;Audience country\n@José.M;12.345;Música;España\nana_b;1,2M;Arte;México\n"
    path = write(tmp_path / "semi.csv", text.encode("cp1252"))
    read = read_csv_file(path)
    assert (read.encoding, read.delimiter) == ("windows-1252", ";")
    # "@José.M" is not a valid Instagram username (non-ASCII): a row reject with its reason.
    assert read.rejects == [Reject(str(path), "line 2", "invalid username '@José.M'")]
    assert [(r.username, r.followers, r.category, r.country) for r in read.records] == [
        ("ana_b", 1_200_000, "Arte", "México")]
    messages = [w.message for w in read.warnings]
    assert "not UTF-8: decoded as windows-1252" in messages and "delimiter: semicolon" in messages
    assert any(m.startswith("no column for full_name") for m in messages)
    assert any(m.startswith("no column for bio") for m in messages)


@pytest.mark.parametrize(
    ("encoding", "prefix", "expected"),
    [("utf-8", b"", "utf-8"), ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"), ("utf-16", b"", "utf-16"),
     ("utf-16-le", b"", "utf-16-le"), ("cp1252", b"", "windows-1252")],
)
def test_encodings_detected_and_recorded(tmp_path: Path, encoding, prefix, expected) -> None:
    text = "username\tfull name\tfollowers\nrenée_x\tRenée Dupré\t1.2K\nbob\tBob\t—\n"
    path = write(tmp_path / "enc.tsv.csv", prefix + text.encode(encoding))
    read = read_csv_file(path)
    assert read.encoding == expected and read.delimiter == "\t"
    assert read.rejects[0] == Reject(str(path), "line 2", "invalid username 'renée_x'")
    assert [(r.username, r.full_name, r.followers) for r in read.records] == [("bob", "Bob", None)]
    fallback = [w for w in read.warnings if w.message.startswith("not UTF-8")]
    assert len(fallback) == (0 if expected.startswith("utf-8") else 1)


def test_decode_keeps_mostly_utf8_files_as_utf8() -> None:
    text, encoding = decode_csv_bytes("zoë\n".encode() + b"jos\xe9\n")
    assert encoding == "utf-8" and text.startswith("zoë")


def test_starngage_like_header_variants_and_unparseable_value_kept(tmp_path: Path) -> None:
    text = (
        '"Channel_Info","Full\nName","follower_count","Subscribers","Subscribers","Genre","Details"\n'  # 1-2
        "1,2,3,4,5,6,7\n"  # 3: "1" is a valid username
        "https://www.instagram.com/Some.One/,Some One,3.4M,9,9,Travel,Hi\n"  # 4
        "carol,Carol,lots,1,1,Food,\n"  # 5: followers unparseable -> kept, empty, warning
        ",Nobody,1,1,1,,\n"  # 6: missing username
    )
    path = write(tmp_path / "starngage.csv", text.encode())
    read = read_csv_file(path)
    assert read.columns == {"username": "Channel_Info", "full_name": "Full\nName", "followers": "follower_count",
                            "category": "Genre", "bio": "Details"}
    assert [(r.username, r.full_name, r.followers) for r in read.records] == [
        ("1", "2", 3), ("some.one", "Some One", 3_400_000), ("carol", "Carol", None)]
    assert read.rejects == [Reject(str(path), "line 6", "missing username")]
    messages = {(w.record, w.message) for w in read.warnings}
    assert ("line 5", "unparseable followers 'lots': creator kept with followers empty") in messages
    assert any(r == "line 1" and m.startswith("duplicate column 'Subscribers' at columns [4, 5]") for r, m in messages)
    assert any(m.startswith("no column for country") for _, m in messages)
    # Every physical record is accounted for: 3 data rows kept + 1 reject = 4 data records.
    assert len(read.records) + len(read.rejects) == 4
    # The strict reader still refuses the row with unparseable followers.
    strict_records, strict_rejects = read_csv_export(path)
    assert [r.username for r in strict_records] == ["1", "some.one"]
    assert strict_rejects[0] == Reject(str(path), "line 5", "unparseable followers 'lots'")


def test_duplicate_subscribers_columns_first_wins(tmp_path: Path) -> None:
    path = write(tmp_path / "dup.csv", b"handle,Subscribers,Subscribers\njane,100,999\n")
    read = read_csv_file(path)
    assert read.records[0].followers == 100
    dup = [w for w in read.warnings if w.message.startswith("duplicate column")]
    assert dup and "(2, used for followers) wins" in dup[0].message


def test_header_map_setting(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CREATORLENS_CSV_HEADER_MAP", '{"username": ["IG Handle"], "followers": "Audience"}')
    settings = Settings()
    mapping = parse_header_map(settings.csv_header_map)
    assert mapping == {"username": ("IG Handle",), "followers": ("Audience",)}
    path = write(tmp_path / "custom.csv", b"IG Handle,Audience\njane,1.5K\n")
    snap = load_sources([path], header_map=settings.csv_header_map)
    assert snap.creators["jane"].followers == 1500 and snap.rejects == []
    assert load_sources([path]).rejects[0].reason.startswith("no username column")
    with pytest.raises(ValueError, match="unknown field"):
        parse_header_map('{"handle": "x"}')
    with pytest.raises(ValueError, match="JSON object"):
        parse_header_map("[1]")
    assert parse_header_map(None) is None and parse_header_map("  ") is None


def test_sniff_delimiter_prefers_most_cells() -> None:
    assert sniff_delimiter("a,b;c\n") == ","
    assert sniff_delimiter("a;b;c\n1,5;2;3\n") == ";"
    assert sniff_delimiter("a\tb\n") == "\t"
    assert sniff_delimiter('"x;y",b\n') == ","
    assert sniff_delimiter("") == ","
