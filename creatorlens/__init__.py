"""creatorlens: raw creator data → reviewed, searchable facts in PostgreSQL + pgvector."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("creatorlens")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"
