"""Zero-shot tag scoring from image and text embeddings (pure numpy; no model, no I/O).

* Prompt ensembling: every tag has several prompts (templates × phrases). Their unit text
  embeddings are averaged and re-normalised into one tag embedding (CLIP's prompt ensembling).
* Scores in [0, 1], per scoring rule of the model:
  - ``sigmoid`` (SigLIP, trained with a sigmoid loss): ``sigmoid(scale · cos + bias)`` per tag,
    independent of the other tags, so any number of tags can score high (multi-label).
  - ``softmax`` (CLIP/OpenCLIP, trained with a softmax over captions): within an exclusive
    category, a softmax over the category's tags (the scores sum to 1); a multi-label tag is a
    two-way softmax between the tag and its category's negative prompt.
* Routing (:func:`route`): a tag is assigned when its score reaches its threshold; an exclusive
  category keeps only its highest-scoring tag. Scores between the review floor
  (``floor_ratio × threshold``) and the threshold, and exclusive categories where more than one
  tag reached its threshold (a conflict), go to the review queue.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

LOW_CONFIDENCE = "low_confidence"
EXCLUSIVE_CONFLICT = "exclusive_conflict"
SCORING_RULES = ("sigmoid", "softmax")


@dataclass(frozen=True)
class ZeroShotTag:
    name: str
    category: str
    exclusive: bool
    prompts: tuple[str, ...]


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


@dataclass
class PromptBank:
    """One unit embedding per tag (prompt-averaged) plus one per category for the negative prompt."""

    tags: list[ZeroShotTag]
    text: np.ndarray  # (T, d) float32, unit rows
    negatives: dict[str, np.ndarray] = field(default_factory=dict)  # category → (d,) unit

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tags]

    def category_groups(self) -> dict[str, np.ndarray]:
        groups: dict[str, list[int]] = {}
        for i, t in enumerate(self.tags):
            groups.setdefault(t.category, []).append(i)
        return {c: np.asarray(idx) for c, idx in groups.items()}

    @property
    def exclusive(self) -> np.ndarray:
        return np.asarray([t.exclusive for t in self.tags], dtype=bool)


def build_prompt_bank(
    tags: Sequence[ZeroShotTag],
    embed_texts: Callable[[list[str]], np.ndarray],
    negatives: Mapping[str, str] | None = None,
) -> PromptBank:
    """Embed every distinct prompt once (one batched call) and average them per tag."""
    if not tags:
        raise ValueError("no tags to score")
    prompts: dict[str, int] = {}
    for t in tags:
        if not t.prompts:
            raise ValueError(f"tag {t.name!r} has no prompts")
        for p in t.prompts:
            prompts.setdefault(p, len(prompts))
    negatives = dict(negatives or {})
    for text in negatives.values():
        prompts.setdefault(text, len(prompts))
    emb = l2_normalise(embed_texts(list(prompts)))
    if emb.shape[0] != len(prompts):
        raise ValueError(f"embed_texts returned {emb.shape[0]} rows for {len(prompts)} prompts")
    text = l2_normalise(np.stack([emb[[prompts[p] for p in t.prompts]].mean(axis=0) for t in tags]))
    neg = {cat: emb[prompts[p]] for cat, p in negatives.items()}
    return PromptBank(list(tags), text, neg)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))).astype(np.float32)


def zero_shot_scores(
    image_embeddings: np.ndarray,
    bank: PromptBank,
    *,
    rule: str,
    logit_scale: float,
    logit_bias: float = 0.0,
) -> np.ndarray:
    """Scores in [0, 1] of shape (N images, T tags). ``logit_scale`` is the model's exp'd temperature."""
    if rule not in SCORING_RULES:
        raise ValueError(f"unknown scoring rule {rule!r}; use one of {SCORING_RULES}")
    img = l2_normalise(np.atleast_2d(image_embeddings))
    if img.shape[1] != bank.text.shape[1]:
        raise ValueError(f"image embeddings have {img.shape[1]} dims, the prompt bank {bank.text.shape[1]}")
    sims = img @ bank.text.T  # cosine similarities
    if rule == "sigmoid":
        return _sigmoid(logit_scale * sims + logit_bias)
    scores = np.empty_like(sims)
    for category, idx in bank.category_groups().items():
        if bank.tags[idx[0]].exclusive:
            logits = logit_scale * sims[:, idx]
            logits -= logits.max(axis=1, keepdims=True)
            expd = np.exp(logits)
            scores[:, idx] = expd / expd.sum(axis=1, keepdims=True)
        else:
            if category not in bank.negatives:
                raise ValueError(f"softmax scoring of multi-label category {category!r} needs a negative prompt")
            neg = img @ bank.negatives[category]
            # two-way softmax [tag, negative] == sigmoid of the logit difference
            scores[:, idx] = _sigmoid(logit_scale * (sims[:, idx] - neg[:, None]))
    return scores.astype(np.float32)


@dataclass
class Routing:
    """Per (image, tag): assigned, and the review reason ('' when not queued)."""

    assigned: np.ndarray  # (N, T) bool
    reason: np.ndarray  # (N, T) object: '', LOW_CONFIDENCE or EXCLUSIVE_CONFLICT
    floors: np.ndarray  # (T,) review floor per tag

    @property
    def queued(self) -> np.ndarray:
        return self.reason != ""


def route(scores: np.ndarray, bank: PromptBank, thresholds: np.ndarray, floor_ratio: float = 0.5) -> Routing:
    """Assign tags, keep the highest per exclusive category, and pick what a person should review.

    * multi-label tag: assigned if ``score >= threshold``; queued (low confidence) if
      ``floor <= score < threshold``.
    * exclusive category: the tag with the highest score is assigned if it reached its threshold.
      If two or more reached theirs, the highest is still assigned and every one that reached its
      threshold is queued (exclusive conflict). If none reached its threshold, the highest is
      queued when it is at or above its floor (low confidence).
    """
    if not 0.0 <= floor_ratio <= 1.0:
        raise ValueError(f"floor_ratio must be in [0, 1], got {floor_ratio}")
    scores = np.atleast_2d(scores)
    thresholds = np.asarray(thresholds, dtype=np.float32)
    if thresholds.shape != (scores.shape[1],):
        raise ValueError(f"need one threshold per tag ({scores.shape[1]}), got shape {thresholds.shape}")
    floors = (thresholds * floor_ratio).astype(np.float32)
    passed = scores >= thresholds
    assigned = np.zeros_like(passed)
    reason = np.full(scores.shape, "", dtype=object)
    rows = np.arange(scores.shape[0])
    for idx in bank.category_groups().values():
        if not bank.tags[idx[0]].exclusive:
            assigned[:, idx] = passed[:, idx]
            low = (scores[:, idx] >= floors[idx]) & ~passed[:, idx]
            sub = reason[:, idx]
            sub[low] = LOW_CONFIDENCE
            reason[:, idx] = sub
            continue
        cat_scores = scores[:, idx]
        best = idx[np.argmax(cat_scores, axis=1)]
        n_passed = passed[:, idx].sum(axis=1)
        best_passed = passed[rows, best]
        assigned[rows[best_passed], best[best_passed]] = True
        conflict = n_passed > 1
        sub = reason[:, idx]
        sub[conflict[:, None] & passed[:, idx]] = EXCLUSIVE_CONFLICT
        reason[:, idx] = sub
        unsure = (n_passed == 0) & (scores[rows, best] >= floors[best])
        reason[rows[unsure], best[unsure]] = LOW_CONFIDENCE
    return Routing(assigned, reason, floors)
