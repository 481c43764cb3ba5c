"""Real-world CSV exports and Instagram JSON shapes (issue 13): every physical row or file ends as
a creator/post or a recorded reject with its reason, counted per fixture.

CSV inputs are written byte for byte in each test (encodings and delimiters matter); JSON
fixtures live in tests/fixtures/sources/ with the public source of their shape cited inside.
"""

from __future__ import annotations

import json
import lzma
import shutil
from pathlib import Path

import pytest

from assets.sources.parsing import (
    KNOWN_SHAPES,
    Reject,
    decode_csv_bytes,
    load_sources,
    normalise_documents,
    parse_header_map,
    read_csv_export,
    read_csv_file,
    read_json_dumps,
    read_stored_responses,
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


# --------------------------------------------------------------------------- JSON shapes

JSON_DIR = FIXTURES / "json"
INSTALOADER_DIR = FIXTURES / "instaloader"


def load_fixture(path: Path) -> dict:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        data = lzma.decompress(data)
    return json.loads(data)


# Post entries of each fixture, counted by hand from its JSON, and how many of them are refused.
EXPECTED = {
    "profile_page(instagram)_entry_data.json": (("entry_data", "ProfilePage", 0, "graphql", "user",
                                                 "edge_owner_to_timeline_media", "edges"), 2, 0),
    "posts(bbcnews)_xdt_timeline.json": (("data", "xdt_api__v1__feed__user_timeline_graphql_connection", "edges"), 1, 0),
    "post(instagram)_shortcode_media_sidecar.json": (("data", "shortcode_media"), 1, 0),
    "post_DFp17y5MymE_graphql_video.json": (("graphql", "shortcode_media"), 1, 0),
    "posts(mikewilliams)_data_items.json": (("data", "items"), 3, 0),
    "timeline_feed_items.json": (("feed_items",), 4, 1),  # the suggested_users entry is refused
    "instagram_25025320.json.xz": (None, 0, 0),  # an instaloader Profile: no posts
    "2020-04-17_21-14-20_UTC.json": (("node",), 1, 0),  # an instaloader Post
}


def entries(doc: dict, path: tuple | None) -> int:
    """How many posts sit at ``path``: a list's length, one for a single post object, none for None."""
    if path is None:
        return 0
    for key in path:
        doc = doc[key]
    return len(doc) if isinstance(doc, list) else 1


def by_file(records, attr: str = "source") -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        name = Path(getattr(record, attr)).name
        counts[name] = counts.get(name, 0) + 1
    return counts


@pytest.mark.parametrize("folder", [JSON_DIR, INSTALOADER_DIR])
def test_every_fixture_entry_is_a_post_or_a_reject(folder: Path) -> None:
    creators, posts, rejects = read_json_dumps(folder)
    post_counts, reject_counts = by_file(posts), by_file(rejects)
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".json", ".json.xz")))
    assert files
    for path in files:
        doc = load_fixture(path)
        assert doc["//"]  # every fixture names its public source
        where, total, refused = EXPECTED[path.name]
        assert entries(doc, where) == total, path.name
        assert (post_counts.get(path.name, 0), reject_counts.get(path.name, 0)) == (total - refused, refused), path.name
    assert all(c.sources for c in creators)


def test_fixture_shapes_and_fields() -> None:
    read = read_json_dumps(JSON_DIR)
    creators = {c.username: c for c in read[0]}
    posts = {(p.username, p.shortcode): p for p in read[1]}
    # entry_data.ProfilePage[0].graphql.user: profile fields
    ig = creators["instagram"]
    assert (ig.followers, ig.following, ig.post_count, ig.external_url, ig.is_private, ig.is_business, ig.is_verified) == (
        344415438, 222, 6309, "http://www.facebook.com/covidsupport", False, False, True)
    assert posts[("instagram", "B_GL_qPgo2B")].comments == 21335
    # data.shortcode_media sidecar: every child is an image of the post, in order; parent-comment count
    sidecar = posts[("instagram", "CA_ifcxMjFR")]
    assert [(i.position, i.is_video) for i in sidecar.images] == [(1, False), (2, False), (3, True)]
    assert all(i.url for i in sidecar.images) and sidecar.images[2].video_url
    assert sidecar.comments == 53282 and sidecar.media_url
    # data.xdt_api__v1__feed__user_timeline_graphql_connection: a carousel_media post
    bbc = posts[("bbcnews", "DHtWpRvMBiw")]
    assert (bbc.likes, bbc.comments, len(bbc.images)) == (4564, 47, 3)
    assert bbc.media_url == bbc.images[0].url
    # graphql.shortcode_media video without a user in the file name: its owner decides
    video = posts[("ones_makau", "DFp17y5MymE")]
    assert (video.is_video, video.video_duration, video.view_count, video.play_count, video.comments) == (
        True, 12.633, 539, 2387, 31)
    assert video.video_url.startswith("https://") and video.media_url.startswith("https://")  # cover image kept
    assert creators["ones_makau"].followers == 7448
    # data.items with data.user: the collab item goes to its owner, recorded
    assert creators["mikewilliams"].is_verified is True
    assert ("raveculture", "C-c0WJWM2a6") in posts and ("mikewilliams", "C-c0WJWM2a6") not in posts
    assert any(w.record == "record 3" and "credited to its owner 'raveculture'" in w.message for w in read.warnings)
    reel = posts[("mikewilliams", "Cgb-UsrA37l")]
    assert (reel.is_video, reel.video_duration, reel.play_count) == (True, 14.806, 90189)
    # feed_items[].media_or_ad: several owners in one home timeline; the non-media entry is a reject
    assert {("manchesterunited", "Cjjh-3mqZSk"), ("mango_man", "CjGDhHUjNJy"), ("manchesterunited", "Cji5EVwNDcC")} <= set(posts)
    assert [(r.record, r.reason) for r in read[2]] == [("record 4", "feed item without media (keys: suggested_users)")]


