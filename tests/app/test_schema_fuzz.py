"""Property-based API tests with schemathesis, generated from the app's own OpenAPI schema and run in
process (ASGI) against a warehouse the pipeline filled: no generated input may cause a 5xx, and no
request without credentials (or with a viewer's) may change anything."""

from __future__ import annotations

import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import text

from app.main import create_app
from tests.app.conftest import bearer

FUZZ = settings(max_examples=15, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])
WRITES = ("POST", "DELETE", "PUT", "PATCH")
READS_BY_POST = {"/api/creators/match", "/api/search/image"}  # a brief or a photo in the body; nothing stored
REFUSED = {400, 405, 422}  # unparseable body, unsupported method, invalid input: refused before any work
# What a write would leave behind: reviewer rows, labels, flags, resolved queue items, custom tags.
TRACES = ("SELECT count(*) FROM image_tags WHERE source = 'user'", "SELECT count(*) FROM tag_feedback",
          "SELECT count(*) FROM image_flags", "SELECT count(*) FROM tag_review_queue WHERE status <> 'pending'",
          "SELECT count(*) FROM tags WHERE origin = 'user'")


# The schema comes from an app over an engine that never connects (reading /openapi.json needs no
# database); each generated request then goes to the test's own app over its own warehouse clone.
# (schemathesis.pytest.from_fixture needs a pytest private attribute this pytest no longer has.)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(sa.create_engine("postgresql+psycopg://schema@127.0.0.1:1/none"), "/nonexistent"))


def traces(engine) -> list[int]:
    with engine.connect() as conn:
        return [conn.execute(text(q)).scalar_one() for q in TRACES]


@schema.parametrize()
@FUZZ
def test_no_generated_input_causes_a_server_error(case, web_app, tokens) -> None:
    case.call_and_validate(headers=bearer(tokens["reviewer"]), checks=[not_a_server_error], app=web_app)


@schema.parametrize()
@FUZZ
def test_writes_without_credentials_or_as_a_viewer_are_refused(case, web_app, tokens, app_engine) -> None:
    before = traces(app_engine)
    anonymous = case.call(app=web_app)
    assert anonymous.status_code in REFUSED | {401}, (case.method, case.path, anonymous.status_code, anonymous.text)
    if case.method.upper() in WRITES and case.path not in READS_BY_POST:
        as_viewer = case.call(headers=bearer(tokens["viewer"]), app=web_app)
        assert as_viewer.status_code in REFUSED | {403}, (case.method, case.path, as_viewer.status_code)
    assert traces(app_engine) == before
