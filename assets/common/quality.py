"""Table expectations with great-expectations, reduced to what an asset check needs.

One ephemeral GX context per process; each validation gets its own pandas data asset so
checks running side by side in one process do not see each other's frames.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

_ctx_lock = threading.Lock()
_context: Any = None
_counter = itertools.count()


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list[Any]

    def describe(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items() if k not in {"batch_id"})
        status = "ok" if self.success else "FAILED"
        extra = ""
        if not self.success and self.unexpected_count is not None:
            extra = f" — {self.unexpected_count} unexpected ({(self.unexpected_percent or 0):.1f} %), e.g. {self.sample[:5]}"
        return f"{status}: {self.expectation}({args}){extra}"


@dataclass(frozen=True)
class QualityReport:
    success: bool
    outcomes: list[ExpectationOutcome]
    rows: int

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def markdown(self) -> str:
        lines = ["| expectation | result | unexpected | sample |", "|---|---|---|---|"]
        for o in self.outcomes:
            args = ", ".join(f"{k}={v}" for k, v in o.kwargs.items() if k != "batch_id")
            lines.append(
                f"| `{o.expectation}({args})` | {'✅' if o.success else '❌'} | "
                f"{'' if o.unexpected_count is None else o.unexpected_count} | {', '.join(map(str, o.sample[:5]))} |"
            )
        return "\n".join(lines)


class _Expectations:
    """``great_expectations.expectations``, imported on first use: importing GX takes ~2 s, and
    every process that loads the code location (webserver, daemon, each run worker) would pay it
    even when it runs no check. ``gxe.ExpectColumnValuesToNotBeNull(...)`` reads as usual."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("great_expectations.expectations"), name)


gxe = _Expectations()


def column(name: str) -> Any:
    """A GX row condition on ``name`` (``column("status") == "ok"``), with GX imported on first use."""
    from great_expectations.expectations.row_conditions import Column

    return Column(name)


def _get_context() -> Any:
    global _context
    with _ctx_lock:
        if _context is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")]:
                logging.getLogger(name).setLevel(logging.WARNING)  # GX sets INFO on its own loggers
            logging.getLogger("great_expectations").setLevel(logging.WARNING)
            _context = gx.get_context(mode="ephemeral")
            _context.variables.progress_bars = ProgressBarsConfig(globally=False)
        return _context


def validate_frame(df: pd.DataFrame, expectations: list[Any], *, name: str = "frame") -> QualityReport:
    """Validate ``df`` against GX expectation objects; never raises on a failed expectation."""
    import great_expectations as gx

    ctx = _get_context()
    with _ctx_lock:
        uid = f"{name}_{next(_counter)}"
        source = ctx.data_sources.add_pandas(f"src_{uid}")
        asset = source.add_dataframe_asset(f"asset_{uid}")
        batch_def = asset.add_batch_definition_whole_dataframe(f"batch_{uid}")
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"suite_{uid}", expectations=expectations))
    try:
        result = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(suite)
    finally:
        with _ctx_lock:
            ctx.suites.delete(suite.name)
            ctx.data_sources.delete(source.name)
    outcomes = []
    for r in result.results:
        res = r.result or {}
        kwargs = {k: v for k, v in r.expectation_config.kwargs.items() if v is not None}
        outcomes.append(
            ExpectationOutcome(
                expectation=r.expectation_config.type,
                kwargs=kwargs,
                success=bool(r.success),
                unexpected_count=res.get("unexpected_count"),
                unexpected_percent=res.get("unexpected_percent"),
                sample=[_jsonable(v) for v in (res.get("partial_unexpected_list") or [])][:10],
            )
        )
    return QualityReport(success=bool(result.success), outcomes=outcomes, rows=len(df))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