def test_instaloader_output_profile_xz_and_post_documents() -> None:
    creators, posts, rejects = read_json_dumps(INSTALOADER_DIR)
    assert rejects == []
    (creator,) = creators
    assert (creator.username, creator.followers, creator.following, creator.external_url) == (
        "instagram", 344415438, 222, "http://www.facebook.com/covidsupport")
    assert sorted(Path(s).name for s in creator.sources) == ["2020-04-17_21-14-20_UTC.json", "instagram_25025320.json.xz"]
    assert [(p.username, p.shortcode) for p in posts] == [("instagram", "B_GL_qPgo2B")]


def test_unknown_shape_names_the_known_shapes(tmp_path: Path) -> None:
    (tmp_path / "odd(jane).json").write_text('{"hello": "world"}')
    read = read_json_dumps(tmp_path)
    assert read[2] == [Reject(str(tmp_path / "odd(jane).json"), "odd(jane).json", "unrecognised document shape")]
    (warning,) = read.warnings
    assert warning.record == "odd(jane).json" and warning.message.startswith("known shapes: ")
    for shape in KNOWN_SHAPES:
        assert shape in warning.message
    assert any("xdt_api__v1__feed__user_timeline_graphql_connection" in s for s in KNOWN_SHAPES)


def test_wrappers_data_data_items_and_media_or_ad() -> None:
    # The private-API items of the mikewilliams fixture, wrapped the way API gateways answer
    # ({"data": {"data": {"items": ...}}}) and as media_or_ad / media entries of a list.
    items = load_fixture(JSON_DIR / "posts(mikewilliams)_data_items.json")["data"]["items"]
    docs = [
        ("a(mikewilliams).json", {"data": {"data": {"items": items[:1]}}}),
        ("b(mikewilliams).json", {"items": [{"media_or_ad": items[1]}, {"media": items[2]}]}),
    ]
    result = normalise_documents("mikewilliams", docs)
    creator, posts, rejects = result
    assert rejects == [] and creator is not None
    assert [(p.username, p.shortcode) for p in posts] == [
        ("mikewilliams", "Cgb-UsrA37l"), ("mikewilliams", "CufBMmSNpn9"), ("raveculture", "C-c0WJWM2a6")]
    assert [o.username for o in result.owners] == ["raveculture"]


def test_owner_on_own_timeline_stays_and_mismatch_recorded() -> None:
    timeline = {"data": {"user": {"edge_owner_to_timeline_media": {"edges": [{"node": {"id": "7"}}]}}}}
    feed = {"items": [{"pk": "7", "user": {"username": "coauthor"}}, {"pk": "8", "user": {"username": "other"}}]}
    result = normalise_documents("jane", [("f(jane).json", feed), ("t(jane).json", timeline)])
    assert [(p.username, p.post_id) for p in result[1]] == [("jane", "7"), ("other", "8")]
    messages = [w.message for w in result.warnings]
    assert any("kept under 'jane'" in m for m in messages) and any("credited to its owner 'other'" in m for m in messages)


