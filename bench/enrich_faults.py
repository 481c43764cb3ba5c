"""Profile enrichment under injected faults: correctness, not speed (politeness sets the speed).

1,000 profiles are fetched from a local profile server (tests/support/profile_server.py) that
answers 5 % of requests with 429 + ``Retry-After``, lets 2 % time out and serves 1 % as an
HTML page. The run must end with:

* every profile accounted for (a cache row with a status for each username);
* zero duplicate requests: no username asked for again once it had a final answer, and a
  second pass over the same list (the baseline: what a cacheless client would send again)
  sends nothing;
* the observed request rate within 5 % of the configured limit, measured over sending time
  (wall time minus the pauses the server asked for or the backoff chose).

    python bench/enrich_faults.py                       # ~2 minutes
    python bench/enrich_faults.py --profiles 200 --rate 1200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._record import record  # noqa: E402
from resources.profile_api import FetchStatus, ProfileCache, ProfileClient, ProfileClientConfig  # noqa: E402
from tests.support.profile_server import FakeProfileApi, Faults, serve_profiles  # noqa: E402

FINAL_BEHAVIOURS = {"ok", "html"}  # answers after which a username must never be asked again


def duplicate_requests(log: list[tuple[float, str, str]]) -> int:
    """Requests for a username that came after that username already had a final answer."""
    done: set[str] = set()
    duplicates = 0
    for _, username, behaviour in log:
        if username in done:
            duplicates += 1
        elif behaviour in FINAL_BEHAVIOURS:
            done.add(username)
    return duplicates


def max_in_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1200.0, help="requests per minute")
    ap.add_argument("--jitter", type=float, nargs=2, default=(0.0, 0.02))
    ap.add_argument("--retry-after", default="1", help="Retry-After header of the injected 429s")
    ap.add_argument("--timeout", type=float, default=0.1, help="client timeout, s")
    ap.add_argument("--slow", type=float, default=0.5, help="how long a 'timeout' answer takes, s")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--record", action="store_true",
                    help="write bench/results/<name>.json for bench/figures.py (the README's figures table)")
    args = ap.parse_args()

    names = [f"creator{i:05d}" for i in range(args.profiles)]
    fault_rates = {"429": 0.05, "slow": 0.02, "html": 0.01}
    faults = Faults(fault_rates, seed=args.seed)
    config = ProfileClientConfig(
        url_template="", rate_per_minute=args.rate, jitter_s=tuple(args.jitter), timeout_s=args.timeout,
        batch_size=10**9, backoff_s=0.05, rate_limit_backoff_s=0.5, network_retries=3, rate_limit_retries=5,
    )
    with tempfile.TemporaryDirectory(prefix="enrich-bench-") as tmp, \
            serve_profiles(FakeProfileApi(faults=faults, retry_after=args.retry_after, slow_s=args.slow)) as api:
        for name in names:
            api.add(name, category="Bench", bio=f"bio {name}")
        cache = ProfileCache(Path(tmp) / "cache.sqlite")
        config = ProfileClientConfig(**{**config.__dict__, "url_template": api.url_template})
        print(f"{len(names)} profiles at {args.rate:.0f}/min, jitter {args.jitter[0]}-{args.jitter[1]} s, "
              f"faults 5% 429 (Retry-After {args.retry_after}), 2% timeouts, 1% HTML")
        started = time.monotonic()
        with ProfileClient(config, cache) as client:
            results = list(client.fetch_many(names))
            stats = client.stats
        wall = time.monotonic() - started
        first_log = list(api.log)

        # Second pass: what a cacheless client would send again; ours must send nothing.
        hits_before = sum(api.hits.values())
        with ProfileClient(config, cache) as client:
            again = list(client.fetch_many(names))
        second_pass_requests = sum(api.hits.values()) - hits_before

        statuses = Counter(str(r.status) for r in results)
        cached_statuses = cache.counts()
        injected = Counter(b for _, _, b in first_log)
        first_final = {}
        for _, username, behaviour in first_log:
            if behaviour in FINAL_BEHAVIOURS:
                first_final.setdefault(username, behaviour)
        html_first = sum(b == "html" for b in first_final.values())
        duplicates = duplicate_requests(first_log)
        rate = stats.request_rate_per_minute() or 0.0
        times = sorted(t for t, _, _ in first_log)
        window = 60.0 / args.rate * 20
        busiest = max_in_window(times, window)
        cache.close()

    accounted = sum(cached_statuses.values())
    print(f"requests sent: {stats.requests} for {len(names)} profiles; injected: {dict(injected)}")
    print(f"outcomes: {dict(statuses)}; cache rows: {accounted} ({cached_statuses})")
    print(f"accounted for: {accounted}/{len(names)}; not_found = HTML answers: {statuses['not_found']} = {html_first}")
    print(f"duplicate requests after a final answer: {duplicates}; second pass: {second_pass_requests} requests "
          f"(baseline without the cache: {len(names)}), {sum(r.from_cache for r in again)} served from cache")
    print(f"wall {wall:.1f} s, deliberate pauses {stats.paused_s:.1f} s (Retry-After/backoff)")
    print(f"observed rate over sending time: {rate:.1f}/min = {rate / args.rate:.3f} x the configured "
          f"{args.rate:.0f}/min (wall-clock rate incl. pauses: {stats.requests / wall * 60:.1f}/min); "
          f"most requests in any {window:.2f} s window: {busiest} (limit 20 + 1)")

    ok = (accounted == len(names) and duplicates == 0 and second_pass_requests == 0
          and statuses[FetchStatus.NOT_FOUND] == html_first and abs(rate / args.rate - 1) <= 0.05)
    print("PASS" if ok else "FAIL")
    if args.record:
        n = len(names)
        outcomes = ", ".join(f"{count:,} {status.replace('_', ' ')}" for status, count in statuses.most_common())
        record("enrich_faults", [(
            f"profile enrichment, {n:,} profiles at {args.rate:,.0f}/min with {fault_rates['429'] * 100:g} % 429 "
            f"(`Retry-After: {args.retry_after}`), {fault_rates['slow'] * 100:g} % timeouts, "
            f"{fault_rates['html'] * 100:g} % HTML",
            f"{accounted:,}/{n:,} accounted for ({outcomes}; not found = the {html_first:,} HTML answers); "
            f"{stats.requests:,} requests; {duplicates:,} repeated requests after a final answer"
            + ("" if ok else "; FAIL"),
            f"request rate over sending time {rate:,.0f}/min = {rate / args.rate:.3f} × the limit (never more "
            f"than {busiest:,} requests in any {window:.3g} s); second pass over the same {n:,}: "
            f"{second_pass_requests:,} requests ({n:,} without the cache)",
        )])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
