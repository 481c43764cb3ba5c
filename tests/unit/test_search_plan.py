"""VectorSearch.index_budget: how far a filtered semantic search may scan the HNSW index before it
ranks the passing images exactly (planner estimates in, a budget out; no database)."""

from __future__ import annotations

import pytest

from assets.tagging.search import SearchSettings, VectorSearch


def budget(passing: float, total: float = 500_000, k: int = 100, **settings) -> int | None:
    return VectorSearch(SearchSettings(**settings)).index_budget(passing, total, k)


@pytest.mark.parametrize(("passing", "expected"), [
    (1_500, None),      # under exact_below: exact at once
    (6_300, None),      # a rare tag (1.3 %): exact at once (21 ms) rather than a probe that fails first
    (12_000, 500),      # 2.4 %: ~4,200 visits if unrelated to the query: a short probe
    (40_000, 2_000),    # a category (8 %): ~1,250 visits, within max_scan_tuples
    (150_000, 2_000),   # a common tag
])
def test_the_budget_follows_the_estimated_share_of_images_passing(passing, expected) -> None:
    assert budget(passing) == expected


def test_the_probe_never_exceeds_the_full_budget_and_a_tiny_warehouse_goes_exact() -> None:
    assert budget(12_000, max_scan_tuples=300) == 300
    assert budget(10, total=20, k=10) is None


def test_a_negative_exact_below_always_scans_the_index_with_the_full_budget() -> None:
    assert budget(10, exact_below=-1) == 2_000
    assert budget(10, exact_below=-1, max_scan_tuples=100_000) == 100_000
