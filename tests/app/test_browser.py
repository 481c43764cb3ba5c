"""The review flow in a real browser: Debian's headless Chromium driven by Playwright against the app on
uvicorn (127.0.0.1, ephemeral port) over a warehouse the pipeline filled. A reviewer logs in, approves one
queued tag with the keyboard, corrects another, searches for the corrected tag and sees the change.
The final screenshot is kept as an artefact (``build/test-artifacts/`` or ``$CREATORLENS_TEST_ARTIFACTS``)."""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import text

from creatorlens.settings import REPO_ROOT
from tests.app.conftest import PASSWORD
from tests.support.live import browser_page, serve_app

ARTIFACTS = Path(os.environ.get("CREATORLENS_TEST_ARTIFACTS", REPO_ROOT / "build" / "test-artifacts"))


def test_reviewer_approves_corrects_and_finds_the_correction(web_app, app_engine) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve_app(web_app) as base, browser_page() as page:
        page.goto(f"{base}/review")
        assert "/login" in page.url
        page.fill("input[name=username]", "rita")
        page.fill("input[name=password]", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{base}/review")

        items = page.locator(".queue-item")
        first_id = items.nth(0).get_attribute("data-review-id")
        with page.expect_navigation():
            page.keyboard.press("a")  # approve the highlighted (first) item
        expect(page.locator(".msg")).to_have_text(f"item {first_id}: accepted")
        assert page.locator(f"#item-{first_id}").count() == 0

        page.keyboard.press("j")  # move to the second item and correct it
        second = page.locator(".queue-item.active")
        second_id, wrong_tag = second.get_attribute("data-review-id"), second.get_attribute("data-tag")
        image_key = second.locator("a").first.get_attribute("href").removeprefix("/images/")
        page.keyboard.press("e")
        page.keyboard.type("scene_beach")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        expect(page.locator(".msg")).to_have_text(f"item {second_id}: corrected to scene_beach")

        page.click("nav a[href='/search']")
        page.wait_for_url(f"{base}/search")
        page.fill("input[name=q]", "beach")
        page.select_option("select[name=mode]", "keyword")
        page.click("form[action='/search'] button[type=submit]")
        page.wait_for_url("**/search?*")
        first_hit = page.locator(".results .tile").first
        assert first_hit.get_attribute("data-image-key") == image_key  # a reviewer's tag outranks the model's
        first_hit.click()
        page.wait_for_url(f"**/images/{image_key}")
        beach = page.locator("#image-tags li[data-tag=scene_beach]")
        assert "user" in beach.inner_text() and "rita" in beach.inner_text()
        assert page.locator(f"#image-tags li[data-tag={wrong_tag}]").count() == 0
        shot = ARTIFACTS / "review-flow.png"
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    with app_engine.connect() as conn:
        decided = conn.execute(text(
            "SELECT review_id, status, resolved_by FROM tag_review_queue WHERE review_id IN (:a, :b) ORDER BY review_id"),
            {"a": int(first_id), "b": int(second_id)}).all()
        labels = conn.execute(text("SELECT count(*) FROM tag_feedback WHERE review_id IN (:a, :b)"),
                              {"a": int(first_id), "b": int(second_id)}).scalar_one()
    assert {(r[1], r[2]) for r in decided} == {("accepted", "rita"), ("corrected", "rita")} and labels >= 3
