"""Unit tests for assets.sources.parsing: CSV exports, JSON dumps and their merge."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from assets.sources.parsing import (
    DEFAULT_HEADER_MAP,
    CreatorRecord,
    PostRecord,
    Reject,
    SourceSnapshot,
    load_sources,
    normalise_documents,
    parse_dump_filename,
    read_csv_export,
    read_json_dumps,
)
from creatorlens.fields import PLATFORM, clean_bio, normalise_username, parse_count

HEADER = "Rank,Username,Name,Followers,ER,Genre,Details,Country\n"


def write_csv(path: Path, text: str, *, bom: bool = False, newline: str = "\n") -> Path:
    """Write ``text`` (written with ``\\n``) as UTF-8, optionally with BOM / other line ends."""
    data = text.replace("\n", newline).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def write_json(folder: Path, name: str, doc: Any) -> Path:
    """Write ``doc`` as JSON into ``folder/name``."""
    path = folder / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def node(
    post_id: str | None,
    *,
    caption: str | None = None,
    likes: int = 0,
    comments: int = 0,
    url: str | None = None,
    ts: int | None = None,
    video: bool = False,
    shortcode: str | None = None,
) -> dict[str, Any]:
    """A GraphQL timeline node as found in web_profile_info."""
    data: dict[str, Any] = {
        "edge_liked_by": {"count": likes},
        "edge_media_to_comment": {"count": comments},
        "is_video": video,
        "edge_media_to_caption": {"edges": [{"node": {"text": caption}}] if caption else []},
    }
    if post_id is not None:
        data["id"] = post_id
    if url is not None:
        data["display_url"] = url
    if ts is not None:
        data["taken_at_timestamp"] = ts
    if shortcode is not None:
        data["shortcode"] = shortcode
    return {"node": data}


def profile_doc(nodes: list[dict[str, Any]] | None = None, **user: Any) -> dict[str, Any]:
    """A web_profile_info document."""
    body = {
        "username": "whoever",
        "biography": "Line one\nline two",
        "category_name": "Artist",
        "full_name": "Jane Doe",
        "edge_followed_by": {"count": 12345},
        "is_business_account": False,
        "is_verified": True,
        "edge_owner_to_timeline_media": {"count": 3, "edges": nodes or []},
    }
    body.update(user)
    return {"data": {"user": body}, "status": "ok"}


# --------------------------------------------------------------------------- primitives


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("jane.doe", "jane.doe"),
        ("  @Jane.Doe ", "jane.doe"),
        ("https://instagram.com/Jane_Doe", "jane_doe"),
        ("https://www.instagram.com/jane_doe/", "jane_doe"),
        ("http://instagram.com/jane_doe/?hl=en", "jane_doe"),
        ("instagram.com/jane.doe/", "jane.doe"),
        ("www.instagram.com/abc123", "abc123"),
        ("a" * 30, "a" * 30),
        ("a" * 31, None),
        ("a b", None),
        ("jane-doe", None),
        ("instagram.com/p/Cxyz/", None),
        ("@", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalise_username(raw: str | None, expected: str | None) -> None:
    assert normalise_username(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12,345", 12345),
        ("1,234,567", 1234567),
        ("1.2M", 1_200_000),
        ("1.2m", 1_200_000),
        ("350K", 350_000),
        ("350k", 350_000),
        ("1.5B", 1_500_000_000),
        ("12.5 K", 12_500),
        (" 987 ", 987),
        ("0", 0),
        (42, 42),
        (42.0, 42),
        ("", None),
        ("   ", None),
        ("N/A", None),
        ("-", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_parse_count(raw: Any, expected: int | None) -> None:
    assert parse_count(raw) == expected


@pytest.mark.parametrize("raw", ["12abc", "abc", "1.2.3", "1,23", "-5", "K", "1.2X", -3, True, [1]])
def test_parse_count_rejects_garbage(raw: Any) -> None:
    with pytest.raises(ValueError):
        parse_count(raw)


def test_clean_bio_one_line_and_cut() -> None:
    assert clean_bio("  Hello\n\n  world\r\n\tagain  ") == "Hello world again"
    assert clean_bio(" \n\t ") is None
    assert clean_bio(None) is None
    long_bio = ("word\n" * 200).strip()  # 999 chars once on one line
    cleaned = clean_bio(long_bio)
    assert cleaned is not None
    assert len(cleaned) == 499  # cut at 500 lands on a space, which is stripped
    assert cleaned == ("word " * 100)[:499]
    exact = clean_bio("x" * 600)
    assert exact == "x" * 500
    assert clean_bio("abcdef", limit=3) == "abc"


def test_parse_dump_filename() -> None:
    assert parse_dump_filename("web_profile_info(Jane.Doe)_2024-01-01.json") == "jane.doe"
    assert parse_dump_filename("posts(jane.doe)(other)_p2.json") == "jane.doe"
    assert parse_dump_filename("/some(dir)/posts(abc)_1.json") == "abc"
    assert parse_dump_filename("web_profile_info_2024.json") is None
    assert parse_dump_filename("web_profile_info()_2024.json") is None
    assert parse_dump_filename("web_profile_info(not valid)_2024.json") is None


def test_default_header_map_contents() -> None:
    assert DEFAULT_HEADER_MAP["username"] == (
        "username",
        "handle",
        "instagram",
        "account",
        "user",
        "instagram username",
    )
    assert set(DEFAULT_HEADER_MAP) == {"username", "full_name", "followers", "category", "bio", "country"}


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("bom", [False, True])
def test_csv_with_and_without_bom(tmp_path: Path, bom: bool) -> None:
    path = write_csv(
        tmp_path / "export.csv",
        "Username,Name,Followers,Genre,Details,Country\n"
        "@Jane.Doe,Jane Doe,\"12,345\",Art,Painter,France\n"
        "bob_01,Bob,1.2M,Music,,\n",
        bom=bom,
    )
    records, rejects = read_csv_export(path)
    assert rejects == []
    assert records == [
        CreatorRecord(
            username="jane.doe",
            platform=PLATFORM,
            full_name="Jane Doe",
            followers=12345,
            category="Art",
            bio="Painter",
            country="France",
            sources=(str(path),),
        ),
        CreatorRecord(
            username="bob_01",
            full_name="Bob",
            followers=1_200_000,
            category="Music",
            sources=(str(path),),
        ),
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_multiline_cells_keep_physical_line_numbers(tmp_path: Path, newline: str) -> None:
    text = (
        HEADER  # line 1
        + '1,alice,Alice,100,1%,Art,"first line\nsecond line\nthird",FR\n'  # lines 2-4
        + '2,bob,Bob,200,1%,Food,"one\n\ntwo",US\n'  # lines 5-7
        + "3,carol,Carol,12abc,1%,Food,plain,US\n"  # line 8 (bad followers)
        + '4,dave,Dave,300,1%,Tech,"x\ny",US\n'  # lines 9-10
        + "5,bad user,Eve,1,1%,Tech,plain,US\n"  # line 11 (bad username)
    )
    path = write_csv(tmp_path / "ml.csv", text, newline=newline)
    records, rejects = read_csv_export(path)
    assert [r.username for r in records] == ["alice", "bob", "dave"]
    assert records[0].bio == "first line second line third"
    assert records[1].bio == "one two"
    assert rejects == [
        Reject(str(path), "line 8", "unparseable followers '12abc'"),
        Reject(str(path), "line 11", "invalid username 'bad user'"),
    ]


def test_csv_header_aliases_and_extra_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "aliases.csv",
        ' "Rank" , "Instagram" ,Full Name,FOLLOWER COUNT,ER,Topics,Biography,Location\n'
        "1,https://www.instagram.com/Some.One/,Some One,350k,2.1%,Travel,Hi there,Spain\n",
    )
    records, rejects = read_csv_export(path)
    assert rejects == []
    assert records == [
        CreatorRecord(
            username="some.one",
            full_name="Some One",
            followers=350_000,
            category="Travel",
            bio="Hi there",
            country="Spain",
            sources=(str(path),),
        )
    ]


def test_csv_custom_header_map(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "custom.csv",
        "IG Handle,Audience,Name,Blurb\njane,1.5B,Jane,Multi\nline\n",
    )
    records, rejects = read_csv_export(
        path, header_map={"username": ("ig handle",), "followers": ("Audience",), "bio": ["blurb"]}
    )
    # "Name" still maps through the default aliases for full_name.
    assert rejects == [Reject(str(path), "line 3", "unexpected column count 1 (header has 4)")]
    assert records == [
        CreatorRecord(
            username="jane", full_name="Jane", followers=1_500_000_000, bio="Multi", sources=(str(path),)
        )
    ]
    # With the defaults "IG Handle" is not a username column.
    with pytest.raises(ValueError, match="no username column"):
        read_csv_export(path)
    with pytest.raises(ValueError, match="unknown field"):
        read_csv_export(path, header_map={"handle": ("ig handle",)})


def test_csv_malformed_rows_are_rejected_with_line_numbers(tmp_path: Path) -> None:
    text = (
        "Username,Name,Followers,Details\n"  # 1
        "good1,One,10,ok\n"  # 2
        "good2,Two,20\n"  # 3  too few cells
        "good3,Three,30,ok,extra,cells\n"  # 4  too many cells
        ",Nobody,40,ok\n"  # 5  missing username
        "   ,Blank,40,ok\n"  # 6  whitespace username
        "no way,Bad,40,ok\n"  # 7  invalid username
        "good4,Four,lots,ok\n"  # 8  bad followers
        "\n"  # 9  blank: skipped silently
        ",,,\n"  # 10 empty cells only: skipped silently
        "GOOD1,Again,99,dup\n"  # 11 duplicate of line 2
        '"good5","Five","5,000","multi\nline"\n'  # 12-13
        "@good5,Five again,1,dup\n"  # 14 duplicate of line 12
        "good6,,,\n"  # 15 only a username
    )
    path = write_csv(tmp_path / "bad.csv", text)
    records, rejects = read_csv_export(path)
    src = str(path)
    assert [(r.username, r.followers, r.full_name, r.bio) for r in records] == [
        ("good1", 10, "One", "ok"),
        ("good5", 5000, "Five", "multi line"),
        ("good6", None, None, None),
    ]
    assert rejects == [
        Reject(src, "line 3", "unexpected column count 3 (header has 4)"),
        Reject(src, "line 4", "unexpected column count 6 (header has 4)"),
        Reject(src, "line 5", "missing username"),
        Reject(src, "line 6", "missing username"),
        Reject(src, "line 7", "invalid username 'no way'"),
        Reject(src, "line 8", "unparseable followers 'lots'"),
        Reject(src, "line 11", "duplicate username 'good1' (first seen on line 2)"),
        Reject(src, "line 14", "duplicate username 'good5' (first seen on line 12)"),
    ]


def test_csv_duplicate_after_rejected_first_row_is_kept(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", "username,followers\njane,bad\njane,5\n")
    records, rejects = read_csv_export(path)
    assert [(r.username, r.followers) for r in records] == [("jane", 5)]
    assert rejects == [Reject(str(path), "line 2", "unparseable followers 'bad'")]


def test_csv_without_username_column_raises(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "nouser.csv", "Rank,Name,Followers\n1,Jane,10\n")
    with pytest.raises(ValueError, match=r"no username column; headers: \['Rank', 'Name', 'Followers'\]"):
        read_csv_export(path)


def test_csv_empty_file_raises(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "empty.csv", "\n\n")
    with pytest.raises(ValueError, match="no username column"):
        read_csv_export(path)


def test_csv_header_only_gives_nothing(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", "username,followers\n")
    assert read_csv_export(path) == ([], [])


def test_csv_invalid_utf8_rejects_only_that_row(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(
        b"username,name\n"
        b"jane,Jane\n"
        b"jose,Jos\xe9\n"  # latin-1 byte: invalid UTF-8
        b"zoe,Z\xc3\xb6e\n"  # valid UTF-8
    )
    records, rejects = read_csv_export(path)
    assert [(r.username, r.full_name) for r in records] == [("jane", "Jane"), ("zoe", "Zöe")]
    assert rejects == [Reject(str(path), "line 3", "invalid UTF-8 bytes in row")]


def test_csv_unclosed_quote_is_recorded_not_crashing(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "q.csv", 'username,bio\njane,ok\nbob,"never closed\nzoe,hi\n')
    records, rejects = read_csv_export(path)
    assert [r.username for r in records] == ["jane"]
    assert rejects == [Reject(str(path), "line 3", "unterminated quoted field (runs to end of file)")]
    # A stray quote inside an unquoted last cell is kept as text, not mistaken for one.
    stray = write_csv(tmp_path / "s.csv", "username,bio\nzoe,5'10\"\n")
    assert [r.bio for r in read_csv_export(stray)[0]] == ["5'10\""]


def test_large_generated_csv_exact_counts(tmp_path: Path) -> None:
    """4,000 rows, 2,500 of them with multi-line cells, plus bad rows at known lines."""
    lines_written = 1
    parts = [HEADER]
    expected_rejects: list[tuple[str, str]] = []
    expected_usernames: list[str] = []
    multiline_cells = 0
    for i in range(4000):
        if i % 8 < 5:
            details = f'"Bio of {i}\nsecond line, with comma\n""quoted"" third"'
            multiline_cells += 1
        else:
            details = f"Single line bio {i}"
        row = f'{i},user_{i},"Name {i}","{i * 10:,}",1.5%,Genre {i % 7},{details},FR\n'
        parts.append(row)
        expected_usernames.append(f"user_{i}")
        lines_written += row.count("\n")
        if i % 1000 == 999:  # a bad row right after a (possibly multi-line) good one
            bad = f"x,bad user {i},N,1,1%,G,\"a\nb\",FR\n"
            parts.append(bad)
            expected_rejects.append((f"line {lines_written + 1}", f"invalid username 'bad user {i}'"))
            lines_written += bad.count("\n")
    path = write_csv(tmp_path / "big.csv", "".join(parts), bom=True)
    assert multiline_cells == 2500
    assert lines_written == 1 + 2500 * 3 + 1500 + 4 * 2  # header + rows + bad rows

    records, rejects = read_csv_export(path)
    assert len(records) == 4000
    assert [r.username for r in records] == expected_usernames
    assert [(r.record, r.reason) for r in rejects] == expected_rejects
    assert records[0].bio == 'Bio of 0 second line, with comma "quoted" third'
    assert records[5].bio == "Single line bio 5"
    assert records[3999].followers == 39990


# --------------------------------------------------------------------------- JSON


def test_json_profile_and_paged_items_merge(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    profile = write_json(
        dumps,
        "web_profile_info(Jane.Doe)_2024-01-01.json",
        profile_doc(
            [
                node(
                    "111",
                    caption="hello\nworld",
                    likes=5,
                    comments=1,
                    url="https://cdn/111.jpg",
                    ts=1_700_000_000,
                ),
                node("222", likes=7, ts=1_700_000_100, video=True, shortcode="BBB"),
            ]
        ),
    )
    items = write_json(
        dumps,
        "posts(jane.doe)_page1.json",
        {
            "data": {
                "items": [
                    {  # same media as node 222 (v1 ids carry an owner suffix): fills caption + url
                        "id": "222_98765",
                        "pk": 222,
                        "code": "BBB",
                        "taken_at": 1_700_000_100,
                        "caption": {"text": "late caption"},
                        "like_count": 999,
                        "comment_count": 3,
                        "media_type": 2,
                        "image_versions2": {
                            "candidates": [{"url": "https://cdn/222.jpg"}, {"url": "small"}]
                        },
                        "user": {"username": "someone_else"},
                    },
                    {
                        "pk": "333",
                        "code": "CCC",
                        "taken_at": 1_700_000_200,
                        "caption": None,
                        "like_count": 4,
                        "comment_count": 0,
                        "media_type": 1,
                        "image_versions2": {"candidates": [{"url": "https://cdn/333.jpg"}]},
                    },
                ]
            }
        },
    )
    creators, posts, rejects = read_json_dumps(dumps)
    assert rejects == []
    assert creators == [
        CreatorRecord(
            username="jane.doe",
            full_name="Jane Doe",
            followers=12345,
            category="Artist",
            bio="Line one line two",
            is_business=False,
            is_verified=True,
            sources=(str(items), str(profile)),  # files are read in name order
        )
    ]
    by_id = {p.post_id: p for p in posts}
    assert [p.post_id for p in posts] == ["222", "333", "111"]
    assert by_id["222"] == PostRecord(
        username="jane.doe",
        post_id="222",
        shortcode="BBB",
        taken_at=datetime(2023, 11, 14, 22, 15, tzinfo=timezone.utc),
        caption="late caption",
        likes=999,  # first occurrence (posts file sorts first) wins for counts
        comments=3,
        media_url="https://cdn/222.jpg",
        is_video=True,
        source=str(items),
    )
    assert by_id["111"].caption == "hello\nworld"
    assert by_id["111"].taken_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert by_id["111"].taken_at.tzinfo is timezone.utc
    assert (by_id["111"].likes, by_id["111"].comments, by_id["111"].is_video) == (5, 1, False)
    assert by_id["333"].caption is None
    assert by_id["333"].is_video is False


def test_normalise_documents_later_occurrence_fills_missing_fields() -> None:
    docs = [
        ("a.json", {"items": [{"id": "1", "like_count": 3}]}),
        ("b.json", profile_doc([node("1", caption="cap", url="https://x/1.jpg", likes=50)], biography=None)),
        ("c.json", profile_doc([], full_name="Other Name", biography="Later bio", is_verified=False)),
    ]
    creator, posts, rejects = normalise_documents("Jane", docs)
    assert rejects == []
    assert creator == CreatorRecord(
        username="jane",
        full_name="Jane Doe",
        followers=12345,
        category="Artist",
        bio="Later bio",  # b.json had no biography, c.json fills it
        is_business=False,
        is_verified=True,
        sources=("a.json", "b.json", "c.json"),
    )
    assert posts == [
        PostRecord(
            username="jane", post_id="1", likes=3, caption="cap", media_url="https://x/1.jpg", source="a.json"
        )
    ]


@pytest.mark.parametrize("wrap", ["data", "bare", "graphql"])
def test_json_profile_shape_variants(wrap: str) -> None:
    user = profile_doc([node("9")])["data"]["user"]
    docs = {"data": {"data": {"user": user}}, "bare": {"user": user}, "graphql": {"graphql": {"user": user}}}
    doc = docs[wrap]
    creator, posts, rejects = normalise_documents("jane", [("x(jane).json", doc)])
    assert rejects == []
    assert creator is not None and creator.followers == 12345 and creator.full_name == "Jane Doe"
    assert [p.post_id for p in posts] == ["9"]


def test_json_bare_items_shape() -> None:
    doc = {"items": [{"pk": 5, "like_count": 2}]}
    creator, posts, rejects = normalise_documents("jane", [("p.json", doc)])
    assert rejects == []
    assert creator == CreatorRecord(username="jane", sources=("p.json",))
    assert posts == [PostRecord(username="jane", post_id="5", likes=2, source="p.json")]


def test_json_bad_files_are_recorded(tmp_path: Path) -> None:
    write_json(tmp_path, "web_profile_info(jane)_1.json", profile_doc([node("1")]))
    (tmp_path / "web_profile_info(broken)_1.json").write_text("", encoding="utf-8")
    (tmp_path / "web_profile_info(trunc)_1.json").write_text('{"data": {', encoding="utf-8")
    write_json(tmp_path, "web_profile_info_noname.json", profile_doc())
    write_json(tmp_path, "odd(shape)_1.json", {"hello": "world"})
    write_json(tmp_path, "list(shape2)_1.json", [1, 2])
    write_json(tmp_path, "ghost(nobody)_1.json", {"data": {"user": None}})
    (tmp_path / "notes(jane).txt").write_text("ignored: not json", encoding="utf-8")
    (tmp_path / "sub(jane).json").mkdir()  # a folder is not a dump

    creators, posts, rejects = read_json_dumps(tmp_path)
    assert [c.username for c in creators] == ["jane"]
    assert [p.post_id for p in posts] == ["1"]

    def rej(name: str, reason: str) -> Reject:
        return Reject(str(tmp_path / name), name, reason)

    assert rejects == [
        rej("web_profile_info(broken)_1.json", "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        rej(
            "web_profile_info(trunc)_1.json",
            "invalid JSON: Expecting property name enclosed in double quotes: line 1 column 11 (char 10)",
        ),
        rej("web_profile_info_noname.json", "no username in file name"),
        rej("ghost(nobody)_1.json", "unrecognised document shape"),
        rej("list(shape2)_1.json", "unrecognised document shape"),
        rej("odd(shape)_1.json", "unrecognised document shape"),
    ]


def test_json_posts_without_id_rejected_rest_counts(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        "web_profile_info(jane)_1.json",
        profile_doc(
            [
                node("1"),
                node(None, caption="no id"),
                "not an edge",
                {"node": {"id": "4", "taken_at_timestamp": "soon"}},
                {"node": {"id": "5", "edge_liked_by": {"count": "many"}}},
                node("6"),
            ],
            edge_followed_by={"count": "lots"},
        ),
    )
    creators, posts, rejects = read_json_dumps(tmp_path)
    (creator,) = creators
    src = str(path)
    assert [p.post_id for p in posts] == ["1", "6"]
    assert creator.followers is None and creator.full_name is None  # refused profile part
    assert creator.sources == (src,)
    assert rejects == [
        Reject(src, "profile", "unparseable followers 'lots'"),
        Reject(src, "record 2", "post without id"),
        Reject(src, "record 3", "post is not an object"),
        Reject(src, "record 4", "invalid taken_at 'soon'"),
        Reject(src, "record 5", "unparseable likes 'many'"),
    ]
    assert len({(r.source, r.record) for r in rejects}) == len(rejects)


def test_json_username_in_document_is_ignored(tmp_path: Path) -> None:
    write_json(tmp_path, "web_profile_info(jane)_1.json", profile_doc(username="not_jane"))
    creators, posts, rejects = read_json_dumps(tmp_path)
    assert [c.username for c in creators] == ["jane"]
    assert posts == [] and rejects == []


def test_json_relative_media_paths_resolve_against_file_folder(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    absolute = str(tmp_path / "abs.jpg")
    write_json(
        dumps,
        "web_profile_info(jane)_1.json",
        profile_doc(
            [
                node("1", url="media/1.jpg"),
                node("2", url="../shared/2.jpg"),
                node("3", url="https://cdn.example/3.jpg"),
                node("4", url=absolute),
                node("5", url=""),
            ]
        ),
    )
    _, posts, rejects = read_json_dumps(dumps)
    assert rejects == []
    urls = [p.media_url for p in posts]
    assert urls == [
        str((dumps / "media" / "1.jpg").resolve()),
        str((tmp_path / "shared" / "2.jpg").resolve()),
        "https://cdn.example/3.jpg",
        absolute,
        None,
    ]
    assert all(Path(u).is_absolute() for u in urls[:2])


def test_normalise_documents_without_folder_keeps_relative_path() -> None:
    doc = {"items": [{"id": "1", "image_versions2": {"candidates": [{"url": "media/1.jpg"}]}}]}
    _, posts, _ = normalise_documents("jane", [("mongodb/no/such/folder/doc-1", doc)])
    assert posts[0].media_url == "media/1.jpg"


def test_normalise_documents_edge_cases() -> None:
    assert normalise_documents("jane", []) == (None, [], [])
    creator, posts, rejects = normalise_documents("jane", [("src/x.json", {"nope": 1})])
    assert creator is None and posts == []
    assert rejects == [Reject("src/x.json", "x.json", "unrecognised document shape")]
    with pytest.raises(ValueError, match="invalid username"):
        normalise_documents("not valid", [])


def test_read_json_dumps_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        read_json_dumps(tmp_path / "absent")


# --------------------------------------------------------------------------- load_sources


def test_load_sources_merge_order(tmp_path: Path) -> None:
    csv_a = write_csv(
        tmp_path / "a.csv",
        "Username,Name,Followers,Genre,Details,Country\n"
        "jane,CSV Jane,100,CSV genre,,Italy\n"
        "csv_only,Only,5,,,\n"
        "bad name,x,1,,,\n",
    )
    csv_b = write_csv(tmp_path / "b.csv", "handle,bio,location\njane,Bio from b,Peru\nbob,Bob bio,\n")
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    jane_doc = profile_doc([node("1", url="https://x/1.jpg")], full_name="JSON Jane")
    profile = write_json(dumps, "web_profile_info(jane)_1.json", jane_doc)
    other = write_json(dumps, "web_profile_info(json_only)_1.json", profile_doc([node("1"), node("2")]))
    dumps2 = tmp_path / "dumps2"
    dumps2.mkdir()
    again = write_json(dumps2, "posts(jane)_2.json", {"items": [{"id": "1_77", "caption": {"text": "c"}}]})

    snap = load_sources([csv_a, str(csv_b)], [dumps, dumps2])
    assert isinstance(snap, SourceSnapshot)
    assert list(snap.creators) == ["jane", "csv_only", "bob", "json_only"]
    assert snap.creators["jane"] == CreatorRecord(
        username="jane",
        full_name="CSV Jane",  # CSV value kept over JSON
        followers=100,  # CSV value kept over JSON (12345)
        category="CSV genre",
        bio="Bio from b",  # second CSV fills the empty bio; JSON bio not used
        country="Italy",  # first CSV wins over "Peru"
        is_business=False,  # only JSON has these
        is_verified=True,
        sources=(str(csv_a), str(csv_b), str(profile), str(again)),
    )
    assert snap.creators["json_only"].sources == (str(other),)
    assert snap.creators["bob"].bio == "Bob bio"
    assert [(p.username, p.post_id) for p in snap.posts] == [("jane", "1"), ("json_only", "1"), ("json_only", "2")]
    jane_post = snap.posts[0]
    assert (jane_post.media_url, jane_post.caption, jane_post.source) == ("https://x/1.jpg", "c", str(profile))
    assert snap.rejects == [Reject(str(csv_a), "line 4", "invalid username 'bad name'")]


def test_load_sources_does_not_mutate_reader_output(tmp_path: Path) -> None:
    csv_a = write_csv(tmp_path / "a.csv", "username,followers\njane,\n")
    csv_b = write_csv(tmp_path / "b.csv", "username,followers\njane,7\n")
    first = load_sources([csv_a, csv_b])
    second = load_sources([csv_a, csv_b])
    assert first == second
    assert first.creators["jane"].followers == 7
    assert first.creators["jane"].sources == (str(csv_a), str(csv_b))
    assert load_sources() == SourceSnapshot(creators={}, posts=[], rejects=[])


def test_load_sources_accepts_single_path(tmp_path: Path) -> None:
    csv_a = write_csv(tmp_path / "a.csv", "username\njane\n")
    assert list(load_sources(csv_a).creators) == ["jane"]
    assert list(load_sources(str(csv_a)).creators) == ["jane"]
