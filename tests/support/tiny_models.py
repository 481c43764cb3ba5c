"""Tiny, randomly initialised embedding models built with the real classes and saved like real ones.

* SigLIP: a ``SiglipModel`` from a small ``SiglipConfig``, a sentencepiece tokenizer trained here
  on a few sentences (a real ``SiglipTokenizer``) and a ``SiglipImageProcessor``, saved with
  ``save_pretrained`` so the production loader reads it through the Auto classes, offline.
* OpenCLIP: an ``open_clip.CLIP`` from a small model config, saved in the Hugging Face hub layout
  (``open_clip_config.json`` + ``open_clip_model.safetensors``) that open_clip's ``local-dir:``
  schema loads; its tokenizer is open_clip's bundled BPE, no hub needed.
"""

from __future__ import annotations

import json
from pathlib import Path

from gpu_ops.compat import ensure_torchvision

CORPUS = [
    "a photo of fitness and a workout at the gym", "a plate of food and cooking a meal", "travel to the beach",
    "a selfie in the city", "a group photo of several people", "a person with tattoos and streetwear",
    "a photo of a person with blonde hair", "an instagram post about music and art", "a dog and a cat",
    "alcoholic drinks, beer, wine or cocktails", "a screenshot of a phone", "a landscape photo in the mountains",
]


def build_random_siglip(directory: Path, vision_config: dict, text_config: dict | None = None, *,
                        seed: int = 0, logit_scale: float = 10.0, logit_bias: float = -2.0) -> Path:
    """A randomly initialised ``SiglipModel`` of any size, saved with a trained tokenizer and a processor."""
    ensure_torchvision()
    import sentencepiece as spm
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor, SiglipTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 5), model_prefix=str(directory / "spiece"), vocab_size=96,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, hard_vocab_limit=False, minloglevel=2,
    )
    max_len = 16
    tokenizer = SiglipTokenizer(vocab_file=str(directory / "spiece.model"), model_max_length=max_len)
    dim = vision_config["hidden_size"]
    text = {"hidden_size": dim, "intermediate_size": 2 * dim, "num_hidden_layers": 2, "num_attention_heads": 2,
            **(text_config or {})}
    config = SiglipConfig(
        text_config={**text, "vocab_size": tokenizer.vocab_size, "max_position_embeddings": max_len,
                     "projection_size": dim, "pad_token_id": 0, "bos_token_id": None, "eos_token_id": 1},
        vision_config=vision_config,
    )
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    with torch.no_grad():  # trained SigLIP has a large scale and negative bias; keep scores spread out
        model.logit_scale.fill_(float(torch.log(torch.tensor(logit_scale))))
        model.logit_bias.fill_(logit_bias)
    size = vision_config.get("image_size", 224)
    processor = SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": size, "width": size}),
                                tokenizer=tokenizer)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def build_tiny_siglip(directory: Path, *, seed: int = 0, dim: int = 32, image_size: int = 32) -> Path:
    vision = {"hidden_size": dim, "intermediate_size": 2 * dim, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": image_size, "patch_size": 8}
    return build_random_siglip(directory, vision, seed=seed)


def build_tiny_openclip(directory: Path, *, seed: int = 0, dim: int = 24, image_size: int = 32) -> Path:
    ensure_torchvision()
    import open_clip
    import torch
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    model_cfg = {
        "embed_dim": dim,
        "vision_cfg": {"image_size": image_size, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    }
    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / "open_clip_model.safetensors")
    (directory / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": model_cfg,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
    }))
    return directory
