"""Creator → batch assignment in the real warehouse, and partition registration on a real instance."""

from __future__ import annotations

from assets.common.partitions import CREATOR_BATCHES, register_batches
from assets.sources.batching import assign_batches, batch_members, batch_sizes, record_rejects
from assets.sources.parsing import Reject


def test_assigns_new_creators_to_fresh_batches_and_is_idempotent(engine, dagster_instance):
    users = [f"user{i:03d}" for i in range(250)]
    first = assign_batches(engine, users, batch_size=100)
    assert list(first.new_batches) == ["batch-00001", "batch-00002", "batch-00003"]
    assert [len(v) for v in first.new_batches.values()] == [100, 100, 50]
    assert register_batches(dagster_instance, first.all_batches) == first.all_batches

    again = assign_batches(engine, users, batch_size=100)
    assert again.new_batches == {} and again.all_batches == first.all_batches
    assert register_batches(dagster_instance, again.all_batches) == []
    assert dagster_instance.get_dynamic_partitions(CREATOR_BATCHES) == first.all_batches


def test_later_creators_open_a_new_batch_and_never_move(engine):
    assign_batches(engine, ["a", "b", "c"], batch_size=2)
    later = assign_batches(engine, ["c", "d", "a", "e"], batch_size=2)
    assert later.new_batches == {"batch-00003": ["d", "e"]}
    assert batch_members(engine, "batch-00001") == ["a", "b"]
    assert batch_members(engine, "batch-00002") == ["c"]
    assert batch_sizes(engine) == {"batch-00001": 2, "batch-00002": 1, "batch-00003": 2}


def test_duplicate_usernames_in_input_are_batched_once(engine):
    result = assign_batches(engine, ["x", "x", "y"], batch_size=10)
    assert result.new_batches == {"batch-00001": ["x", "y"]}


def test_rejects_are_recorded_once_per_source_record(engine):
    rejects = [Reject("a.csv", "line 3", "bad"), Reject("a.csv", "line 3", "bad"), Reject("b.json", "b.json", "invalid JSON")]
    assert record_rejects(engine, rejects) == 2
    record_rejects(engine, rejects)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM source_rejects").scalar_one() == 2
