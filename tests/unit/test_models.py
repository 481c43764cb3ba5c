"""Model layer foundations: the torchvision CPU shim, device choice, the backend contract, the model
cache, the weights catalog and `models pull`.

Downloads are served by a real HTTP server on 127.0.0.1 (no machine here reaches GitHub or a hub).
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from gpu_ops.base import ModelBackend
from gpu_ops.cache import ModelCache, cache_key
from gpu_ops.compat import ensure_torchvision, nms_reference
from gpu_ops.detection import YoloPersonDetector
from gpu_ops.device import Device, DeviceUnavailable, choose_device, cuda_available
from gpu_ops.faces import ArcFaceEmbedder
from gpu_ops.registry import (
    ModelSpec,
    WeightFile,
    WeightsMissing,
    get_spec,
    problems,
    read_manifest,
    resolve,
    weights_dir,
)
from resources.model_pull import PullError, pull
from tests.support.http import Route, serve_cdn

ROOT = Path(__file__).resolve().parents[2]


def _brute_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    keep: list[int] = []
    for i in scores.argsort(descending=True).tolist():
        ok = True
        for j in keep:
            a, b = boxes[i], boxes[j]
            iw = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
            ih = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
            inter = iw * ih
            union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
            if inter / union > thr:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def test_nms_reference_matches_a_brute_force_sweep() -> None:
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(200, 2, generator=gen) * 300
    wh = torch.rand(200, 2, generator=gen) * 80 + 5
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(200, generator=gen)
    for thr in (0.3, 0.5, 0.7):
        assert nms_reference(boxes, scores, thr).tolist() == _brute_nms(boxes, scores, thr)
    assert nms_reference(torch.empty(0, 4), torch.empty(0), 0.5).numel() == 0


def test_torchvision_imports_and_nms_dispatches_after_the_shim() -> None:
    shimmed = ensure_torchvision()
    assert ensure_torchvision() is shimmed  # idempotent
    import torchvision

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float)
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]
    if cuda_available():
        assert not shimmed  # a real CUDA install loads torchvision's own kernels


def test_device_choice_and_forcing() -> None:
    assert choose_device("cpu").torch == "cpu"
    assert not choose_device("cpu").fp16
    assert choose_device("cpu").onnx_providers == ["CPUExecutionProvider"]
    with pytest.raises(ValueError, match="unknown device"):
        choose_device("tpu")
    if cuda_available():
        assert choose_device("auto").kind == "cuda" and choose_device("auto").fp16
    else:
        assert choose_device("auto").kind == "cpu"
        with pytest.raises(DeviceUnavailable, match="forced"):
            choose_device("cuda")


def test_the_device_is_an_argument_never_read_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("CREATORLENS_DEVICE", "cuda:7")  # ignored: the caller passes Settings.device
    assert choose_device().kind == choose_device("auto").kind == ("cuda" if cuda_available() else choose_device().kind)
    assert choose_device(preference=("cpu",)) == Device("cpu")
    assert choose_device(Device("cpu", 0)) == Device("cpu")  # a Device is used as given
    assert choose_device(" CPU ").torch == "cpu"
    with pytest.raises(ValueError, match="unknown device"):
        choose_device("cpu:1")
    with pytest.raises(DeviceUnavailable, match="forced"):
        choose_device("cuda:99")


class Counting(ModelBackend[int]):
    """Doubles numbers; counts its loads. ``options["on_load"]`` runs inside ``_load`` (slow, failing…)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.load_calls = 0

    def _load(self) -> None:
        self.load_calls += 1
        if hook := self.options.get("on_load"):
            hook(self)
        self.factor = 2

    def _predict(self, batch: list[int]) -> list[int]:
        return [self.factor * x for x in batch]


SPEC = ModelSpec("test_family", "counting", Counting, "counting-model", "1")
CPU = Device("cpu")


