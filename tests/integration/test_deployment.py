"""The production deployment files agree with each other (no Docker engine runs here).

docker-compose.yml, deploy/workspace.docker.yaml, deploy/dagster.prod.yaml, the Dockerfile and the
local dagster.yaml are parsed; the code locations, ports, environment, volumes, network, GPU
reservation and pool/tag limits are checked against one another, and the production instance
config is loaded by Dagster itself (storage swapped for SQLite: no PostgreSQL server at
``postgres:5432`` here) so a typo in the launcher or coordinator config fails here, not on deploy.
"""

from __future__ import annotations

import json
import re

import dagster as dg
import docker.types
import pytest
import yaml
from dagster_docker import DockerRunLauncher
from dagster_docker.container_context import DockerContainerContext

from creatorlens.settings import REPO_ROOT
from orchestration.locations import CODE_LOCATIONS
from orchestration.schedules import REPROCESS_TAG

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
WORKSPACE = yaml.safe_load((REPO_ROOT / "deploy" / "workspace.docker.yaml").read_text())
PROD = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.prod.yaml").read_text())
LOCAL = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())
SERVICES = COMPOSE["services"]
LOCATIONS = [entry["grpc_server"] for entry in WORKSPACE["load_from"]]


def _flag(command: list[str], *names: str) -> str | None:
    for i, arg in enumerate(command[:-1]):
        if arg in names:
            return command[i + 1]
    return None


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def _container_context(service: str) -> DockerContainerContext:
    return DockerContainerContext.create_from_config(json.loads(_env(service)["DAGSTER_CONTAINER_CONTEXT"]))


