"""creatorlens: the foundation every other layer stands on, and nothing more.

It holds what all of them read and none of them owns: the one settings object (``settings``),
the named-query loader over ``sql/queries`` (``queries``), logging (``logs``) and the field
cleaners shared by every reader of raw creator data (``fields``). Nothing here imports another
project package (the layer contract in pyproject.toml checks it).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("creatorlens")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"