def test_backend_contract_cheap_constructor_lazy_idempotent_load_and_one_result_per_input() -> None:
    backend = Counting(SPEC, None, "cpu")
    assert backend.device is None and not backend.loaded  # nothing chosen or loaded by the constructor
    assert backend.predict([]) == [] and not backend.loaded  # an empty batch loads nothing
    assert backend.predict((1, 2, 3)) == [2, 4, 6]
    assert backend.loaded and backend.device == CPU
    backend.load()
    assert backend.predict([4]) == [8] and backend.load_calls == 1

    class Short(Counting):
        def _predict(self, batch: list[int]) -> list[int]:
            return super()._predict(batch)[:-1]

    with pytest.raises(RuntimeError, match="2 results for 3 inputs"):
        Short(SPEC, None, CPU).predict([1, 2, 3])


def _run_threads(targets) -> list:
    results, errors = [None] * len(targets), []

    def run(i, target):
        try:
            results[i] = target()
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    return results


def test_model_cache_loads_a_model_once_for_concurrent_callers() -> None:
    cache = ModelCache()
    options = {"on_load": lambda _: time.sleep(0.2)}  # a slow load: every thread arrives while it runs
    key = cache_key(SPEC, None, CPU, options)
    built: list[Counting] = []

    def build() -> Counting:
        built.append(Counting(SPEC, None, CPU, options))
        return built[-1]

    got = _run_threads([lambda: cache.get(key, build)] * 4)
    assert len(built) == 1 and built[0].load_calls == 1
    assert all(b is built[0] for b in got) and built[0].loaded


def test_model_cache_loads_different_models_in_parallel() -> None:
    cache = ModelCache()
    barrier = threading.Barrier(2, timeout=10)  # both loads must be inside _load at once, or this breaks
    options = [{"on_load": lambda _: barrier.wait(), "n": n} for n in range(2)]
    got = _run_threads([lambda o=o: cache.get(cache_key(SPEC, None, CPU, o), lambda: Counting(SPEC, None, CPU, o))
                        for o in options])
    assert got[0] is not got[1] and all(b.loaded for b in got) and len(cache) == 2


def test_a_failed_load_is_not_cached() -> None:
    cache = ModelCache()
    attempts: list[Counting] = []

    def flaky(backend: Counting) -> None:
        attempts.append(backend)
        if len(attempts) == 1:
            raise OSError("weights not readable yet")

    options = {"on_load": flaky}
    key = cache_key(SPEC, None, CPU, options)
    with pytest.raises(OSError, match="not readable"):
        cache.get(key, lambda: Counting(SPEC, None, CPU, options))
    assert key not in cache and len(cache) == 0
    again = cache.get(key, lambda: Counting(SPEC, None, CPU, options))
    assert again.loaded and again is not attempts[0] and key in cache


def test_model_cache_evicts_the_least_recently_used_and_idle_models_and_clears() -> None:
    now = [0.0]
    cache = ModelCache(max_models=2, idle_s=10, clock=lambda: now[0])

    def get(name: str) -> Counting:
        return cache.get(name, lambda: Counting(SPEC, None, CPU))

    a = get("a")
    now[0] = 1
    get("b")
    now[0] = 2
    assert get("a") is a  # a hit, and a is now the most recently used
    now[0] = 3
    get("c")  # over the bound: b, the least recently used, goes
    assert "a" in cache and "b" not in cache and "c" in cache and len(cache) == 2
    now[0] = 14  # a (used at 2) and c (used at 3) have been idle longer than 10 s
    d = get("d")
    assert len(cache) == 1 and "d" in cache
    assert a.predict([1]) == [2]  # an evicted backend keeps working for whoever holds it
    unloaded = cache.get("e", lambda: Counting(SPEC, None, CPU), load=False)
    assert not unloaded.loaded and cache.get("e", lambda: Counting(SPEC, None, CPU)) is unloaded and unloaded.loaded
    cache.clear()
    assert len(cache) == 0 and get("d") is not d
    with pytest.raises(ValueError):
        ModelCache(max_models=0)


