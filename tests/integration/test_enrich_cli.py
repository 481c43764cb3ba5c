"""`creatorlens enrich` against a real profile server on 127.0.0.1: the CSV it writes, the coverage
report it prints, and a run SIGKILLed mid-way that resumes without asking for a cached profile again.
"""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from orchestration.cli import cli
from tests.support.profile_server import serve_profiles

HEADER = "Rank,Username,Name,Followers,Country,GENRE,details\n"


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_bytes(("\ufeff" + HEADER + "".join(rows)).encode())
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def cli_args(tmp_path: Path, url_template: str, src: Path, out: Path, *extra: str) -> list[str]:
    return ["--state-dir", str(tmp_path / "state"), "enrich", "--input", str(src), "--output", str(out),
            "--url-template", url_template, "--rate-limit", "6000", "--jitter", "0", "0", *extra]


def test_enrich_fills_only_empty_cells_and_reports_coverage(tmp_path):
    src = write_csv(tmp_path / "in.csv", [
        '1,@anna.fit,Anna,12k,DE,Fitness,"already\nhas a bio"\n',  # both set: nothing may change
        "2,https://instagram.com/ben_cooks/,Ben,1.2M,UK,,\n",  # both empty: both filled
        '3,carla,Carla,900,IT,Travel,\n',  # genre set, details empty
        "4,not a user!,X,1,FR,,\n",  # invalid username: untouched
        "5,ghost.user,Ghost,5,US,,\n",  # does not exist: HTML page
        "6,ben_cooks,Ben again,1.2M,UK,,\n",  # duplicate: fetched once, both rows filled
        "7,broken,row\n",  # malformed: written back as it was
    ])
    out = tmp_path / "out.csv"
    with serve_profiles() as api:
        api.add("anna.fit", category="Coach", bio="api bio anna", business=False)
        api.add("ben_cooks", category="Chef", bio="Cooking at home\nevery day", business=True)
        api.add("carla", category="Blogger", bio="Carla travels", business=True, followers=901)
        result = CliRunner().invoke(cli, cli_args(tmp_path, api.url_template, src, out))
        assert result.exit_code == 0, result.output
        hits = dict(api.hits)
    assert hits == {"anna.fit": 1, "ben_cooks": 1, "carla": 1, "ghost.user": 1}

    rows = read_rows(out)
    assert [r["Rank"] for r in rows] == ["1", "2", "3", "4", "5", "6", "7"]
    anna, ben, carla, bad, ghost, ben2, broken = rows
    assert (anna["GENRE"], anna["details"]) == ("Fitness", "already\nhas a bio")
    assert (ben["GENRE"], ben["details"]) == ("Chef", "Cooking at home every day") == (ben2["GENRE"], ben2["details"])
    assert (carla["GENRE"], carla["details"]) == ("Travel", "Carla travels")
    assert carla["Followers"] == "900" and carla["ig_followers"] == "901" and carla["ig_is_business"] == "true"
    assert bad["enrich_status"] == "invalid_username" and bad["GENRE"] == ""
    assert ghost["enrich_status"] == "not_found" and ghost["details"] == ""
    assert broken["Username"] == "broken" and broken["enrich_status"] is None  # short row, kept as it was
    assert all(r["enriched_at"] for r in (anna, ben, carla, ghost, ben2))
    # 5 well-formed rows with a valid username … of 6 well-formed rows
    assert "category" in result.output and "net profiles gained (category or bio newly filled): 3" in result.output
    assert "business accounts: 66.7% of 3 known" in result.output


def test_killed_enrichment_resumes_without_refetching_cached_profiles(tmp_path):
    names = [f"creator{i:02d}" for i in range(30)]
    src = write_csv(tmp_path / "in.csv", [f"{i},{n},N{i},{i},DE,,\n" for i, n in enumerate(names)])
    out = tmp_path / "out.csv"
    cache = tmp_path / "state" / "profile_cache.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREATORLENS_")}
    with serve_profiles() as api:
        for n in names:
            api.add(n, category="Cat", bio=f"bio of {n}")
        api.delay_s = 0.15  # ~6 profiles/s: long enough to kill it mid-way
        args = [sys.executable, "-m", "orchestration.cli",
                *cli_args(tmp_path, api.url_template, src, out, "--batch-size", "5", "--batch-pause", "0")]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and sum(api.hits.values()) < 12:
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        with sqlite3.connect(cache) as db:
            cached = {u for (u,) in db.execute("SELECT username FROM profiles WHERE status = 'ok'")}
        checkpoint = read_rows(out)  # written after each batch of 5
        assert 10 <= len(cached) < len(names)
        assert sum(r["enrich_status"] == "ok" for r in checkpoint) >= 10
        before = dict(api.hits)

        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        resumed = {u: n - before.get(u, 0) for u, n in api.hits.items() if n - before.get(u, 0)}
    assert not set(resumed) & cached  # no cached profile was asked for again
    assert set(resumed) | cached == set(names) and all(n == 1 for n in resumed.values())
    rows = read_rows(out)
    assert [r["Username"] for r in rows] == names
    assert all(r["enrich_status"] == "ok" and r["GENRE"] == "Cat" and r["details"] == f"bio of {r['Username']}"
               for r in rows)
    assert f"from cache {len(cached)}" in done.stdout
