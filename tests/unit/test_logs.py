"""The JSON logging switch: CLI records and Dagster run logs become one JSON object per line."""

from __future__ import annotations

import json
import logging

import dagster as dg
import pytest

from creatorlens.logs import configure_logging
from orchestration.observability import JSON_LOGGER, LOGGERS, run_logger_config


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_cli_json_format(capfd, restore_root_logging):
    configure_logging(logging.INFO, "json")
    logging.getLogger("creatorlens.test").warning("sensor found %d creators", 3)
    [entry] = _json_lines(capfd.readouterr().err)
    assert entry["level"] == "WARNING" and entry["logger"] == "creatorlens.test"
    assert entry["message"] == "sensor found 3 creators" and entry["ts"].endswith("+00:00")
    configure_logging(logging.INFO, "text")
    logging.getLogger("creatorlens.test").warning("plain")
    assert capfd.readouterr().err.strip() == "WARNING creatorlens.test: plain"


def test_runs_select_the_json_logger_by_run_config(capfd):
    @dg.asset
    def probe(context) -> None:  # no annotation: this module uses postponed annotations
        context.log.info("probe ran")

    job = dg.Definitions(assets=[probe], jobs=[dg.define_asset_job("probe_job")], loggers=LOGGERS).resolve_job_def(
        "probe_job")
    assert job.execute_in_process(run_config={"loggers": run_logger_config("json")}).success
    entries = _json_lines(capfd.readouterr().err)
    assert any(e.get("msg", "").endswith("probe ran") for e in entries), entries[:3]
    assert run_logger_config("text", "DEBUG") == {"console": {"config": {"log_level": "DEBUG"}}}
    assert JSON_LOGGER in run_logger_config("json")