def test_the_catalog_names_backend_classes_and_importing_it_imports_no_model_library() -> None:
    from gpu_ops.registry import CATALOG

    assert all(issubclass(s.backend_cls, ModelBackend) for specs in CATALOG.values() for s in specs)
    heavy = ("torch", "torchvision", "transformers", "sentence_transformers", "open_clip", "ultralytics",
             "mediapipe", "onnxruntime", "cv2", "rapidocr_onnxruntime", "dagster", "sqlalchemy", "httpx")
    code = (f"import sys, gpu_ops.registry, gpu_ops.cache; "
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # each library is imported by its backend's load()


def test_gpu_ops_reads_no_environment() -> None:
    """Settings (creatorlens.settings) read the environment once; the model code only takes arguments."""
    import ast

    env = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}
    readers = []
    for path in sorted((ROOT / "gpu_ops").rglob("*.py")):
        tree = ast.parse(path.read_text())
        # The one exception: CUDA_VISIBLE_DEVICES is the CUDA runtime's own variable (torch reads it
        # too), read in exactly this function to know which physical GPUs the process sees.
        allowed = {n for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "cuda_visible_devices"
                   and path.name == "devices.py" for n in ast.walk(f)}
        for node in ast.walk(tree):
            if node in allowed:
                continue
            if (isinstance(node, ast.Attribute) and node.attr in env and isinstance(node.value, ast.Name)
                    and node.value.id == "os") or (isinstance(node, ast.ImportFrom) and node.module == "os"
                                                   and env & {a.name for a in node.names}):
                readers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert readers == []


def test_missing_weights_fall_back_to_a_bundled_cpu_backend(tmp_path: Path) -> None:
    assert resolve("person_detector", tmp_path).backend == "mediapipe"
    with pytest.raises(WeightsMissing) as err:
        resolve("person_detector", tmp_path, backend="yolo")
    assert "creatorlens models pull person_detector --backend yolo" in str(err.value)
    with pytest.raises(WeightsMissing, match="models pull image_embedder"):
        resolve("image_embedder", tmp_path)  # no CPU fallback ships in a wheel for embeddings
    with pytest.raises(KeyError, match="unknown model family"):
        get_spec("telepathy")


def _zip_with(member: str, payload: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"pack/{member}", payload)
        zf.writestr("pack/other.onnx", b"not selected")
    return buf.getvalue()


