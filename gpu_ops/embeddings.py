"""Image and text embeddings for search and zero-shot tags: SigLIP (transformers) and OpenCLIP.

Both backends load from a local directory only (``from_pretrained(path, local_files_only=True)``
for SigLIP, open_clip's ``local-dir:`` schema for OpenCLIP): the Hugging Face snapshot pulled by
``creatorlens models pull image_embedder``, or a tiny model a test saved. They return float32,
L2-normalised rows, run in fp16 on CUDA, and say which model produced them:

* ``model_id`` / ``revision`` / ``version`` come from the pull manifest (``manifest.json``: the
  hub repo and the commit it resolved to). Weights without a manifest (copied by hand, or a
  test model) are named ``local:<folder>`` with a content hash as revision, so two different
  models can never share a version string.
* ``scoring`` is the rule their logits were trained for (SigLIP: ``sigmoid``, CLIP: ``softmax``),
  with ``logit_scale`` (already exponentiated) and ``logit_bias``; :mod:`gpu_ops.zeroshot` uses them.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpu_ops.base import ModelBackend
from gpu_ops.compat import ensure_torchvision
from gpu_ops.prefetch import batched
from gpu_ops.spec import MANIFEST, read_manifest
from gpu_ops.zeroshot import l2_normalise

DEFAULT_BATCH_SIZE = 32


def weights_fingerprint(path: Path) -> str:
    """sha256 over every file (relative name + bytes) of a weights folder, manifest excluded."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST and ".cache" not in p.parts
    )
    for f in files:
        digest.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


