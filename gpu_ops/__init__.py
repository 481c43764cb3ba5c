"""Pure compute helpers: no dagster/sqlalchemy/httpx imports."""

from gpu_ops.prefetch import batched, prefetch_map

__all__ = ["batched", "prefetch_map"]