def test_pull_downloads_verifies_and_makes_the_backend_resolvable(tmp_path: Path) -> None:
    weights = b"\x00fake-yolo-checkpoint" * 1000
    with serve_cdn() as cdn:
        cdn.routes["/yolov8s.pt"] = Route(200, weights, "application/octet-stream")
        spec = ModelSpec(
            "person_detector", "yolo", YoloPersonDetector, "yolov8s", "8.3.0",
            files=(WeightFile("yolov8s.pt", cdn.url("yolov8s.pt"), hashlib.sha256(weights).hexdigest()),),
        )
        first = pull(spec, tmp_path)
        again = pull(spec, tmp_path)
        assert cdn.hits.count("/yolov8s.pt") == 1  # a complete pull is not repeated
    assert not first.skipped and again.skipped
    directory = weights_dir(tmp_path, spec)
    assert (directory / "yolov8s.pt").read_bytes() == weights
    manifest = read_manifest(directory)
    assert manifest["files"]["yolov8s.pt"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert problems(tmp_path, spec) == []
    # the real catalog entry (same family/backend/model id) now resolves to YOLO
    assert resolve("person_detector", tmp_path).backend == "yolo"

    (directory / "yolov8s.pt").write_bytes(weights[:-1] + b"X")  # same size, different bytes
    assert problems(tmp_path, spec) == []  # the per-load check is size only…
    assert problems(tmp_path, spec, deep=True) == ["yolov8s.pt does not match its recorded sha256"]
    (directory / "yolov8s.pt").write_bytes(weights[:100])  # truncated
    assert "manifest says" in problems(tmp_path, spec)[0]
    assert resolve("person_detector", tmp_path).backend == "mediapipe"


def test_pull_extracts_an_archive_member_and_refuses_a_wrong_digest(tmp_path: Path) -> None:
    payload = b"onnx-bytes" * 100
    with serve_cdn() as cdn:
        cdn.routes["/buffalo_l.zip"] = Route(200, _zip_with("w600k_r50.onnx", payload), "application/zip")
        good = ModelSpec("face_embedder", "arcface", ArcFaceEmbedder, "insightface-buffalo_l-w600k_r50",
                         files=(WeightFile("w600k_r50.onnx", cdn.url("buffalo_l.zip"), member="w600k_r50.onnx"),))
        result = pull(good, tmp_path / "a")
        assert result.files["w600k_r50.onnx"]["sha256"] == hashlib.sha256(payload).hexdigest()
        assert (weights_dir(tmp_path / "a", good) / "w600k_r50.onnx").read_bytes() == payload
        assert not (weights_dir(tmp_path / "a", good) / "other.onnx").exists()

        pinned = ModelSpec("face_embedder", "arcface", ArcFaceEmbedder, "insightface-buffalo_l-w600k_r50",
                           files=(WeightFile("w600k_r50.onnx", cdn.url("buffalo_l.zip"), "0" * 64, "w600k_r50.onnx"),))
        with pytest.raises(PullError, match="does not match the pinned"):
            pull(pinned, tmp_path / "b")
        assert read_manifest(weights_dir(tmp_path / "b", pinned)) == {}  # never looks complete
        missing = ModelSpec("face_embedder", "arcface", ArcFaceEmbedder, "m", files=(WeightFile("w.onnx", cdn.url("nope.zip")),))
        with pytest.raises(PullError, match="HTTP 404"):
            pull(missing, tmp_path / "c")


def test_models_cli_lists_and_imports_weights_from_a_folder(tmp_path: Path, monkeypatch) -> None:
    from orchestration.cli import cli

    monkeypatch.setenv("CREATORLENS_MODEL_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    listed = runner.invoke(cli, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert "hog" in listed.output and "missing" in listed.output and "bundled" in listed.output

    hand_copied = tmp_path / "copied"
    hand_copied.mkdir()
    (hand_copied / "yolov8s.pt").write_bytes(b"checkpoint")
    pulled = runner.invoke(cli, ["models", "pull", "person_detector", "--backend", "yolo", "--from", str(hand_copied)])
    assert pulled.exit_code == 0, pulled.output
    assert "pulled, 1 files" in pulled.output
    assert resolve("person_detector", tmp_path / "cache").backend == "yolo"
    verified = runner.invoke(cli, ["models", "verify"])
    assert verified.exit_code == 0 and "person_detector/yolo: ok" in verified.output

    (tmp_path / "cache" / "person_detector" / "yolo" / "yolov8s.pt").write_bytes(b"checkpoinX")
    assert runner.invoke(cli, ["models", "verify"]).exit_code == 1


def test_image_batches_decode_ahead_and_report_failures(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from gpu_ops.loader import decode_rgb, image_batches

    paths = []
    for i in range(7):
        p = tmp_path / f"{i}.jpg"
        Image.fromarray(np.full((40, 80 + i, 3), i * 30, np.uint8)).save(p)
        paths.append(p)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    items = paths[:3] + [broken] + paths[3:]
    batches = list(image_batches(items, lambda p: decode_rgb(p, max_side=50), batch_size=3, workers=2))
    assert [len(b.arrays) for b in batches] == [3, 3, 1]
    assert [p for b in batches for p in b.items] == paths  # order kept, the broken one left out
    assert [p for b in batches for p, _ in b.failures] == [broken]
    assert all(a.dtype == np.uint8 and a.shape[2] == 3 and max(a.shape[:2]) <= 50 for b in batches for a in b.arrays)
    with pytest.raises(ValueError):
        list(image_batches(items, decode_rgb, batch_size=0))
