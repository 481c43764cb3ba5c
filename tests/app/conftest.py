"""The app's tests run against a warehouse filled by the real demo pipeline (sample creators through
Dagster into the embedded PostgreSQL), filled once per test process (~30 s; each xdist worker fills
its own) and cloned per test (CREATE DATABASE … TEMPLATE), so a test's reviews and edits never leak
into another's.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from psycopg import sql as pgsql

from app.auth import create_user, issue_api_token
from app.main import create_app
from assets.sources.sample_data import build_sample_data
from creatorlens.settings import REPO_ROOT, Settings
from orchestration.definitions import ASSET_CHECKS, ASSETS, JOBS, build_resources
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch
from resources.models import ModelRegistry
from resources.warehouse import dispose_engines, get_engine, normalise_url
from tests.support.llm_server import serve_llm
from tests.support.tiny_models import build_tiny_siglip

PASSWORD = "correct horse battery"
_clone = itertools.count()


@dataclass
class FilledWarehouse:
    database: str
    settings: Settings
    models: ModelRegistry  # the tiny SigLIP that embedded and tagged the images: it embeds queries too


@pytest.fixture(scope="session")
def filled_warehouse(pg_server, tmp_path_factory) -> Iterator[FilledWarehouse]:
    name = f"app_filled_{os.getpid()}"
    admin = pg_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {}").format(pgsql.Identifier(name)))
        conn.execute(pgsql.SQL("CREATE DATABASE {} TEMPLATE creatorlens_template").format(pgsql.Identifier(name)))
    root = tmp_path_factory.mktemp("app_state")
    sample = build_sample_data(root / "sample")
    siglip = build_tiny_siglip(root / "tiny-siglip")
    home = root / "dagster_home"
    home.mkdir()
    overrides = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
    with serve_llm() as llm, dg.instance_for_test(temp_dir=str(home), overrides=overrides) as instance:
        settings = Settings(
            state_dir=root / "state",
            database_url=normalise_url(pg_server.get_uri(database=name)),
            csv_dir=sample.csv_paths[0].parent,
            json_dir=sample.json_dirs[0],
            image_workers=2,
            decode_workers=1,
            llm_base_url=llm.base_url,
            llm_model="fake-model",
        )
        models = ModelRegistry.from_settings(settings, device="cpu", backends={"image_embedder": "siglip"},
                                             weights={"image_embedder": str(siglip)})
        defs = dg.Definitions(assets=ASSETS, asset_checks=ASSET_CHECKS, jobs=JOBS,
                              resources={**build_resources(settings), "models": models})
        discovery = discover_batches(settings, instance, batch_size=6)
        job = defs.resolve_job_def(INGEST_JOB)
        for key in discovery.assignment.all_batches:
            assert materialize_batch(job, instance, key).promoted, key
    engine = get_engine(settings.database_url)
    with engine.begin() as conn:
        create_user(conn, "rita", PASSWORD, "reviewer")
        create_user(conn, "vic", PASSWORD, "viewer")
    dispose_engines()
    yield FilledWarehouse(name, settings, models)
    dispose_engines()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


@pytest.fixture
def app_engine(pg_server, filled_warehouse):
    name = f"{filled_warehouse.database}_c{next(_clone)}"
    admin = pg_server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            pgsql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                pgsql.Identifier(name), pgsql.Identifier(filled_warehouse.database)
            )
        )
    yield get_engine(normalise_url(pg_server.get_uri(database=name)), migrate=False)
    dispose_engines()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))


@pytest.fixture
def web_app(app_engine, filled_warehouse):
    """The app with the tiny SigLIP that embedded the images, so semantic search embeds queries with it."""
    embedder = filled_warehouse.models.load("image_embedder")
    return create_app(app_engine, filled_warehouse.settings.blob_root, embedder=embedder)


@pytest.fixture
def tokens(app_engine) -> dict[str, str]:
    with app_engine.begin() as conn:
        return {"reviewer": issue_api_token(conn, "rita"), "viewer": issue_api_token(conn, "vic")}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _meta_or_field(html: str, marker: str) -> str:
    start = html.index(marker) + len(marker)
    return html[start:html.index('"', start)]


def post_login(client, data: dict, **kwargs):
    """POST /login as a browser does: fetch the form first (its pre-session cookie and CSRF token)."""
    form = client.get("/login")
    token = _meta_or_field(form.text, 'name="csrf_token" value="')
    return client.post("/login", data={**data, "csrf_token": token}, **kwargs)


def login(client, username: str = "rita") -> str:
    """Log ``client`` in through the form; returns the page's CSRF token."""
    response = post_login(client, {"username": username, "password": PASSWORD, "next": "/stats"},
                          follow_redirects=True)
    assert response.status_code == 200, response.text
    marker = 'name="csrf-token" content="'
    start = response.text.index(marker) + len(marker)
    return response.text[start:response.text.index('"', start)]


def blob_exists(settings: Settings, key: str) -> bool:
    return (Path(settings.blob_root) / key).is_file()
