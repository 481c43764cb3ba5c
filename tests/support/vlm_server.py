"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol for a vision model.

``POST /v1/chat/completions`` checks the request the way a strict server does (a user message whose
content parts hold text and an ``image_url`` with a base64 ``data:`` URL that decodes to an image, and
``response_format`` of type ``json_schema`` with a schema), answering 400 when it is not. Each request
then gets one behaviour from ``script`` (then ``valid``):

* ``valid``      a completion whose content is JSON valid under the request's schema: ``choose(schema,
                 question)`` when given, else the first allowed value (an empty list for arrays)
* ``malformed``  content that is not JSON
* ``off_schema`` JSON whose answer is not one of the allowed values
* ``429``        429 with ``Retry-After`` (``retry_after``); ``500`` a server error

Every accepted request body is kept (``requests``); ``delay_s`` adds latency (for bench/escalation.py).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.http import LoopbackHandler, serve_handler
from tests.support.llm_server import chat_completion


def default_answer(schema: dict[str, Any], question: str) -> dict[str, Any]:
    answer = schema["properties"]["answer"]
    if answer.get("type") == "array":
        return {"answer": []}
    return {"answer": answer["enum"][0]}


def request_problem(body: dict[str, Any]) -> str | None:
    """What a strict OpenAI-compatible vision server would refuse in ``body``, or None."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") != "json_schema" or not isinstance((fmt.get("json_schema") or {}).get("schema"), dict):
        return "response_format must be json_schema with a schema"
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    if not users or not isinstance(users[-1].get("content"), list):
        return "the user message needs content parts"
    parts = users[-1]["content"]
    texts = [p for p in parts if p.get("type") == "text" and p.get("text")]
    images = [p for p in parts if p.get("type") == "image_url"]
    if not texts or len(images) != 1:
        return "one text part and one image_url part expected"
    url = (images[0].get("image_url") or {}).get("url", "")
    if not url.startswith("data:image/") or ";base64," not in url:
        return "image_url must be a base64 data URL"
    try:
        raw = base64.b64decode(url.split(",", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        return "image data is not base64"
    from PIL import Image

    try:
        Image.open(io.BytesIO(raw)).verify()
    except Exception as exc:  # noqa: BLE001 - any decoder complaint is a bad image
        return f"image data is not an image: {exc}"
    return None


@dataclass
class FakeVlm:
    base_url: str = ""
    script: list[str] = field(default_factory=list)
    retry_after: str | None = "0"
    choose: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    delay_s: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_behaviour(self, body: dict[str, Any]) -> str:
        with self.lock:
            self.requests.append(body)
            return self.script.pop(0) if self.script else "valid"

    @staticmethod
    def question(body: dict[str, Any]) -> str:
        parts = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        return next(p["text"] for p in parts if p["type"] == "text")


def _completion(content: str, model: str) -> bytes:
    return chat_completion(content, model, prompt_tokens=800, completion_tokens=12)  # an image costs tokens


@contextmanager
def serve_vlm(vlm: FakeVlm | None = None) -> Iterator[FakeVlm]:
    vlm = vlm or FakeVlm()

    class Handler(LoopbackHandler):
        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.answer(status, body, "application/json", headers)

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            if self.path != "/v1/chat/completions":
                self._send(404, b'{"error": "not found"}')
                return
            problem = request_problem(body)
            if problem:
                with vlm.lock:
                    vlm.refused.append(problem)
                self._send(400, json.dumps({"error": {"message": problem}}).encode())
                return
            behaviour = vlm.next_behaviour(body)
            if vlm.delay_s:
                time.sleep(vlm.delay_s)
            model = body.get("model", "")
            schema = body["response_format"]["json_schema"]["schema"]
            if behaviour == "429":
                headers = {"Retry-After": vlm.retry_after} if vlm.retry_after is not None else {}
                self._send(429, b'{"error": {"message": "Rate limit reached"}}', headers)
            elif behaviour == "500":
                self._send(500, b'{"error": {"message": "internal"}}')
            elif behaviour == "malformed":
                self._send(200, _completion("I think the answer is yes, it looks like a beach", model))
            elif behaviour == "off_schema":
                self._send(200, _completion(json.dumps({"answer": "definitely-not-allowed"}), model))
            else:
                answer = (vlm.choose or default_answer)(schema, FakeVlm.question(body))
                self._send(200, _completion(json.dumps(answer), model))

    with serve_handler(Handler) as base_url:
        vlm.base_url = base_url + "/v1"
        yield vlm
