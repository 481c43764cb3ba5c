"""The object-tag category map in the app: everyone logged in reads it, reviewers edit it (API and
page form, CSRF for cookies), and the page says how many stored objects wait for the re-map job."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.app.conftest import bearer, login


def test_reviewers_edit_the_category_map_and_see_what_is_stale(web_app, app_engine, tokens) -> None:
    viewer = TestClient(web_app, headers=bearer(tokens["viewer"]))
    reviewer = TestClient(web_app, headers=bearer(tokens["reviewer"]))
    listed = viewer.get("/api/object-categories").json()
    assert {r["label"]: r["category"] for r in listed["labels"]}["laptop"] == "electronics"
    assert viewer.put("/api/object-categories/laptop", json={"category": "work"}).status_code == 403
    assert reviewer.put("/api/object-categories/laptop", json={"category": "Not Valid!"}).status_code == 422
    # A stored object of that label (a real image of the warehouse) goes stale when its label moves.
    with app_engine.begin() as conn:
        image_id = conn.execute(text("SELECT image_id FROM images WHERE status = 'ok' LIMIT 1")).scalar_one()
        conn.execute(text("""INSERT INTO detected_objects (image_id, model_version, object_idx, label, confidence,
                                                            x1, y1, x2, y2, category, batch_key)
                             VALUES (:i, 'yolov8s@8.3.0', 0, 'laptop', 0.9, 1, 1, 5, 5, 'electronics', 'b')"""),
                     {"i": image_id})
    done = reviewer.put("/api/object-categories/laptop", json={"category": "work"})
    assert done.status_code == 200 and done.json()["category"] == "work" and done.json()["updated_by"] == "rita"
    assert done.json()["stale_objects"] == 1 and "remap_object_categories" in done.json()["remap"]
    with app_engine.connect() as conn:  # the map changed; the stored tag waits for the job
        assert conn.execute(text("SELECT category FROM detected_objects")).scalar_one() == "electronics"
    # The page: a form for reviewers that needs the CSRF token, a note about stale objects.
    browser = TestClient(web_app)
    csrf = login(browser)
    page = browser.get("/objects/categories")
    assert page.status_code == 200 and "1 stored objects still carry an old category" in page.text
    form = {"label": "pizza", "category": "treats"}
    assert browser.post("/objects/categories", data=form).status_code == 403
    saved = browser.post("/objects/categories", data={**form, "csrf_token": csrf}, follow_redirects=True)
    assert saved.status_code == 200 and "pizza is now treats" in saved.text
    assert {r["label"]: r["category"] for r in viewer.get("/api/object-categories").json()["labels"]}["pizza"] == "treats"
