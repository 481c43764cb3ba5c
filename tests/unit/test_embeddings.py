"""The SigLIP and OpenCLIP embedders on tiny random models built here with the real classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gpu_ops.embeddings import OpenClipEmbedder, SiglipEmbedder
from gpu_ops.loader import decode_rgb, image_batches
from gpu_ops.registry import get_spec
from resources.models import ModelRegistry
from tests.support.tiny_models import build_tiny_openclip, build_tiny_siglip


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {"siglip": build_tiny_siglip(root / "tiny-siglip"), "openclip": build_tiny_openclip(root / "tiny-openclip")}


def load(tiny_dirs, backend: str):
    registry = ModelRegistry(cache_dir="/nonexistent", device="cpu", backends={"image_embedder": backend},
                             weights={"image_embedder": str(tiny_dirs[backend])})
    return registry.load("image_embedder")


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = [(120, 90), (64, 64), (200, 300), (31, 47), (256, 128)]
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


@pytest.mark.parametrize(("backend", "cls", "dim", "scoring"),
                         [("siglip", SiglipEmbedder, 32, "sigmoid"), ("openclip", OpenClipEmbedder, 24, "softmax")])
def test_embeddings_are_unit_rows_in_order_and_independent_of_batch_size(tiny_dirs, photos, backend, cls, dim,
                                                                         scoring) -> None:
    embedder = load(tiny_dirs, backend)
    assert isinstance(embedder, cls) and embedder.loaded
    assert embedder.dim == dim == cls.declared_dim(tiny_dirs[backend])
    assert embedder.scoring == scoring
    batched = embedder.embed_images(photos, batch_size=4)
    single = embedder.embed_images(photos, batch_size=1)
    assert batched.shape == (len(photos), dim) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    reversed_ = embedder.embed_images(photos[::-1])
    np.testing.assert_allclose(reversed_[::-1], batched, atol=1e-5)
    assert np.abs(batched[0] - batched[1]).max() > 1e-4  # different images, different vectors
    texts = embedder.embed_texts(["a photo of food.", "a selfie.", "a dog and a cat"])
    assert texts.shape == (3, dim)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_images([]).shape == (0, dim)


def test_siglip_matches_the_transformers_forward_pass(tiny_dirs, photos) -> None:
    """Our batched path gives what SiglipModel's own forward (processor + padding='max_length') gives."""
    import torch
    from transformers import AutoProcessor, SiglipModel

    embedder = load(tiny_dirs, "siglip")
    model = SiglipModel.from_pretrained(tiny_dirs["siglip"]).eval()
    processor = AutoProcessor.from_pretrained(tiny_dirs["siglip"])
    texts = ["a photo of food.", "a group photo of several people"]
    inputs = processor(text=texts, images=photos, padding="max_length", max_length=16, truncation=True,
                       return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"])
    np.testing.assert_allclose(embedder.embed_images(photos), out.image_embeds.numpy(), atol=1e-5)
    np.testing.assert_allclose(embedder.embed_texts(texts), out.text_embeds.numpy(), atol=1e-5)
    logits = embedder.logit_scale * embedder.embed_images(photos) @ embedder.embed_texts(texts).T + embedder.logit_bias
    np.testing.assert_allclose(logits, out.logits_per_image.numpy(), atol=1e-4)
    assert (embedder.logit_scale, embedder.logit_bias) == pytest.approx((10.0, -2.0))


def test_openclip_matches_open_clip_encode(tiny_dirs, photos) -> None:
    import open_clip
    import torch

    embedder = load(tiny_dirs, "openclip")
    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{tiny_dirs['openclip']}")
    pixels = torch.stack([preprocess(Image.fromarray(p)) for p in photos])
    with torch.no_grad():
        expected = model.eval().encode_image(pixels, normalize=True).numpy()
    np.testing.assert_allclose(embedder.embed_images(photos), expected, atol=1e-5)
    assert embedder.logit_scale == pytest.approx(1 / 0.07, rel=1e-5) and embedder.logit_bias == 0.0


def test_versions_name_the_weights(tiny_dirs, tmp_path: Path) -> None:
    spec = get_spec("image_embedder", "siglip")
    from gpu_ops.device import choose_device

    local = SiglipEmbedder(spec, tiny_dirs["siglip"], choose_device("cpu"))
    assert local.version.startswith("local:tiny-siglip@sha256:") and not local.loaded  # no load needed
    other = build_tiny_siglip(tmp_path / "tiny-siglip", seed=1)
    assert SiglipEmbedder(spec, other, choose_device("cpu")).version != local.version  # same name, other weights
    (other / "manifest.json").write_text(json.dumps({"model_id": "google/siglip-so400m-patch14-384",
                                                     "revision": "9fdffc58afc957d1a03a25b10dba0329ab15c2a3"}))
    pulled = SiglipEmbedder(spec, other, choose_device("cpu"))
    assert pulled.version == "google/siglip-so400m-patch14-384@9fdffc58afc957d1a03a25b10dba0329ab15c2a3"
    with pytest.raises(ValueError, match="models pull image_embedder"):
        SiglipEmbedder(spec, None, choose_device("cpu")).load()


def test_real_files_through_the_threaded_loader(tiny_dirs, photos, tmp_path: Path) -> None:
    paths = []
    for i, array in enumerate(photos):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(array).save(paths[-1])
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    embedder = load(tiny_dirs, "siglip")
    items = [*paths[:2], tmp_path / "broken.jpg", *paths[2:]]
    got, failures = {}, []
    for batch in image_batches(items, decode_rgb, batch_size=2, workers=2):
        failures += [item for item, _ in batch.failures]
        if batch.arrays:
            got.update(zip(batch.items, embedder.embed_images(batch.arrays), strict=True))
    assert failures == [tmp_path / "broken.jpg"]
    direct = embedder.embed_images(photos)
    np.testing.assert_allclose(np.stack([got[p] for p in paths]), direct, atol=1e-5)  # PNG is lossless


def test_embeddings_asset_records_an_unreadable_image_as_a_failed_row(tiny_dirs, photos, tmp_path: Path) -> None:
    """The asset body on a real blob store: a blob that no longer decodes is a row with a reason."""
    import dagster as dg
    import pandas as pd

    from assets.tagging.assets import image_embeddings
    from assets.tagging.config import TaggingConfig
    from creatorlens.settings import REPO_ROOT
    from resources.blobstore import BlobStore

    blobs = BlobStore(root=str(tmp_path / "blobs"))
    rows = []
    for i, array in enumerate(photos[:3]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(array).save(path)
        key = blobs.put(path.read_bytes(), "originals", "png")
        rows.append({"image_key": f"instagram:{i}", "platform": "instagram", "username": "alice", "status": "ok",
                     "blob_key": key})
    blobs.path(rows[1]["blob_key"]).write_bytes(b"bit rot")
    rows.append({"image_key": "instagram:9", "platform": "instagram", "username": "alice", "status": "failed",
                 "blob_key": None})
    models = ModelRegistry(cache_dir=str(tmp_path / "cache"), device="cpu", backends={"image_embedder": "siglip"},
                           weights={"image_embedder": str(tiny_dirs["siglip"])})
    out = image_embeddings(dg.build_asset_context(), creator_images=pd.DataFrame(rows), models=models, blobs=blobs,
                           tagging=TaggingConfig(taxonomy_path=str(REPO_ROOT / "taxonomy" / "default.yaml")))
    frame = out.value.set_index("image_key")
    assert list(frame["status"].sort_index().items()) == [("instagram:0", "ok"), ("instagram:1", "failed"),
                                                          ("instagram:2", "ok")]
    assert frame.loc["instagram:1", "error_reason"] == "decode_error" and frame.loc["instagram:1", "embedding"] is None
    assert out.metadata["failures_by_reason"].value == {"decode_error": 1} and out.metadata["embedded"].value == 2
    embedder = load(tiny_dirs, "siglip")
    side = 2 * embedder.input_size  # the asset decodes to twice the model's input size
    expected = embedder.embed_images([decode_rgb(tmp_path / f"{i}.png", max_side=side) for i in (0, 2)])
    np.testing.assert_allclose(np.stack(frame.loc[["instagram:0", "instagram:2"], "embedding"]), expected, atol=1e-5)