def _instance_env_names(config: dict) -> set[str]:
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if set(node) == {"env"}:
                found.add(node["env"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


@pytest.mark.parametrize("location", LOCATIONS, ids=lambda loc: loc["location_name"])
def test_every_grpc_location_is_a_compose_service_on_its_port(location):
    service = SERVICES[location["host"]]
    command = service["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert _flag(command, "-p", "--port") == str(location["port"])
    assert _flag(command, "-h", "--host") == "0.0.0.0"
    assert _flag(command, "--location-name") == location["location_name"]
    assert _flag(command, "-m", "--module-name") == "orchestration.definitions"
    half = _env(location["host"])["CREATORLENS_CODE_LOCATION"]
    assert half in CODE_LOCATIONS and half != "all"  # "all" beside another location would duplicate assets
    # Run containers of the location load the same half.
    assert f"CREATORLENS_CODE_LOCATION={half}" in _container_context(location["host"]).env_vars
    assert _env(location["host"])["DAGSTER_CURRENT_IMAGE"] == service["image"]


def test_locations_cover_both_halves_once():
    halves = sorted(_env(loc["host"])["CREATORLENS_CODE_LOCATION"] for loc in LOCATIONS)
    assert halves == ["cpu", "gpu"]
    assert len({loc["port"] for loc in LOCATIONS}) == len(LOCATIONS)


def test_gpu_server_and_its_runs_reserve_an_nvidia_device():
    gpu_host = next(loc["host"] for loc in LOCATIONS if _env(loc["host"])["CREATORLENS_CODE_LOCATION"] == "gpu")
    devices = SERVICES[gpu_host]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    requests = _container_context(gpu_host).container_kwargs["device_requests"]
    host_config = docker.types.HostConfig(version="1.41", device_requests=requests)  # what docker-py sends
    assert host_config["DeviceRequests"][0]["Driver"] == "nvidia"
    assert host_config["DeviceRequests"][0]["Capabilities"] == [["gpu"]]
    for loc in LOCATIONS:
        if loc["host"] != gpu_host:
            assert "deploy" not in SERVICES[loc["host"]]
            assert "device_requests" not in _container_context(loc["host"]).container_kwargs


def test_webserver_and_daemon_load_the_docker_workspace_and_have_the_instance_env():
    needed = _instance_env_names(PROD) | set(PROD["run_launcher"]["config"]["env_vars"])
    for name in ("webserver", "daemon"):
        command = SERVICES[name]["command"]
        assert _flag(command, "-w", "--workspace") == "deploy/workspace.docker.yaml"
        assert needed <= set(_env(name)), (name, needed - set(_env(name)))
    assert "/var/run/docker.sock:/var/run/docker.sock" in SERVICES["daemon"]["volumes"]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY deploy/workspace\.docker\.yaml deploy/workspace\.docker\.yaml$", dockerfile, re.M)
    assert re.search(r"^COPY deploy/dagster\.prod\.yaml \$DAGSTER_HOME/dagster\.yaml$", dockerfile, re.M)
    for loc in LOCATIONS:  # sensors and assets open the warehouse in the code servers
        assert {"DATABASE_URL", "CREATORLENS_STATE_DIR"} <= set(_env(loc["host"]))


def test_run_containers_share_the_network_and_state_volume():
    launcher = PROD["run_launcher"]["config"]
    networks = COMPOSE["networks"]
    assert any(n.get("name") == launcher["network"] for n in networks.values())
    for mount in launcher["container_kwargs"]["volumes"]:
        volume, path = mount.split(":")[:2]
        declared = [k for k, v in COMPOSE["volumes"].items() if (v or {}).get("name") == volume]
        assert declared, f"run containers mount {volume!r}: compose must create it under that exact name"
        state_dir = _env(LOCATIONS[0]["host"])["CREATORLENS_STATE_DIR"]
        assert path == state_dir
        for loc in LOCATIONS:
            assert f"{declared[0]}:{path}" in SERVICES[loc["host"]]["volumes"]


def test_postgres_is_pgvector_and_creates_the_dagster_database():
    assert SERVICES["postgres"]["image"].startswith("pgvector/pgvector:")
    initdb = (REPO_ROOT / "deploy" / "initdb" / "01-dagster-db.sql").read_text()
    assert f"CREATE DATABASE {_env('webserver')['DAGSTER_PG_DB']}" in initdb


def _default(value: str) -> str:
    """The default of a compose ``${NAME:-default}`` value (the value itself when it has none)."""
    return value.split(":-", 1)[1].rstrip("}") if ":-" in value else value


def _bytes(size: str) -> int:
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    size = size.lower().rstrip("b")
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def test_postgres_gets_the_memory_the_search_needs_and_room_for_parallel_hnsw_builds():
    """shared_buffers sized for image_embeddings plus its HNSW index (README: ~4 GB per 500,000
    images), and /dev/shm at least maintenance_work_mem: a parallel HNSW build allocates the graph
    there, and Docker's 64 MB default fails it with "could not resize shared memory segment"."""
    command = SERVICES["postgres"]["command"]
    settings = dict(arg.split("=", 1) for arg in command[2::2])
    assert command[0] == "postgres" and set(command[1::2]) == {"-c"}
    assert _bytes(_default(settings["shared_buffers"])) >= 4 * 2**30
    assert _bytes(_default(SERVICES["postgres"]["shm_size"])) >= _bytes(_default(settings["maintenance_work_mem"]))


@pytest.mark.parametrize("config", [LOCAL, PROD], ids=["local", "prod"])
def test_gpu_pool_tag_limits_and_retries(config):
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["concurrency"]["pools"]["granularity"] == "op"
    tags = {t["key"] for t in config["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert {"dagster/backfill", REPROCESS_TAG} <= tags
    assert config["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert config["run_retries"]["enabled"] and config["run_retries"]["max_retries"] >= 1


def test_dagster_loads_the_production_instance_config(tmp_path):
    config = {**PROD, "storage": {"sqlite": {"base_dir": str(tmp_path / "storage")}}}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, DockerRunLauncher)
        assert launcher.networks == [PROD["run_launcher"]["config"]["network"]]
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        concurrency = instance.get_concurrency_config()  # what the daemon's run queue applies
        limits = {t["key"]: t["limit"] for t in concurrency.run_queue_config.tag_concurrency_limits}
        assert limits[REPROCESS_TAG] == 2 and concurrency.run_queue_config.max_concurrent_runs == 8
        assert concurrency.pool_config.default_pool_limit == 1
        assert instance.run_retries_enabled and instance.run_monitoring_enabled


def test_the_review_app_serves_the_same_warehouse_and_blob_store_as_the_pipeline():
    app, cpu = SERVICES["app"], LOCATIONS[0]["host"]
    assert app["command"][:3] == ["creatorlens", "app", "serve"] and "0.0.0.0" in app["command"]
    assert app["image"] == SERVICES[cpu]["image"]
    env = _env("app")
    assert env["DATABASE_URL"] == _env(cpu)["DATABASE_URL"]
    assert f"creatorlens-state:{env['CREATORLENS_STATE_DIR']}" in app["volumes"]
    assert any(p.endswith(":8000") for p in app["ports"])


def test_run_containers_get_room_in_dev_shm_for_the_vision_pool():
    """The vision steps' worker pool passes images through /dev/shm (gpu_ops.pool); Docker gives a container
    64 MB, less than one batch of photos, and the pool would fall back to pickling."""
    size = PROD["run_launcher"]["config"]["container_kwargs"]["shm_size"]
    host_config = docker.types.HostConfig(version="1.41", shm_size=size)  # what docker-py sends
    assert host_config["ShmSize"] >= 1 << 30
