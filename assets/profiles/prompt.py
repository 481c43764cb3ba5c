"""LLM-written creator profiles, the pure part: the output schema, the prompt, the input hash.

The prompt holds the bio, the category and the most recent captions that fit a character
budget. The input hash covers the model, the prompt version and the exact messages, so a
creator whose inputs did not change is not sent to the LLM again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from creatorlens.fields import is_empty

PROMPT_VERSION = "profile-v1"
DEFAULT_BUDGET_CHARS = 6000
CAPTION_CHARS = 400
_SENTENCE_END = re.compile(r"[.!?…]+(?=\s|$)")


class PostingPattern(BaseModel):
    model_config = ConfigDict(extra="ignore")

    frequency: str = Field(min_length=1, description="How often they post, e.g. '3-4 posts a week'.")
    best_time: str = Field(min_length=1, description="When their posts do best, e.g. 'weekday evenings'.")
    content_mix: str = Field(min_length=1, description="Formats and their share, e.g. '60% reels, 40% photos'.")


class CreatorProfile(BaseModel):
    """What the LLM must return (validated; one repair attempt when it does not)."""

    model_config = ConfigDict(extra="ignore")

    persona: str = Field(min_length=20, description="Who the creator is, in 2-3 sentences.")
    tone: str = Field(min_length=1, description="Voice of the captions, e.g. 'warm, playful'.")
    interests: list[str] = Field(min_length=1, max_length=15)
    content_topics: list[str] = Field(min_length=1, max_length=15)
    posting_pattern: PostingPattern
    audience_type: str = Field(min_length=1)
    engagement_style: str = Field(min_length=1)
    brand_fit: list[str] = Field(min_length=1, max_length=15, description="Brand categories that fit.")

    @field_validator("persona")
    @classmethod
    def _two_or_three_sentences(cls, value: str) -> str:
        value = " ".join(value.split())
        sentences = len(_SENTENCE_END.findall(value)) or 1
        if not 2 <= sentences <= 3:
            raise ValueError(f"persona must be 2-3 sentences, got {sentences}")
        return value

    @field_validator("interests", "content_topics", "brand_fit")
    @classmethod
    def _clean_list(cls, value: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(" ".join(v.split()).lower() for v in value if v and v.strip()))
        if not cleaned:
            raise ValueError("must name at least one item")
        return cleaned


def schema_text() -> str:
    return json.dumps(CreatorProfile.model_json_schema(), separators=(",", ":"))


SYSTEM_PROMPT = (
    "You write short, factual profiles of social-media creators for brand partnership teams. "
    "Use only the information given; do not guess age, ethnicity, religion, health or orientation. "
    "Answer with ONE JSON object and nothing else, matching this JSON schema: {schema}"
)


def _line(label: str, value: Any) -> str | None:
    return None if is_empty(value) else f"{label}: {' '.join(str(value).split())}"


def build_messages(
    creator: Mapping[str, Any],
    captions: Sequence[tuple[datetime | None, str]],
    *,
    budget_chars: int = DEFAULT_BUDGET_CHARS,
    caption_chars: int = CAPTION_CHARS,
) -> tuple[list[dict[str, str]], int]:
    """Chat messages for one creator and how many captions fit the budget (newest first)."""
    lines = [
        _line("Username", f"@{creator['username']}"),
        _line("Name", creator.get("full_name")),
        _line("Category", creator.get("category")),
        _line("Followers", creator.get("followers")),
        _line("Bio", creator.get("bio")),
    ]
    head = "\n".join(x for x in lines if x)
    used = len(head)
    kept: list[str] = []
    newest_first = sorted(captions, key=lambda c: (c[0] is not None, c[0]), reverse=True)
    for taken_at, text in newest_first:
        caption = " ".join(text.split())[:caption_chars]
        when = taken_at.date().isoformat() if taken_at is not None else "undated"
        entry = f"{len(kept) + 1}. [{when}] {caption}"
        if not caption or used + len(entry) + 1 > budget_chars:
            continue
        kept.append(entry)
        used += len(entry) + 1
    user = head + "\n\nRecent captions (newest first):\n" + ("\n".join(kept) if kept else "(none)")
    return [
        {"role": "system", "content": SYSTEM_PROMPT.format(schema=schema_text())},
        {"role": "user", "content": user},
    ], len(kept)


def input_hash(model: str, messages: Sequence[Mapping[str, str]]) -> str:
    payload = json.dumps({"v": PROMPT_VERSION, "model": model, "messages": list(messages)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
