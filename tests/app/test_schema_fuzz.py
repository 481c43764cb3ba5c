"""Property-based API tests with schemathesis, generated from the app's own OpenAPI schema against a
warehouse the pipeline filled: every check schemathesis has (``--checks all``: no 5xx, every status,
header and body as documented, schema-valid input accepted and invalid input refused, ``Allow`` on
405 and OPTIONS, authentication enforced) over the real app on uvicorn; and, in process (ASGI), no
request without credentials (or with a viewer's) may change anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from sqlalchemy import text

from app.main import create_app
from tests.app.conftest import bearer
from tests.support.live import serve_app

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


# The one thing the schema cannot say: whether uploaded bytes are a decodable image (422 when not).
SCHEMATHESIS_TOML = """
[[operations]]
include-path = "/api/search/image"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]
"""


def test_schemathesis_with_all_checks_finds_nothing(web_app, tokens, tmp_path) -> None:
    """Issue 14, defect 9: the document did not declare the 400/404/409 the API returns, declared
    FastAPI's list-shaped 422 while the app answered ``{"detail": "<string>"}``, accepted by schema
    values the app refused (an empty brief, an empty upload, a blank reason or query, a correction
    naming no tag), and OPTIONS answered 405 without ``Allow``. Bounded: 8 examples per operation
    and phase, a fixed seed, one worker: with two, schemathesis's threads build ASTs at once and
    CPython 3.11.7 can raise ``SystemError: AST constructor recursion depth mismatch`` (CPython
    gh-106905, fixed in later 3.11 releases), a runtime error that is no finding of ours."""
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_TOML)
    cli = Path(sys.executable).with_name("schemathesis")
    with serve_app(web_app) as base:
        run = subprocess.run(
            [str(cli), "--no-color", "--config-file", str(config), "run", f"{base}/openapi.json", "--checks", "all",
             "-H", f"Authorization: Bearer {tokens['reviewer']}", "--max-examples", "8", "--seed", "14",
             "--phases", "examples,coverage,fuzzing,stateful", "--workers", "1", "--request-timeout", "20"],
            capture_output=True, text=True, timeout=240, cwd=tmp_path)  # its .schemathesis/ cache stays there
    summary = run.stdout[run.stdout.rfind("SUMMARY"):]
    print(summary)  # the totals, shown by pytest -rP
    assert run.returncode == 0 and " failed" not in summary.splitlines()[-1], run.stdout[-6000:] + run.stderr[-2000:]
    assert "Tested: " in summary and "generated" in summary, summary


@schema.parametrize()
@FUZZ
def test_writes_without_credentials_or_as_a_viewer_are_refused(case, web_app, tokens, app_engine) -> None:
    before = traces(app_engine)
    anonymous = case.call(app=web_app)
    if case.method.upper() == "OPTIONS":  # says which methods the path takes, and nothing else
        assert anonymous.status_code == 204 and "OPTIONS" in anonymous.headers["allow"][0] and not anonymous.content
    else:
        assert anonymous.status_code in REFUSED | {401}, (case.method, case.path, anonymous.status_code, anonymous.text)
    if case.method.upper() in WRITES and case.path not in READS_BY_POST:
        as_viewer = case.call(headers=bearer(tokens["viewer"]), app=web_app)
        assert as_viewer.status_code in REFUSED | {403}, (case.method, case.path, as_viewer.status_code)
    assert traces(app_engine) == before


def test_the_document_declares_what_the_api_answers_and_options_names_the_methods() -> None:
    """Defect 9, read directly: declared 4xx/503 with the app's error body, refusals in the schema,
    and ``Allow`` on OPTIONS and on 405 listing every method of the path (Starlette named only the
    first matching route's). Needs no database: routing answers before any dependency runs."""
    from fastapi.testclient import TestClient

    app = create_app(sa.create_engine("postgresql+psycopg://schema@127.0.0.1:1/none"), "/nonexistent")
    doc = TestClient(app).get("/openapi.json").json()
    decide = doc["paths"]["/api/review/{review_id}"]["post"]
    assert {"400", "401", "403", "404", "409", "413", "422", "503"} <= set(decide["responses"])
    problem = doc["components"]["schemas"]["Problem"]["properties"]["detail"]["anyOf"]
    assert {"type": "string", "description": problem[0]["description"]} == problem[0] and problem[1]["type"] == "array"
    assert all(r["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
               for code, r in decide["responses"].items() if code >= "400")
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert decide["security"] and "apiToken" in doc["components"]["securitySchemes"]
    assert "404" not in doc["paths"]["/api/tags"]["get"]["responses"]  # only where a path names something
    brief = doc["components"]["schemas"]["Brief"]
    assert {a["required"][0] for a in brief["anyOf"]} == {"required", "preferred"}
    upload = doc["components"]["schemas"]["Body_search_by_upload_api_search_image_post"]["properties"]["file"]
    assert upload["minLength"] == 1
    search_q = next(p for p in doc["paths"]["/api/search"]["get"]["parameters"] if p["name"] == "q")
    assert search_q["schema"]["pattern"] == r"^[^\x00]*\S[^\x00]*$"  # not blank (422 before), no NUL
    country = next(p for p in doc["paths"]["/api/creators"]["get"]["parameters"] if p["name"] == "country")
    assert country["schema"]["anyOf"][0]["pattern"] == r"^[^\x00]*$"

    client = TestClient(app)
    options = client.options("/api/images/some-key/tags")
    assert options.status_code == 204 and options.headers["allow"] == "GET, OPTIONS, POST"
    wrong = client.put("/api/images/some-key/tags")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, OPTIONS, POST"
    assert client.options("/api/creators/match").headers["allow"] == "OPTIONS, POST"  # not /creators/{username}'s
    assert client.options("/no/such/path").status_code == 404
    nul = client.get("/api/creators", params={"country": "a\x00b"})  # refused before authentication
    assert nul.status_code == 422 and "NUL" in nul.json()["detail"]
