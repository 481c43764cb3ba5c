"""Fetching model weights once (``creatorlens models pull``) and checking them (``models verify``).

Downloads are streamed to a temporary file, hashed while they stream, checked against the
catalog's pinned digest when there is one, and only then moved into the cache; the manifest
(``manifest.json``: model id, revision, source, per-file sha256 and size) is written last, so an
interrupted pull never looks complete. Hugging Face models are fetched with ``huggingface_hub``
(which verifies LFS files against their sha256) and then recorded the same way.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from gpu_ops.registry import (
    ModelSpec,
    WeightFile,
    problems,
    read_manifest,
    sha256_file,
    weights_dir,
    write_manifest,
)

log = logging.getLogger(__name__)


class PullError(RuntimeError):
    pass


@dataclass
class PullResult:
    spec: ModelSpec
    directory: Path
    files: dict[str, dict]
    skipped: bool


def _download(url: str, dest: Path, progress: Callable[[int, int | None], None] | None, timeout_s: float) -> str:
    digest = hashlib.sha256()
    with httpx.stream("GET", url, follow_redirects=True, timeout=timeout_s) as response:
        if response.status_code != 200:
            raise PullError(f"GET {url} answered HTTP {response.status_code}")
        total = int(response.headers["content-length"]) if "content-length" in response.headers else None
        done = 0
        with open(dest, "wb") as fh:
            for block in response.iter_bytes(1 << 20):
                fh.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
    return digest.hexdigest()


def _fetch_file(wf: WeightFile, directory: Path, tmp: Path, progress, timeout_s: float) -> dict:
    archive = tmp / (wf.name + ".download")
    archive_sha = _download(wf.url, archive, progress, timeout_s)
    if wf.member:
        with zipfile.ZipFile(archive) as zf:
            members = {Path(n).name: n for n in zf.namelist()}
            if wf.member not in members:
                raise PullError(f"{wf.url} has no member {wf.member!r} (has: {', '.join(sorted(members))})")
            with zf.open(members[wf.member]) as src, open(tmp / wf.name, "wb") as dst:
                shutil.copyfileobj(src, dst)
        sha = sha256_file(tmp / wf.name)
    else:
        archive.replace(tmp / wf.name)
        sha = archive_sha
    if wf.sha256 and sha != wf.sha256:
        raise PullError(f"{wf.name}: sha256 {sha} does not match the pinned {wf.sha256}; not installed")
    target = directory / wf.name
    directory.mkdir(parents=True, exist_ok=True)
    (tmp / wf.name).replace(target)
    return {"sha256": sha, "size": target.stat().st_size, "source": wf.url}


def _record_tree(directory: Path) -> dict[str, dict]:
    return {
        str(p.relative_to(directory)): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "manifest.json" and ".cache" not in p.parts
    }


def pull(
    spec: ModelSpec,
    cache_dir: Path,
    *,
    force: bool = False,
    source_dir: Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout_s: float = 600.0,
) -> PullResult:
    """Fetch ``spec``'s weights into the cache (no-op if already complete, unless ``force``).

    ``source_dir`` imports weights copied by hand (e.g. from a machine with internet) instead of
    downloading: the folder's files are copied in, hashed and recorded like a download.
    """
    directory = weights_dir(cache_dir, spec)
    if spec.bundled:
        return PullResult(spec, directory, {}, skipped=True)
    if not force and not problems(cache_dir, spec):
        return PullResult(spec, directory, read_manifest(directory).get("files", {}), skipped=True)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").unlink(missing_ok=True)
    started = time.time()
    revision = spec.revision
    with tempfile.TemporaryDirectory(dir=directory, prefix=".pull-") as tmpname:
        tmp = Path(tmpname)
        if source_dir is not None:
            for src in Path(source_dir).rglob("*"):
                if src.is_file():
                    dest = directory / src.relative_to(source_dir)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, dest)
            source = f"local:{Path(source_dir).resolve()}"
        elif spec.hub_repo:
            from huggingface_hub import snapshot_download

            snapshot_download(repo_id=spec.hub_repo, revision=spec.revision, local_dir=str(directory))
            source = f"hf:{spec.hub_repo}"
            try:
                from huggingface_hub import HfApi

                revision = HfApi().model_info(spec.hub_repo, revision=spec.revision).sha or revision
            except Exception as exc:  # network hiccup after a good download: keep the requested revision
                log.warning("could not resolve %s revision: %s", spec.hub_repo, exc)
        else:
            for wf in spec.files:
                _fetch_file(wf, directory, tmp, progress, timeout_s)
            source = ", ".join(wf.url for wf in spec.files)
    files = _record_tree(directory)
    for wf in spec.files:
        if wf.name not in files:
            raise PullError(f"{wf.name} is not in {directory} after the pull")
        if wf.sha256 and files[wf.name]["sha256"] != wf.sha256:
            raise PullError(f"{wf.name}: sha256 does not match the pinned {wf.sha256}; manifest not written")
    write_manifest(
        directory,
        {
            "family": spec.family,
            "backend": spec.backend,
            "model_id": spec.model_id,
            "revision": revision,
            "source": source,
            "pulled_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.time() - started, 2),
            "files": files,
        },
    )
    return PullResult(spec, directory, files, skipped=False)
