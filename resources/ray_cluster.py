"""Image embedding on a Ray cluster: Ray Data, decode on CPU tasks, one model replica per actor.

Used by the ``images/embeddings`` step when ``CREATORLENS_RAY_ADDRESS`` is set (the ``ray``
extra); unset, the step embeds in its own process exactly as before. The pipeline is

    from_items(paths) ─► map(decode, CPU tasks) ─► map_batches(_Embed actor pool) ─► rows in order

* decode runs as plain Ray tasks (``num_cpus`` each), anywhere in the cluster;
* the actor pool holds ``actors`` model replicas; each asks for ``num_gpus`` (Ray then sets
  ``CUDA_VISIBLE_DEVICES`` to its own GPU, so ``device=auto`` inside it is that GPU: one replica
  per GPU with Ray assigning the devices) or, instead, a custom resource (``actor_resource``,
  e.g. a node label standing in for a GPU on CPU-only nodes, as the tests do);
* actors restart and their batches are retried when a worker dies (Ray Data's actor pools default
  to unlimited ``max_restarts`` and ``max_task_retries``); a batch that still cannot finish fails
  the step with Ray's error, and a re-run computes the same vectors (the model and its inputs are deterministic).

The model is rebuilt inside each actor from the :class:`~resources.models.ModelRegistry` fields
(the same weights, backend and cache directory, which every node must see: the shared state
volume of deploy/k8s, or the same local paths on one box).

``address="local"`` starts an in-process Ray for the caller (benchmarks); ``auto`` or
``ray://host:10001`` or ``host:6379`` joins a running cluster.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gpu_ops.loader import decode_rgb

log = logging.getLogger(__name__)

FAMILY = "image_embedder"


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def load_registry_embedder(registry_fields: dict[str, Any], family: str = FAMILY):
    """The loaded embedder, rebuilt from a ModelRegistry's fields (runs inside an actor)."""
    from resources.models import ModelRegistry

    return ModelRegistry(**registry_fields).load(family)


def registry_fields(models: Any) -> dict[str, Any]:
    """What rebuilds ``models`` (a ModelRegistry) elsewhere: its config fields, plain values."""
    return {name: getattr(models, name) for name in ("cache_dir", "device", "backends", "weights", "batch_size")}


def _decode(row: dict[str, Any], max_side: int | None) -> dict[str, Any]:
    try:
        pixels = decode_rgb(row["path"], max_side=max_side)
        return {"idx": row["idx"], "ok": True, "error": "", "pixels": pixels}
    except Exception as exc:  # a bad image is a recorded row, never a failed batch
        return {"idx": row["idx"], "ok": False, "error": f"{type(exc).__name__}: {exc}"[:1000],
                "pixels": np.zeros((1, 1, 3), np.uint8)}


class _Embed:
    """One model replica (a Ray actor of the pool): embeds the decoded rows of each batch it is given."""

    def __init__(self, make_embedder, batch_size: int) -> None:
        import ray

        self.embedder = make_embedder()
        self.batch_size = batch_size
        self.node_id = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        ok = [bool(v) for v in batch["ok"]]
        arrays = [np.asarray(batch["pixels"][i]) for i, good in enumerate(ok) if good]
        vectors = self.embedder.embed_images(arrays, batch_size=self.batch_size) if arrays else []
        dim = len(vectors[0]) if len(vectors) else 0
        out, it = [], iter(vectors)
        for good in ok:
            out.append(np.asarray(next(it), np.float32) if good else np.zeros(dim, np.float32))
        return {"idx": batch["idx"], "ok": batch["ok"], "error": batch["error"],
                "embedding": out, "node_id": [self.node_id] * len(ok)}


@dataclass
class RayEmbedResult:
    """Per input, in input order: the vector or the error; and where each row was embedded."""

    vectors: list[np.ndarray | None]
    errors: list[str | None]
    node_ids: list[str | None] = field(default_factory=list)