class ImageEmbedder(ModelBackend[np.ndarray]):
    """Common half: identity, batching, normalisation. Backends implement the four hooks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._identity: tuple[str, str] | None = None
        self.dim: int | None = None
        self.scoring = "softmax"
        self.logit_scale = 1.0
        self.logit_bias = 0.0
        self.input_size: int | None = None  # square side the model sees (decode hint)

    # ---- identity ------------------------------------------------------------------------
    def _weights_dir(self) -> Path:
        if self.weights is None:
            raise ValueError(f"{type(self).__name__} needs a local weights directory "
                             f"(`creatorlens models pull {self.spec.family}`)")
        return Path(self.weights)

    def identity(self) -> tuple[str, str]:
        """``(model_id, revision)`` from the pull manifest, or ``local:<folder>`` + content hash."""
        if self._identity is None:
            weights = self._weights_dir()
            manifest = read_manifest(weights) if weights.is_dir() else {}
            if manifest.get("model_id"):
                revision = manifest.get("revision") or self.spec.revision or "unversioned"
                self._identity = (str(manifest["model_id"]), str(revision))
            else:
                self._identity = (f"local:{weights.name}", f"sha256:{weights_fingerprint(weights)[:12]}")
        return self._identity

    @property
    def model_id(self) -> str:
        return self.identity()[0]

    @property
    def version(self) -> str:
        model_id, revision = self.identity()
        return f"{model_id}@{revision}"

    @classmethod
    @abstractmethod
    def declared_dim(cls, weights: Path) -> int:
        """Embedding size read from the weights' config file, without loading the model."""

    # ---- inference ---------------------------------------------------------------------------
    @abstractmethod
    def _encode_images(self, arrays: list[np.ndarray]) -> np.ndarray: ...

    @abstractmethod
    def _encode_texts(self, texts: list[str]) -> np.ndarray: ...

    def _batch_size(self, batch_size: int | None) -> int:
        return int(batch_size or self.options.get("batch_size") or DEFAULT_BATCH_SIZE)

    def embed_images(self, arrays: Sequence[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """(N, dim) float32 unit rows for RGB ``uint8`` arrays (H, W, 3), in input order."""
        self.load()
        if not len(arrays):
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        out = [self._encode_images(list(chunk)) for chunk in batched(arrays, self._batch_size(batch_size))]
        return l2_normalise(np.concatenate(out))

    def embed_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """(N, dim) float32 unit rows for text, in the same space as :meth:`embed_images`."""
        self.load()
        if not len(texts):
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        out = [self._encode_texts(list(chunk)) for chunk in batched(list(texts), self._batch_size(batch_size))]
        return l2_normalise(np.concatenate(out))

    def _predict(self, batch: list[np.ndarray]) -> list[np.ndarray]:
        return list(self.embed_images(batch))

    def _check_dims(self, image_dim: int, text_dim: int) -> None:
        if image_dim != text_dim:
            raise ValueError(f"{self.weights}: image embeddings have {image_dim} dims but text {text_dim}")
        self.dim = image_dim


def _as_numpy(tensor) -> np.ndarray:
    return tensor.float().cpu().numpy()


class SiglipEmbedder(ImageEmbedder):
    """SigLIP / SigLIP 2 (fixed resolution) through ``transformers``' Auto classes; sigmoid scoring."""

    @classmethod
    def declared_dim(cls, weights: Path) -> int:
        config = json.loads((Path(weights) / "config.json").read_text())
        return int(config.get("vision_config", {}).get("hidden_size", 768))

    def _load(self) -> None:
        ensure_torchvision()
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        weights = self._weights_dir()
        model = AutoModel.from_pretrained(weights, local_files_only=True, dtype=self.device.torch_dtype)
        self._model = model.to(self.device.torch).eval()
        self._processor = AutoImageProcessor.from_pretrained(weights, local_files_only=True)
        self._tokenizer = AutoTokenizer.from_pretrained(weights, local_files_only=True)
        # SigLIP was trained on text padded to a fixed length: pad every prompt to it.
        self._max_length = int(model.config.text_config.max_position_embeddings)
        # The torchvision-backed processor resizes on the model's device; the PIL one on the CPU.
        self._processor_device = self.device.torch if getattr(self._processor, "backend", "") == "torchvision" \
            else None
        self._torch = torch
        self.scoring = "sigmoid"
        self.logit_scale = float(model.logit_scale.detach().float().exp().item())
        self.logit_bias = float(model.logit_bias.detach().float().item())
        size = getattr(self._processor, "size", None) or {}
        self.input_size = int(size.get("height") or size.get("shortest_edge") or 0) or None
        self._check_dims(int(model.config.vision_config.hidden_size),
                         int(getattr(model.config.text_config, "projection_size", None)
                             or model.config.text_config.hidden_size))

    def _encode_images(self, arrays: list[np.ndarray]) -> np.ndarray:
        extra = {"device": self._processor_device} if self._processor_device else {}
        with warnings.catch_warnings():  # decoded arrays are read-only; the processor only reads them
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            pixels = self._processor(images=arrays, return_tensors="pt", **extra)["pixel_values"]
        pixels = pixels.to(self.device.torch, dtype=self.device.torch_dtype)
        with self._torch.inference_mode():
            return _as_numpy(self._model.get_image_features(pixel_values=pixels).pooler_output)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenizer(texts, padding="max_length", max_length=self._max_length, truncation=True,
                                 return_tensors="pt")
        with self._torch.inference_mode():
            out = self._model.get_text_features(input_ids=tokens["input_ids"].to(self.device.torch))
            return _as_numpy(out.pooler_output)


class OpenClipEmbedder(ImageEmbedder):
    """OpenCLIP from a folder holding ``open_clip_config.json`` + weights (the HF hub layout).

    Softmax scoring (CLIP's contrastive loss), unless the checkpoint carries a ``logit_bias``
    (a SigLIP model packaged for open_clip), which is scored with the sigmoid.
    """

    @classmethod
    def declared_dim(cls, weights: Path) -> int:
        config = json.loads((Path(weights) / "open_clip_config.json").read_text())
        return int(config.get("model_cfg", config)["embed_dim"])

    def _load(self) -> None:
        ensure_torchvision()
        import open_clip
        import torch

        source = f"local-dir:{self._weights_dir()}"
        model, preprocess = open_clip.create_model_from_pretrained(
            source, precision="fp16" if self.device.fp16 else "fp32", device=self.device.torch
        )
        self._model = model.eval()
        self._preprocess = preprocess
        self._tokenizer = open_clip.get_tokenizer(source)
        self._torch = torch
        self.logit_scale = float(model.logit_scale.detach().float().exp().item())
        bias = getattr(model, "logit_bias", None)
        self.scoring = "sigmoid" if bias is not None else "softmax"
        self.logit_bias = float(bias.detach().float().item()) if bias is not None else 0.0
        image_size = getattr(model.visual, "image_size", None)
        self.input_size = int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size or 0) or None
        dim = self.declared_dim(self._weights_dir())
        self._check_dims(dim, dim)

    def _encode_images(self, arrays: list[np.ndarray]) -> np.ndarray:
        from PIL import Image

        pixels = self._torch.stack([self._preprocess(Image.fromarray(a)) for a in arrays])
        pixels = pixels.to(self.device.torch, dtype=self.device.torch_dtype)
        with self._torch.inference_mode():
            return _as_numpy(self._model.encode_image(pixels))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        tokens = self._tokenizer(texts).to(self.device.torch)
        with self._torch.inference_mode():
            return _as_numpy(self._model.encode_text(tokens))