def test_drop_folder_with_broken_files_loads_the_rest_and_rereads_equal(tmp_path: Path) -> None:
    folder = tmp_path / "json"
    shutil.copytree(JSON_DIR, folder)
    (folder / "broken(jane).json").write_text('{"data": ')
    (folder / "broken(zoe).json.xz").write_bytes(b"not xz at all")
    (folder / "nobody.json").write_text('{"data": {"user": {"username": "x"}}}')
    snap = load_sources([], [folder])
    clean = load_sources([], [JSON_DIR])
    assert list(snap.creators) == list(clean.creators) and len(snap.posts) == len(clean.posts)
    extra = {r.record: r.reason for r in snap.rejects}
    assert extra["broken(jane).json"].startswith("invalid JSON")
    assert extra["broken(zoe).json.xz"].startswith("invalid xz compression")
    assert extra["nobody.json"] == "no username in file name"
    assert load_sources([], [folder]) == snap
    assert snap.warnings == load_sources([], [folder]).warnings


def test_mongodb_documents_read_like_the_folder() -> None:
    files = sorted(p for p in JSON_DIR.iterdir() if p.suffix == ".json")
    stored = read_stored_responses(
        [{"filename": p.name, "body": p.read_text(), "status": 200} for p in files], "mongodb:test")
    folder = read_json_dumps(JSON_DIR)
    assert [c.username for c in stored[0]] == [c.username for c in folder[0]]
    assert [(p.username, p.post_id, p.images) for p in stored[1]] == [(p.username, p.post_id, p.images) for p in folder[1]]
    assert [(r.record, r.reason) for r in stored[2]] == [(r.record, r.reason) for r in folder[2]]


# --------------------------------------------------------------------------- CSV fixtures

CSV_DIR = FIXTURES / "csv"


@pytest.mark.parametrize(
    ("name", "encoding", "delimiter"),
    [("top_insta_influencers_data.csv", "utf-8-sig", ","),
     ("top_insta_influencers_semicolon_cp1252.csv", "windows-1252", ";")],
)
def test_public_influencer_export_every_row_accounted(name: str, encoding: str, delimiter: str) -> None:
    """A published export (see tests/fixtures/sources/SOURCES.md): 15 data rows in, 14 creators
    plus one refused row out; its follower counts and 'NaN' cells read as such."""
    path = CSV_DIR / name
    data_rows = len([line for line in path.read_bytes().splitlines() if line.strip()]) - 1
    read = read_csv_file(path)
    assert (read.encoding, read.delimiter) == (encoding, delimiter)
    assert len(read.records) + len(read.rejects) == data_rows == 15
    assert read.rejects == [Reject(str(path), "line 14", "invalid username '5-Minute Crafts GIRLY'")]
    creators = {c.username: c for c in read.records}
    assert creators["cristiano"].followers == 475_800_000 and creators["cristiano"].country == "Spain"
    assert creators["rkive"].country is None  # "NaN" cell
    assert read.columns == {"username": "channel_info", "followers": "followers", "country": "country"}
    assert {w.message.split(" (")[0] for w in read.warnings if w.message.startswith("no column")} == {
        "no column for full_name", "no column for category", "no column for bio"}
    assert load_sources([path]) == load_sources([path])


def test_profile_document_without_user_in_name_attributed_when_its_posts_agree(tmp_path: Path) -> None:
    doc = load_fixture(JSON_DIR / "profile_page(instagram)_entry_data.json")
    (tmp_path / "profile_page.json").write_text(json.dumps(doc))
    creators, posts, rejects = read_json_dumps(tmp_path)
    assert rejects == []
    assert [(c.username, c.followers) for c in creators] == [("instagram", 344415438)]
    assert len(posts) == 2


def test_broken_utf16_is_a_file_reject(tmp_path: Path) -> None:
    path = write(tmp_path / "u16.csv", b"\xff\xfeu\x00s\x00\x00\xd8")  # BOM, then a lone surrogate
    read = read_csv_file(path)
    assert read.records == [] and len(read.rejects) == 1
    assert read.rejects[0].reason.startswith("undecodable: UTF-16 byte order mark but invalid UTF-16")


def test_bad_header_map_setting_is_a_configuration_error(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", b"username\njane\n")
    with pytest.raises(ValueError):
        load_sources([path], header_map="{not json")


def test_unparseable_secondary_counts_keep_the_record_with_a_warning() -> None:
    doc = {"data": {"user": {"edge_follow": {"count": "lots"}, "edge_followed_by": {"count": 5},
                             "edge_owner_to_timeline_media": {"count": 1, "edges": [
                                 {"node": {"id": "1", "is_video": True, "video_view_count": "many"}}]}}}}
    result = normalise_documents("jane", [("p(jane).json", doc)])
    creator, posts, rejects = result
    assert rejects == []
    assert (creator.followers, creator.following) == (5, None)
    assert posts[0].view_count is None and posts[0].is_video
    assert {(w.record, w.message) for w in result.warnings} == {
        ("profile", "unparseable following 'lots': kept empty"),
        ("record 1", "unparseable view count 'many': kept empty"),
    }
