"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol.

``POST /v1/chat/completions`` answers per request one behaviour from ``script`` (then ``valid``):

* ``valid``    a chat completion whose content is a valid profile JSON object for the creator
* ``fenced``   the same object inside a ```json code fence with a sentence before it
* ``invalid``  content that is not JSON at all
* ``bad_schema`` JSON that misses required fields (persona too long, no topics)
* ``429``      429 with ``Retry-After``;  ``500`` a server error

Every request body is kept (``requests``), so tests can see prompts, repair turns and headers.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.http import LoopbackHandler, serve_handler

_USERNAME = re.compile(r"Username: @([a-z0-9._]+)")
_CATEGORY = re.compile(r"Category: (.+)")


def profile_for(prompt: str) -> dict[str, Any]:
    """A deterministic, valid profile built from what the prompt says about the creator."""
    username = (_USERNAME.search(prompt) or [None, "unknown"])[1]
    category = (_CATEGORY.search(prompt) or [None, "lifestyle"])[1].strip().lower()
    return {
        "persona": f"@{username} is a {category} creator who shares everyday work. Their posts mix tips with "
                   f"behind-the-scenes moments.",
        "tone": "warm, practical",
        "interests": [category, "community"],
        "content_topics": [category, "tutorials"],
        "posting_pattern": {"frequency": "3 posts a week", "best_time": "weekday evenings",
                            "content_mix": "70% photos, 30% reels"},
        "audience_type": f"{category} enthusiasts",
        "engagement_style": "answers comments",
        "brand_fit": [f"{category} brands", "outdoor gear"],
    }


@dataclass
class FakeLlm:
    base_url: str = ""
    script: list[str] = field(default_factory=list)
    retry_after: str | None = "0"
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_behaviour(self, body: dict[str, Any], headers: dict[str, str]) -> str:
        with self.lock:
            self.requests.append(body)
            self.headers.append(headers)
            return self.script.pop(0) if self.script else "valid"

    def prompts_for(self, username: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if f"Username: @{username}\n" in r["messages"][1]["content"]]


def chat_completion(content: str, model: str, *, prompt_tokens: int = 100, completion_tokens: int = 50) -> bytes:
    """An OpenAI ``chat.completion`` response body with one assistant message (also the VLM server's)."""
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


@contextmanager
def serve_llm(llm: FakeLlm | None = None) -> Iterator[FakeLlm]:
    llm = llm or FakeLlm()

    class Handler(LoopbackHandler):
        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.answer(status, body, "application/json", headers)

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if self.path != "/v1/chat/completions":
                self._send(404, b'{"error": "not found"}')
                return
            behaviour = llm.next_behaviour(body, dict(self.headers))
            model = body.get("model", "")
            prompt = body["messages"][1]["content"] if len(body.get("messages", [])) > 1 else ""
            profile = profile_for(prompt)
            if behaviour == "429":
                headers = {"Retry-After": llm.retry_after} if llm.retry_after is not None else {}
                self._send(429, b'{"error": {"message": "Rate limit reached"}}', headers)
            elif behaviour == "500":
                self._send(500, b'{"error": {"message": "internal"}}')
            elif behaviour == "invalid":
                self._send(200, chat_completion("Sure! Here is the profile: persona: nice person, tone: warm", model))
            elif behaviour == "bad_schema":
                self._send(200, chat_completion(json.dumps({"persona": "One. Two. Three. Four.", "tone": "x"}), model))
            elif behaviour == "fenced":
                self._send(200, chat_completion("Here you go:\n```json\n" + json.dumps(profile) + "\n```", model))
            else:
                self._send(200, chat_completion(json.dumps(profile), model))

    with serve_handler(Handler) as base_url:
        llm.base_url = base_url + "/v1"
        yield llm
