"""Flag for re-analysis, end to end: a reviewer flags an image in the app, ``flagged_images_sensor``
asks for a run of its batch, the real ingest job runs that batch again (Dagster, embedded PostgreSQL),
and its vision promotion resolves the flag; a flag raised afterwards asks for another run."""

from __future__ import annotations

import dagster as dg
from fastapi.testclient import TestClient
from sqlalchemy import text

from assets.common.partitions import creator_batches
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import materialize_batch
from orchestration.sensors import FLAGGED_IMAGES_SENSOR, flagged_images_sensor
from resources.warehouse import Warehouse
from tests.app.conftest import bearer

BATCH = "batch-00003"


def tick(instance: dg.DagsterInstance, warehouse: Warehouse) -> list[tuple[str, str]]:
    context = dg.build_sensor_context(instance=instance, resources={"warehouse": warehouse},
                                      sensor_name=FLAGGED_IMAGES_SENSOR)
    return [(r.partition_key, r.run_key) for r in flagged_images_sensor(context).run_requests or []]


def test_a_flag_runs_its_batch_again_and_that_run_resolves_it(web_app, tokens, app_engine, filled_warehouse,
                                                             dagster_instance) -> None:
    url = app_engine.url.render_as_string(hide_password=False)
    warehouse = Warehouse(database_url=url)
    dagster_instance.add_dynamic_partitions(creator_batches.name, ["batch-00001", "batch-00002", BATCH])
    assert tick(dagster_instance, warehouse) == []

    reviewer = TestClient(web_app, headers=bearer(tokens["reviewer"]))
    with app_engine.connect() as conn:
        first, second = conn.execute(text(
            "SELECT image_key FROM images WHERE batch_key = :b AND status = 'ok' ORDER BY image_key LIMIT 2"),
            {"b": BATCH}).scalars()
    flag = reviewer.post(f"/api/images/{first}/flag", json={"reason": "the person box misses her arm"}).json()
    assert tick(dagster_instance, warehouse) == [(BATCH, f"reanalyse:{BATCH}:{flag['flag_id']}")]

    settings = filled_warehouse.settings.model_copy(update={"database_url": url, "llm_base_url": None})
    job = build_definitions(settings).resolve_job_def(INGEST_JOB)
    run = materialize_batch(job, dagster_instance, BATCH)
    assert run.success and run.promoted
    with app_engine.connect() as conn:
        resolved = conn.execute(text("SELECT resolved_at IS NOT NULL, resolved_run_id FROM image_flags")).all()
    assert resolved == [(True, run.run_id)]
    assert tick(dagster_instance, warehouse) == []
    assert "Flagged for re-analysis" not in reviewer.get(f"/images/{first}").text

    later = reviewer.post(f"/api/images/{second}/flag", json={"reason": "text not read"}).json()
    assert tick(dagster_instance, warehouse) == [(BATCH, f"reanalyse:{BATCH}:{later['flag_id']}")]
