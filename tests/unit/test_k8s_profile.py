"""The Kubernetes profile (deploy/k8s), validated offline with Dagster's and dagster-k8s's own code.

No cluster runs here: the instance yaml goes through Dagster's instance loader, the launcher is
built from it by Dagster's configurable-class machinery, the executor config through the
``k8s_job_executor``'s own schema, and the step Jobs for a GPU and a CPU step are built the way
the executor builds them (container contexts merged launcher → executor → op tag, then
``construct_dagster_k8s_job``).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

dagster_k8s = pytest.importorskip("dagster_k8s", reason="the k8s extra (dagster-k8s) is not installed")

import dagster as dg  # noqa: E402
from dagster._config import validate_config  # noqa: E402
from dagster._core.instance.config import dagster_instance_config  # noqa: E402
from dagster._serdes import ConfigurableClassData  # noqa: E402
from dagster_k8s import K8sRunLauncher, k8s_job_executor  # noqa: E402
from dagster_k8s.container_context import K8sContainerContext  # noqa: E402
from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job, get_user_defined_k8s_config  # noqa: E402

from assets.common.metadata import GPU_POOL, K8S_NODE_POOL_LABEL  # noqa: E402
from orchestration.jobs import K8S_STEP_CONFIG, executor_for, k8s_executor_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
FIRST_PARTY = {"creatorlens", "orchestration", "assets", "resources", "gpu_ops", "app"}

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


@pytest.fixture(scope="module")
def instance_config() -> dict:
    config, custom_class = dagster_instance_config(str(K8S), "dagster.k8s.yaml")
    assert custom_class is None
    return dict(config)


@pytest.fixture(scope="module")
def launcher(instance_config, tmp_path_factory) -> K8sRunLauncher:
    """The real launcher, rehydrated from the instance yaml; only the kubeconfig differs (no cluster here)."""
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    kubeconfig.write_text(KUBECONFIG)
    section = instance_config["run_launcher"]
    config = {**section["config"], "load_incluster_config": False, "kubeconfig_file": str(kubeconfig)}
    launcher = ConfigurableClassData(section["module"], section["class"], yaml.safe_dump(config)).rehydrate(
        K8sRunLauncher)
    assert isinstance(launcher, K8sRunLauncher)
    return launcher


@pytest.fixture(scope="module")
def step_tags() -> dict[str, dict[str, str]]:
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    tags = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        tags[key.to_user_string()] = (dict(node.assets_def.op.tags), set(node.pools or ()))
    return tags


def test_instance_yaml_loads_through_dagsters_schema_with_the_k8s_launcher(instance_config, launcher):
    assert instance_config["run_launcher"]["class"] == "K8sRunLauncher"
    assert instance_config["run_monitoring"]["enabled"] and instance_config["run_retries"]["enabled"]
    assert instance_config["run_retries"]["max_retries"] >= 1
    assert set(instance_config["storage"]) == {"postgres"}
    # The launcher's own schema, and what the launcher made of it.
    result = validate_config(K8sRunLauncher.config_type(), instance_config["run_launcher"]["config"])
    assert result.success, result.errors
    assert launcher.job_namespace == "creatorlens"
    assert launcher.instance_config_map == "dagster-instance"
    assert "CREATORLENS_RUN_EXECUTOR=k8s" in launcher.env_vars
    assert any(m["mountPath"] == "/data/creatorlens" for m in launcher.volume_mounts)


def test_a_wrong_launcher_key_is_refused_by_the_launchers_schema(instance_config):
    bad = {**instance_config["run_launcher"]["config"], "job_namespaces": "typo"}
    assert not validate_config(K8sRunLauncher.config_type(), bad).success


def test_helm_values_match_the_instance_yaml(instance_config):
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher = instance_config["run_launcher"]["config"]
    assert k8s["jobNamespace"] == launcher["job_namespace"]
    assert k8s["envVars"] == launcher["env_vars"]
    assert [s["name"] for s in k8s["envSecrets"]] == launcher["env_secrets"]
    assert k8s["volumeMounts"] == launcher["volume_mounts"] and k8s["volumes"] == launcher["volumes"]
    assert values["postgresql"]["enabled"] is False and values["global"]["postgresqlSecretName"] == \
        launcher["postgres_password_secret"]
    daemon = values["dagsterDaemon"]
    assert daemon["runMonitoring"]["enabled"] and daemon["runRetries"]["maxRetries"] == \
        instance_config["run_retries"]["max_retries"]
    assert daemon["runCoordinator"]["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] == \
        instance_config["concurrency"]["runs"]["max_concurrent_runs"]
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "orchestration.definitions"]


def test_k8s_executor_config_passes_the_executors_own_schema():
    schema = k8s_job_executor.config_schema.config_type
    result = validate_config(schema, k8s_executor_config(3))
    assert result.success, result.errors
    assert not validate_config(schema, {**k8s_executor_config(), "step_k8s_configs": {}}).success
    executor = executor_for("k8s", 3)
    assert isinstance(executor, dg.ExecutorDefinition) and executor.name == "k8s"


def _step_job(launcher: K8sRunLauncher, tags: dict[str, str], step_key: str):
    """A step's Kubernetes Job, merged as k8s_job_executor's step handler merges it."""
    run = dg.DagsterRun(job_name="ingest_batch", run_id="0f0e0d0c-0000-4000-8000-000000000000")
    executor_context = K8sContainerContext(
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(k8s_executor_config()["step_k8s_config"]))
    context = (K8sContainerContext.create_for_run(run, launcher, include_run_tags=False)
               .merge(executor_context)
               .merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags))))
    job_config = context.get_k8s_job_config("registry.example.com/creatorlens:0.1.0", launcher)
    job = construct_dagster_k8s_job(job_config, args=["dagster", "api", "execute_step"],
                                    job_name=f"dagster-step-{step_key.replace('__', '-')}"[:63],
                                    user_defined_k8s_config=context.run_k8s_config, component="step_worker")
    return job.spec.template.spec


def test_gpu_step_pods_ask_for_a_gpu_on_gpu_nodes_and_cpu_steps_stay_on_cpu_nodes(launcher, step_tags):
    gpu_assets = {k for k, (_, pools) in step_tags.items() if GPU_POOL in pools}
    assert {"images/embeddings", "vision/persons"} <= gpu_assets
    for key, (tags, pools) in step_tags.items():  # the tag on exactly the GPU-pool assets
        assert ("dagster-k8s/config" in tags) == (GPU_POOL in pools), key

    gpu = _step_job(launcher, step_tags["images/embeddings"][0], "images__embeddings")
    (container,) = gpu.containers
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert container.resources.requests["cpu"] == "1"  # the executor's defaults survive the merge
    assert gpu.node_selector == {K8S_NODE_POOL_LABEL: "gpu"}
    assert [(t.key, t.operator, t.effect) for t in gpu.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    mounts = {m.mount_path: m.name for m in container.volume_mounts}
    assert set(mounts) == {"/data/creatorlens", "/dev/shm"}  # the launcher's, and the pool's shared memory
    volumes = {v.name: v for v in gpu.volumes}
    assert volumes[mounts["/dev/shm"]].empty_dir.medium == "Memory"
    assert volumes[mounts["/data/creatorlens"]].persistent_volume_claim.claim_name == "creatorlens-state"
    assert {e.name: e.value for e in container.env}["DAGSTER_HOME"] == "/opt/dagster/home"

    cpu = _step_job(launcher, step_tags["creators/tags"][0], "creators__tags")
    (container,) = cpu.containers
    assert "nvidia.com/gpu" not in (container.resources.limits or {})
    assert cpu.node_selector == K8S_STEP_CONFIG["pod_spec_config"]["node_selector"] == {K8S_NODE_POOL_LABEL: "cpu"}
    assert not cpu.tolerations
    assert cpu.volumes[0].persistent_volume_claim.claim_name == "creatorlens-state"


# ---------------------------------------------------------------------------------------------
# The image: the Dockerfile copies every first-party package and installs every distribution the
# steps import (the project's requirements, closed over their own, for the extras it bakes in).
# ---------------------------------------------------------------------------------------------
def _dockerfile() -> tuple[set[str], set[str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    copied = {line.split()[1] for line in text.splitlines() if line.startswith("COPY ")}
    installs: set[str] = set()
    for line in text.splitlines():
        if line.startswith("RUN ") and "pip install" in line:
            words = shlex.split(re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], ""), line))
            after = words[words.index("install") + 1:]
            installs |= {w for w in after if not w.startswith("-") and not w.startswith("http") and w != "&&"}
            installs = {w for w in installs if w.startswith(".")}
    return copied, installs


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[str], extras: set[str]) -> set[str]:
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [(r, extras) for r in requirements]
    while todo:
        raw, wanted = todo.pop()
        req = Requirement(raw)
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (wanted or {""})):
            continue
        name = _norm(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            todo += [(r, set(req.extras)) for r in (md.requires(req.name) or [])]
        except md.PackageNotFoundError:
            pass
    return seen


def _step_imports() -> set[str]:
    names: set[str] = set()
    for package in sorted(FIRST_PARTY - {"app"}):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in FIRST_PARTY and n != "__future__"}


def test_the_dockerfile_installs_every_package_the_steps_import():
    copied, installs = _dockerfile()
    assert FIRST_PARTY <= copied, f"not copied into the image: {FIRST_PARTY - copied}"
    (target,) = installs
    extras = set(re.findall(r"\[([^\]]*)\]", target)[0].split(",")) if "[" in target else set()
    assert "k8s" in extras, "the image must carry dagster-k8s for K8sRunLauncher/k8s_job_executor"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]
    installed = _closure(requirements, set())
    to_dist = md.packages_distributions()
    # ray is imported only on the Ray path (resources/ray_cluster.py, CREATORLENS_RAY_ADDRESS): the image
    # carries it when built with EXTRAS=k8s,ray; dagster_k8s must always be there.
    optional = set() if "ray" in extras else {"ray"}
    missing = {}
    for module in sorted(_step_imports() - optional):
        dists = {_norm(d) for d in to_dist.get(module, [])}
        if not dists & installed:
            missing[module] = sorted(dists) or "not installed here either"
    assert not missing, f"imported by the steps but not installed by the Dockerfile: {missing}"
    assert "dagster_k8s" in _step_imports()


def test_the_state_volume_claim_is_a_valid_read_write_many_claim_named_as_the_pods_mount_it(launcher):
    import kubernetes
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict

    cls = kubernetes.client.V1PersistentVolumeClaim
    manifest = yaml.safe_load((K8S / "state-pvc.yaml").read_text())
    claim = k8s_model_from_dict(cls, k8s_snake_case_dict(cls, manifest))  # refuses unknown keys
    assert claim.spec.access_modes == ["ReadWriteMany"]  # CPU and GPU nodes mount it at once
    assert claim.metadata.namespace == launcher.job_namespace
    assert [v["persistentVolumeClaim"]["claimName"] for v in launcher.volumes] == [claim.metadata.name]
