"""Parquet IO manager: one file per asset and partition, written atomically.

``<base_dir>/<asset/key/path>/<partition>.parquet`` (``__all__.parquet`` when unpartitioned).
A killed run leaves either the previous file or the new one, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field


class ParquetIOManager(dg.ConfigurableIOManager):
    base_dir: str = Field(default=".creatorlens/parquet")

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        key = context.asset_key.path
        partition = context.partition_key if context.has_partition_key else "__all__"
        return Path(self.base_dir).joinpath(*key) / f"{partition}.parquet"

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(f"ParquetIOManager stores pandas DataFrames, got {type(obj).__name__}")
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        obj.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path)), "rows": len(obj)})

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        path = self._path(context)
        if not path.exists():
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()} has no data for partition "
                f"{context.partition_key if context.has_partition_key else '(none)'} at {path}; materialise it first"
            )
        return pd.read_parquet(path)
