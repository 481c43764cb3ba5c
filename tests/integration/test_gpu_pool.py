"""Two steps in pool "gpu" never run at once under the multiprocess executor; two free steps do.

One real run of four assets against a real instance configured by our dagster.yaml
(``concurrency.pools.default_limit: 1``): ``gpu_a``/``gpu_b`` carry ``pool=GPU_POOL``, ``cpu_a``/
``cpu_b`` carry none. Each step writes its start/end wall-clock times to a file; the executor
may run all four at once, so only the pool can keep the GPU steps apart. The free pair is the
control: it shows that overlap happens here and that the check sees it.
"""

import itertools
import json
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.common.metadata import GPU_POOL

HOLD_S = 2.0
PROBE_JOB = "pool_probe"


class StampConfig(dg.Config):
    out_dir: str
    hold_s: float = HOLD_S


def _stamped_asset(name: str, pool: str | None) -> dg.AssetsDefinition:
    @dg.asset(name=name, pool=pool)
    def _stamp(config: StampConfig) -> None:
        start = time.time()
        time.sleep(config.hold_s)
        Path(config.out_dir, f"{name}.json").write_text(json.dumps([start, time.time()]))

    return _stamp


PROBE_ASSETS = [_stamped_asset("gpu_a", GPU_POOL), _stamped_asset("gpu_b", GPU_POOL),
                _stamped_asset("cpu_a", None), _stamped_asset("cpu_b", None)]


def pool_probe_job() -> dg.JobDefinition:
    """Module-level factory: the multiprocess executor re-imports the job in each step process."""
    job = dg.define_asset_job(PROBE_JOB, selection=[a.key for a in PROBE_ASSETS],
                              executor_def=dg.multiprocess_executor.configured({"max_concurrent": 4}))
    return dg.Definitions(assets=PROBE_ASSETS, jobs=[job]).resolve_job_def(PROBE_JOB)


def overlapping(intervals: dict[str, tuple[float, float]]) -> list[tuple[str, str]]:
    """Pairs of named [start, end) intervals that intersect."""
    return [(a, b) for (a, (s1, e1)), (b, (s2, e2)) in itertools.combinations(sorted(intervals.items()), 2)
            if s1 < e2 and s2 < e1]


def test_overlap_check_detects_overlap():
    assert overlapping({"a": (0.0, 2.0), "b": (1.0, 3.0), "c": (3.0, 4.0)}) == [("a", "b")]
    assert overlapping({"a": (0.0, 1.0), "b": (1.0, 2.0)}) == []


@pytest.mark.e2e
def test_gpu_steps_never_overlap_under_multiprocess_executor(dagster_instance, tmp_path):
    # Step processes re-import this module by name (tests/conftest.py puts the repo on PYTHONPATH).
    out = tmp_path / "stamps"
    out.mkdir()
    run_config = {"ops": {a.op.name: {"config": {"out_dir": str(out)}} for a in PROBE_ASSETS}}
    recon = dg.build_reconstructable_job(__name__, pool_probe_job.__name__)
    with dg.execute_job(recon, instance=dagster_instance, run_config=run_config) as result:
        assert result.success
    stamps = {p.stem: tuple(json.loads(p.read_text())) for p in out.glob("*.json")}
    assert set(stamps) == {"gpu_a", "gpu_b", "cpu_a", "cpu_b"}
    assert overlapping({k: v for k, v in stamps.items() if k.startswith("gpu")}) == []
    # Control: without a pool the executor ran the free pair side by side.
    assert overlapping({k: v for k, v in stamps.items() if k.startswith("cpu")}) == [("cpu_a", "cpu_b")]
    # The pool is the instance's, with the limit from dagster.yaml.
    assert dagster_instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count == 1
