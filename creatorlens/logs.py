"""Structured logging for the CLI: ``CREATORLENS_LOG_FORMAT=json`` prints one JSON object per line.

Dagster's own run logs switch with the same setting (orchestration/observability.py), so a log
shipper sees one format from the CLI, the code servers and the run workers.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message"}`` (+ ``exc_info``), UTC ISO timestamps."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: int, log_format: str = "text") -> None:
    """Root logging for one CLI process (replaces handlers a previous call installed)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
