"""The monthly re-processing schedule, evaluated with build_schedule_context on a real instance.

The production selection is the vision and tagging stages and their warehouse promotions. The
test also adds, in its own Definitions, a tagging-group probe with a warehouse asset downstream of
it (always re-run, like the real ones) and an ingest-group stage with a code version (re-run only
once that version changes). Batches are promoted by real runs of the job.
"""

from datetime import UTC, datetime

import dagster as dg
import pytest

from assets.common.metadata import BATCH_BACKFILL_POLICY, GROUP_INGEST, GROUP_TAGGING, GROUP_WAREHOUSE
from assets.common.partitions import creator_batches
from assets.sources.sample_data import write_creators_csv
from creatorlens.settings import Settings
from orchestration.definitions import build_definitions
from orchestration.jobs import INGEST_JOB
from orchestration.runs import discover_batches, materialize_batch
from orchestration.schedules import REPROCESS_SCHEDULE, REPROCESS_TAG, reprocess_selection

pytestmark = pytest.mark.e2e

TAGS = dg.AssetKey(["tagging", "probe_tags"])
TAG_ROWS = dg.AssetKey(["warehouse", "probe_tag_rows"])
STAGE = dg.AssetKey(["images", "probe_stage"])
STAGE_ROWS = dg.AssetKey(["warehouse", "probe_stage_rows"])
WHEN = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
# The real stages the schedule re-runs every month: vision (object tags included) and tagging, and their
# promotions.
MONTHLY = {dg.AssetKey(k.split("/")) for k in (
    "vision/persons", "vision/keypoints", "vision/ocr", "vision/faces", "vision/image_features", "warehouse/vision",
    "vision/objects", "warehouse/object_tags",
    "images/embeddings", "images/tags", "creators/tags", "warehouse/promoted_tags", "tagging/escalations")}


def _probe(spec: dg.AssetSpec) -> dg.AssetsDefinition:
    """A stand-in for another branch's stage: materialises nothing but its event."""

    @dg.multi_asset(specs=[spec], name=spec.key.to_python_identifier(), backfill_policy=BATCH_BACKFILL_POLICY)
    def _materialise() -> dg.MaterializeResult:
        return dg.MaterializeResult()

    return _materialise


def probe_assets(stage_version: str) -> list[dg.AssetsDefinition]:
    batches = {"partitions_def": creator_batches}
    return [
        _probe(dg.AssetSpec(TAGS, group_name=GROUP_TAGGING, code_version="tagger-1", **batches)),
        _probe(dg.AssetSpec(TAG_ROWS, deps=[TAGS], group_name=GROUP_WAREHOUSE, **batches)),
        _probe(dg.AssetSpec(STAGE, group_name=GROUP_INGEST, code_version=stage_version, **batches)),
        _probe(dg.AssetSpec(STAGE_ROWS, deps=[STAGE], group_name=GROUP_WAREHOUSE, **batches)),
    ]


def _defs(settings: Settings, stage_version: str) -> dg.Definitions:
    return dg.Definitions.merge(build_definitions(settings), dg.Definitions(assets=probe_assets(stage_version)))


def _evaluate(defs: dg.Definitions, instance: dg.DagsterInstance):
    schedule = defs.resolve_schedule_def(REPROCESS_SCHEDULE)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=WHEN,
                                        repository_def=defs.get_repository_def())
    return schedule.evaluate_tick(context)


@pytest.fixture
def promoted(tmp_path, database_url, dagster_instance):
    """Two batches registered; batch-00001 promoted by a real run with the stage at version v1."""
    csv_dir = tmp_path / "csv"
    write_creators_csv(csv_dir / "export.csv", ["ann.a", "bob.b", "cat.c", "dan.d"])
    settings = Settings(state_dir=tmp_path / "state", database_url=database_url, csv_dir=csv_dir,
                        json_dir=tmp_path / "no-json", batch_size=2)
    assert discover_batches(settings, dagster_instance).registered == ["batch-00001", "batch-00002"]
    run = materialize_batch(_defs(settings, "v1").resolve_job_def(INGEST_JOB), dagster_instance, "batch-00001")
    assert run.promoted, run
    return settings


def test_selection_is_tagging_vision_and_their_promotion(tmp_path):
    graph = dg.Definitions.merge(build_definitions(Settings(state_dir=tmp_path)),
                                 dg.Definitions(assets=probe_assets("v1"))).resolve_asset_graph()
    assert reprocess_selection().resolve(graph) == MONTHLY | {TAGS, TAG_ROWS}
    # Ingest, the backbone promotion and the profile stages are not re-run monthly.
    assert reprocess_selection().resolve(build_definitions(Settings(state_dir=tmp_path)).resolve_asset_graph()) == MONTHLY


def test_monthly_tick_requests_one_throttled_run_per_promoted_batch(promoted, dagster_instance):
    result = _evaluate(_defs(promoted, "v1"), dagster_instance)
    assert [(r.partition_key, r.run_key) for r in result.run_requests] == [("batch-00001", "reprocess:2026-12:batch-00001")]
    request = result.run_requests[0]
    assert set(request.asset_selection) == MONTHLY | {TAGS, TAG_ROWS}  # the stage's version did not change
    assert request.tags[REPROCESS_TAG] == "2026-12"


def test_changed_code_version_adds_the_stage_and_its_downstream(promoted, dagster_instance):
    defs = _defs(promoted, "v2")
    request = _evaluate(defs, dagster_instance).run_requests[0]
    assert set(request.asset_selection) == MONTHLY | {TAGS, TAG_ROWS, STAGE, STAGE_ROWS}
    # Running what the schedule asked for records the new version: next month only the forced part.
    job = defs.resolve_job_def(INGEST_JOB)
    result = job.execute_in_process(partition_key=request.partition_key, asset_selection=request.asset_selection,
                                    instance=dagster_instance, tags=request.tags)
    assert result.success
    assert set(_evaluate(defs, dagster_instance).run_requests[0].asset_selection) == MONTHLY | {TAGS, TAG_ROWS}


def test_no_promoted_batch_skips(tmp_path, dagster_instance):
    result = _evaluate(_defs(Settings(state_dir=tmp_path), "v1"), dagster_instance)
    assert not result.run_requests and "no promoted batches" in result.skip_message
