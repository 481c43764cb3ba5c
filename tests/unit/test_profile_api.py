"""The profile API client against a real HTTP server on 127.0.0.1 (tests/support/profile_server.py).

Waits are real but short: jitter 0, Retry-After 1 s, backoffs of a few tenths of a second.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from assets.profiles.filling import coverage, fill_creator
from resources.profile_api import FetchStatus, ProfileCache, ProfileClient, ProfileClientConfig, RateLimiter
from tests.support.profile_server import FakeProfileApi, serve_profiles


def make_client(api: FakeProfileApi, cache_path, **overrides) -> ProfileClient:
    config = ProfileClientConfig(**{
        "url_template": api.url_template, "rate_per_minute": 6000.0, "jitter_s": (0.0, 0.0), "timeout_s": 2.0,
        "backoff_s": 0.05, "rate_limit_backoff_s": 0.05, "please_wait_pause_s": 0.5, **overrides,
    })
    return ProfileClient(config, ProfileCache(cache_path))


@pytest.fixture
def api():
    with serve_profiles() as server:
        yield server


def test_profile_is_mapped_cleaned_and_cached(api, tmp_path):
    long_bio = "line one\n\n  line two\t" + "x" * 600
    api.add("alice", category="Fitness Coach", bio=long_bio, followers=5000, business=True, verified=True)
    with make_client(api, tmp_path / "c.sqlite") as client:
        first = client.fetch("alice")
        again = client.fetch("alice")
    assert first.status == FetchStatus.OK and not first.from_cache
    assert first.profile["category"] == "Fitness Coach"
    assert first.profile["bio"].startswith("line one line two x") and "\n" not in first.profile["bio"]
    assert len(first.profile["bio"]) == 500
    assert first.profile["followers"] == 5000 and first.profile["is_business"] is True
    assert again.from_cache and again.profile == first.profile and again.fetched_at == first.fetched_at
    assert api.hits["alice"] == 1


def test_html_pages_and_unknown_users_are_not_found_and_never_asked_again(api, tmp_path):
    api.add("bob")
    api.script["bob"] = ["html"]
    cache_path = tmp_path / "c.sqlite"
    with make_client(api, cache_path) as client:
        results = {u: client.fetch(u) for u in ("bob", "ghost")}
    assert {u: r.status for u, r in results.items()} == {"bob": FetchStatus.NOT_FOUND, "ghost": FetchStatus.NOT_FOUND}
    assert "HTML" in results["bob"].error
    with make_client(api, cache_path) as client:  # a new process: the cache is on disk
        assert client.fetch("bob").from_cache and client.fetch("ghost").from_cache
    assert api.hits == {"bob": 1, "ghost": 1}


def test_429_honours_retry_after_then_backs_off_without_it(api, tmp_path):
    api.add("carol")
    api.script["carol"] = ["429"]
    with make_client(api, tmp_path / "c.sqlite") as client:
        started = time.monotonic()
        result = client.fetch("carol")
        waited = time.monotonic() - started
    assert result.status == FetchStatus.OK and result.attempts == 2
    assert 1.0 <= waited < 3.0  # Retry-After: 1

    api.retry_after = None
    api.add("dave")
    api.script["dave"] = ["429", "429", "429"]
    with make_client(api, tmp_path / "d.sqlite", rate_limit_backoff_s=0.1) as client:
        started = time.monotonic()
        assert client.fetch("dave").status == FetchStatus.OK
        waited = time.monotonic() - started
    assert 0.1 + 0.2 + 0.4 <= waited < 2.0  # exponential: 0.1, 0.2, 0.4


def test_rate_limit_that_never_ends_is_recorded_and_retried_by_the_next_run(api, tmp_path):
    api.retry_after = "0"
    api.add("erin")
    api.script["erin"] = ["429"] * 3
    cache_path = tmp_path / "c.sqlite"
    with make_client(api, cache_path, rate_limit_retries=2) as client:
        result = client.fetch("erin")
    assert result.status == FetchStatus.RATE_LIMITED and result.http_status == 429 and result.attempts == 3
    assert ProfileCache(cache_path).get("erin").status == FetchStatus.RATE_LIMITED  # recorded, with its error
    with make_client(api, cache_path) as client:
        assert client.fetch("erin").status == FetchStatus.OK  # transient: fetched again
    assert api.hits["erin"] == 4


def test_five_please_wait_401s_in_a_row_trigger_the_long_pause(api, tmp_path):
    api.add("fay")
    api.script["fay"] = ["please_wait"] * 5
    with make_client(api, tmp_path / "c.sqlite", please_wait_pause_s=1.0, rate_limit_backoff_s=0.02) as client:
        started = time.monotonic()
        result = client.fetch("fay")
        waited = time.monotonic() - started
        stats = client.stats
    assert result.status == FetchStatus.OK and result.attempts == 6
    assert stats.long_pauses == 1 and stats.responses["401"] == 5
    assert 1.0 <= waited < 3.0


def test_slow_answers_and_dropped_connections_are_retried_with_backoff(api, tmp_path):
    api.slow_s = 1.0
    for name in ("gus", "hal", "ivy"):
        api.add(name)
    api.script.update({"gus": ["slow", "slow"], "hal": ["drop", "500"], "ivy": ["drop"] * 4})
    cache_path = tmp_path / "c.sqlite"
    with make_client(api, cache_path, timeout_s=0.3) as client:
        gus, hal, ivy = (client.fetch(n) for n in ("gus", "hal", "ivy"))
        responses = client.stats.responses
    assert (gus.status, gus.attempts) == (FetchStatus.OK, 3)
    assert (hal.status, hal.attempts) == (FetchStatus.OK, 3)
    assert responses["timeout"] == 2 and responses["network"] == 5 and responses["500"] == 1
    # 1 try + 3 retries, all dropped: recorded as a network error, fetched again by the next run.
    assert (ivy.status, ivy.attempts) == (FetchStatus.NETWORK_ERROR, 4) and not ivy.terminal
    with make_client(api, cache_path) as client:
        assert client.fetch("ivy").status == FetchStatus.OK


def test_requests_keep_to_the_rate_and_batches_pause(api, tmp_path):
    names = [f"user{i}" for i in range(7)]
    for name in names:
        api.add(name)
    batches = []
    with make_client(api, tmp_path / "c.sqlite", rate_per_minute=600.0, jitter_s=(0.0, 0.05),
                     batch_size=3, batch_pause_s=0.5) as client:
        started = time.monotonic()
        results = list(client.fetch_many(names, on_batch=lambda: batches.append(time.monotonic())))
        elapsed = time.monotonic() - started
        stats = client.stats
    assert [r.username for r in results] == names and all(r.status == FetchStatus.OK for r in results)
    assert stats.batch_pauses == 2 and len(batches) == 2
    times = [t for t, _, _ in api.log]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # Anchored 0.1 s slots with up to 0.05 s of jitter: no gap below 0.05 s, and two 0.5 s pauses.
    assert min(gaps) >= 0.05 - 0.01
    assert sum(g > 0.5 for g in gaps) == 2
    assert elapsed >= 2 * 0.5 + 4 * 0.1
    assert stats.request_rate_per_minute() == pytest.approx(600, rel=0.15)


def test_batch_count_and_pause_hold_across_runs(api, tmp_path):
    for name in ("r1", "r2", "r3", "r4"):
        api.add(name)
    cache_path = tmp_path / "c.sqlite"
    options = {"batch_size": 2, "batch_pause_s": 0.8}
    with make_client(api, cache_path, **options) as client:  # one Dagster run: a batch of 2, then stops
        list(client.fetch_many(["r1", "r2"]))
    with make_client(api, cache_path, **options) as client:  # the next run starts with the pause
        started = time.monotonic()
        list(client.fetch_many(["r3"]))
        assert time.monotonic() - started >= 0.8 and client.stats.batch_pauses == 1
    with make_client(api, cache_path, **options) as client:  # killed mid-pause? a restart still waits
        client.cache.set_politeness(0, datetime.now(UTC) + timedelta(seconds=0.5))
        started = time.monotonic()
        list(client.fetch_many(["r4"]))
        assert time.monotonic() - started >= 0.45


def test_rate_limiter_average_gap_is_the_slot_whatever_the_jitter():
    clock = [0.0]
    limiter = RateLimiter(60.0, (0.2, 0.6), clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    starts = []
    for _ in range(101):
        limiter.wait()
        starts.append(clock[0])
        clock[0] += 0.05  # the request itself
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert (starts[-1] - starts[0]) / 100 == pytest.approx(1.0, abs=0.01)
    assert min(gaps) >= 0.6 and max(gaps) <= 1.4 and len({round(g, 3) for g in gaps}) > 10


def test_force_and_limit(api, tmp_path):
    for name in ("a1", "a2", "a3"):
        api.add(name)
    with make_client(api, tmp_path / "c.sqlite") as client:
        assert [r.username for r in client.fetch_many(["a1", "a2", "a3"], limit=2)] == ["a1", "a2"]
        assert all(r.from_cache for r in client.fetch_many(["a1", "a2"]))
        assert not any(r.from_cache for r in client.fetch_many(["a1", "a2"], force=True))
    assert api.hits == {"a1": 2, "a2": 2}


def test_fill_never_overwrites_and_coverage_counts_what_was_gained():
    rows = [
        {"username": "a", "category": "Chef", "bio": None, "followers": 10},
        {"username": "b", "category": "", "bio": "kept bio", "followers": None},
        {"username": "c", "category": None, "bio": None, "followers": None},
    ]
    profiles = {
        "a": {"category": "Fitness", "bio": "api bio a", "followers": 999, "is_business": True},
        "b": {"category": "Travel", "bio": "api bio b", "followers": 20, "is_business": False},
        "c": None,  # not found
    }
    after, filled = zip(*(fill_creator(r, profiles[r["username"]]) for r in rows), strict=True)
    assert after[0]["category"] == "Chef" and after[0]["bio"] == "api bio a" and after[0]["followers"] == 10
    assert after[1]["category"] == "Travel" and after[1]["bio"] == "kept bio" and after[1]["followers"] == 20
    assert filled[0] == ["bio", "is_business"] and after[2] == rows[2]
    report = coverage(rows, after, ["ok", "ok", "not_found"], business_flags=[True, False])
    assert report.filled_before["category"] == 1 and report.filled_after["category"] == 2
    assert report.filled_before["bio"] == 1 and report.filled_after["bio"] == 2
    assert report.gained == 2 and report.business_share == 0.5
    assert report.as_dict()["fill_rate_after"]["bio"] == pytest.approx(2 / 3, abs=1e-4)
    assert "net profiles gained" in report.text() and "| category | 33.3% | 66.7% | +1 |" in report.markdown()


def test_headers_come_from_the_environment_and_stay_out_of_resource_config(api, tmp_path, monkeypatch):
    from creatorlens.settings import Settings
    from resources.profile_api import ProfileApi

    api.add("hdr")
    monkeypatch.setenv("CREATORLENS_PROFILE_HEADERS", '{"x-ig-app-id": "936619743392459", "Cookie": "sessionid=s3cret"}')
    resource = ProfileApi.from_settings(Settings(state_dir=tmp_path, profile_url_template=api.url_template,
                                                 profile_jitter_min_s=0, profile_jitter_max_s=0))
    assert "s3cret" not in resource.model_dump_json()
    with resource.open_client() as client:
        assert client.fetch("hdr").status == FetchStatus.OK
    assert api.headers[-1]["x-ig-app-id"] == "936619743392459" and api.headers[-1]["Cookie"] == "sessionid=s3cret"
