"""Dagster loggers: the usual coloured console, and ``json_console`` (one JSON object per line).

Runs choose by run config, ``loggers: {json_console: {config: {log_level: INFO}}}``; the CLI picks
``json_console`` itself when ``CREATORLENS_LOG_FORMAT=json`` (:func:`run_logger_config`). Per-stage
timings and throughput are asset metadata (``assets/_common.throughput_metadata``), not logs.
"""

from __future__ import annotations

import dagster as dg

JSON_LOGGER = "json_console"
CONSOLE_LOGGER = "console"

LOGGERS: dict[str, dg.LoggerDefinition] = {
    CONSOLE_LOGGER: dg.colored_console_logger,
    JSON_LOGGER: dg.json_console_logger,
}


def run_logger_config(log_format: str, log_level: str = "INFO") -> dict[str, object]:
    """The ``loggers`` section of a run config for ``log_format`` (``text`` or ``json``)."""
    key = JSON_LOGGER if log_format == "json" else CONSOLE_LOGGER
    return {key: {"config": {"log_level": log_level}}}
