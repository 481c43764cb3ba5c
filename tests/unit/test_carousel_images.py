"""Carousel posts become one image per child; ``top_n_images`` caps images per creator, not posts."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from assets.images.assets import image_key, select_top_images


def _posts(rows):
    return pd.DataFrame([{"platform": "instagram", "username": u, "post_id": pid, "likes": likes, "comments": 0,
                          "taken_at": datetime(2024, 5, 1, tzinfo=UTC), "media_url": f"https://cdn/{pid}.jpg",
                          "carousel": children} for u, pid, likes, children in rows])


def test_each_child_is_an_image_in_post_rank_then_position_order():
    posts = _posts([("a", "p1", 10, []), ("a", "p2", 50, ["https://cdn/c1.jpg", None, "https://cdn/c3.jpg"])])
    images = select_top_images(posts, 10)
    assert [(r.post_id, r.position, r.media_url) for r in images.itertuples()] == [
        ("p2", 1, "https://cdn/c1.jpg"), ("p2", 2, None), ("p2", 3, "https://cdn/c3.jpg"),
        ("p1", 1, "https://cdn/p1.jpg")]
    assert list(images["rank"]) == [1, 1, 1, 2]
    assert "carousel" not in images.columns


def test_top_n_counts_images_per_creator_and_parquet_arrays_are_children_too():
    posts = _posts([("a", "p1", 90, np.array(["u1", "u2", "u3"], dtype=object)), ("a", "p2", 80, []),
                    ("b", "q1", 1, [])])
    images = select_top_images(posts, 2)
    assert [(r.username, r.post_id, r.position) for r in images.itertuples()] == [
        ("a", "p1", 1), ("a", "p1", 2), ("b", "q1", 1)]


def test_a_single_image_post_keeps_its_key_and_children_get_a_position_suffix():
    assert image_key("instagram", "123") == image_key("instagram", "123", 1) == "instagram:123"
    assert image_key("instagram", "123", 4) == "instagram:123:4"


def test_no_posts_no_images():
    assert select_top_images(_posts([]).reindex(columns=["platform", "username", "post_id", "likes", "comments",
                                                         "taken_at", "media_url", "carousel"]), 5).empty