@dataclass
class RayEmbedding:
    """Embedding through Ray Data on the cluster at ``address`` (see the module docstring)."""

    address: str
    actors: int = 1
    num_gpus: float = 1.0
    actor_resource: str | None = None
    actor_cpus: float = 1.0
    decode_cpus: float = 1.0
    batch_size: int = 16
    runtime_env: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, config: Any, batch_size: int) -> RayEmbedding:
        """From TaggingConfig's ray_* knobs."""
        return cls(address=config.ray_address, actors=config.ray_actors, num_gpus=config.ray_gpus_per_actor,
                   actor_resource=config.ray_actor_resource or None, batch_size=batch_size)

    def _connect(self) -> None:
        import ray

        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"log_to_driver": False, "runtime_env": self.runtime_env}
        if self.address == "local":
            ray.init(include_dashboard=False, **kwargs)
        else:
            ray.init(address=self.address, **kwargs)

    def actor_options(self) -> dict[str, Any]:
        """What each replica asks of the scheduler: a GPU, or a custom resource standing in for one."""
        # Ray Data's actor pools already restart dead actors and retry their tasks (max_restarts and
        # max_task_retries default to -1 there), which is what survives a lost worker.
        options: dict[str, Any] = {"num_cpus": self.actor_cpus}
        if self.actor_resource:
            options["resources"] = {self.actor_resource: 1}
        elif self.num_gpus:
            options["num_gpus"] = self.num_gpus
        return options

    def embed_paths(self, paths: Sequence[str], make_embedder, max_side: int | None) -> RayEmbedResult:
        """Decode and embed the images at ``paths`` (local to every node), results in input order."""
        if not paths:
            return RayEmbedResult([], [], [])
        import ray.data

        self._connect()
        context = ray.data.DataContext.get_current()  # the step's log gets our summary, not progress bars
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        ds = ray.data.from_items([{"idx": i, "path": str(p)} for i, p in enumerate(paths)],
                                 override_num_blocks=max(1, min(len(paths), 4 * self.actors)))
        ds = ds.map(functools.partial(_decode, max_side=max_side), num_cpus=self.decode_cpus)
        ds = ds.map_batches(_Embed, fn_constructor_args=(make_embedder, self.batch_size),
                            batch_size=self.batch_size,
                            compute=ray.data.ActorPoolStrategy(size=self.actors), **self.actor_options())
        rows = sorted(ds.take_all(), key=lambda r: int(r["idx"]))
        if [int(r["idx"]) for r in rows] != list(range(len(paths))):
            raise RuntimeError(f"Ray returned {len(rows)} rows for {len(paths)} images")
        return RayEmbedResult(
            vectors=[np.asarray(r["embedding"], np.float32) if r["ok"] else None for r in rows],
            errors=[None if r["ok"] else str(r["error"]) for r in rows],
            node_ids=[str(r["node_id"]) for r in rows],
        )


# ---------------------------------------------------------------------------------------------
# A local multi-node cluster on this machine (tests, benchmarks, trying the Ray path on one box)
# ---------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(procs: list[subprocess.Popen], grace_s: float = 5.0) -> None:
    """Stop the `ray start --block` children we started (their process groups), never `ray stop`,
    which would stop every Ray of the machine."""
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        try:  # whatever of the group is left (gcs_server takes its time on SIGTERM)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)


@dataclass
class LocalCluster:
    address: str
    worker_node_ids: list[str]


@contextmanager
def local_cluster(*, head_cpus: float = 1, workers: Sequence[dict[str, Any]] = ({"num_cpus": 1},),
                  object_store_bytes: int = 80 * 1024 * 1024, pythonpath: str | None = None,
                  start_timeout_s: float = 90.0) -> Iterator[LocalCluster]:
    """A head and ``workers`` (each ``{"num_cpus": n, "resources": {...}}``) on 127.0.0.1, each a
    ``ray start --block`` child of ours, connected to from this process;
    all stopped on exit. ``pythonpath`` is prepended to the nodes' PYTHONPATH (where our code is)."""
    import json

    import ray

    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    # Ray 2.60 turns token auth on by default for `ray start`, but a driver reads its token when ray is
    # first imported, before any cluster of ours exists: this throwaway cluster, bound to 127.0.0.1 and
    # gone on exit, opts out. A real cluster keeps token auth (RAY_AUTH_TOKEN on every node and driver).
    auth = {"RAY_AUTH_MODE": "disabled", "RAY_ENABLE_AUTO_CONNECT": "0"}
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **auth}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, os.environ.get("PYTHONPATH")) if p)
    common = ["--block", "--node-ip-address", "127.0.0.1", "--object-store-memory", str(object_store_bytes),
              "--num-gpus", "0", "--disable-usage-stats"]

    def start(args: list[str]) -> subprocess.Popen:
        log = open(temp / f"node-{len(procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([ray_bin, "start", *args, *common], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    procs: list[subprocess.Popen] = []
    saved = {k: os.environ.get(k) for k in auth}
    try:
        procs.append(start(["--head", "--port", str(port), "--num-cpus", str(head_cpus),
                            "--include-dashboard", "false", "--temp-dir", str(temp)]))
        deadline = time.monotonic() + start_timeout_s
        while not _listening(port):
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError(f"the Ray head did not start; see {temp}/node-0.log")
            time.sleep(0.2)
        for worker in workers:
            procs.append(start(["--address", f"127.0.0.1:{port}", "--num-cpus", str(worker.get("num_cpus", 1)),
                                "--resources", json.dumps(worker.get("resources", {}))]))
        os.environ.update(auth)  # this process joins with the same token
        ray.init(address=f"127.0.0.1:{port}", _node_ip_address="127.0.0.1", log_to_driver=False)
        while len([n for n in ray.nodes() if n["Alive"]]) < 1 + len(workers):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray workers did not join; see {temp}/node-*.log")
            time.sleep(0.2)
        log.info("local Ray cluster at 127.0.0.1:%d (%d workers)", port, len(workers))
        worker_ids = [n["NodeID"] for n in ray.nodes() if n["Alive"] and not n["Resources"].get(
            "node:__internal_head__")]
        yield LocalCluster(address=f"127.0.0.1:{port}", worker_node_ids=worker_ids)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        _stop(procs)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(temp, ignore_errors=True)
