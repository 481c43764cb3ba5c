"""``VlmClient``: a vision-language model behind any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Ollama, vLLM, llama.cpp's server, LM Studio and the cloud APIs all take the same request: the image
as a base64 ``data:`` URL in an ``image_url`` content part, and ``response_format`` of type
``json_schema`` constraining the answer to the allowed values. The HTTP call, its retries on 429/5xx
(``Retry-After`` honoured, on ``tenacity``) and its error handling are :class:`resources.llm.ChatClient`'s;
this module adds the vision message, a client-side rate limit (the ``limits`` package) and the
privacy rule: images go to an endpoint on this machine (loopback) unless an operator sets
``CREATORLENS_VLM_ALLOW_REMOTE``. With no model configured, escalation is disabled, not an error.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from limits import parse as parse_limit
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import Field

from creatorlens.settings import FromSettings, Settings, env_secret, knob
from resources.llm import ChatClient, LlmError

__all__ = ["LlmError", "VisionAnswer", "VisionChat", "VlmClient", "image_data_url", "is_loopback_url"]


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is this machine (127.0.0.0/8, ::1 or ``localhost``)."""
    host = (urlparse(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def image_data_url(data: bytes, *, max_side: int = 768, quality: int = 85) -> str:
    """The image re-encoded as a JPEG no larger than ``max_side``, as a ``data:image/jpeg;base64,…`` URL."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")
        img.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class VisionAnswer:
    content: str  # the model's text, verbatim (JSON when it obeyed the schema)
    latency_ms: float  # rate-limit waits excluded, retries included
    requests: int
    model: str | None


class VisionChat:
    """One endpoint and model, rate-limited; no Dagster in sight."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout_s: float = 60.0,
                 retries: int = 4, backoff_s: float = 1.0, rate_limit: str = "2/second",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.model = model
        self._chat = ChatClient(base_url, model, api_key, timeout_s=timeout_s, retries=retries,
                                backoff_s=backoff_s, sleep=sleep)
        self.url = self._chat.url
        self._limit = parse_limit(rate_limit)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._sleep = sleep

    def _acquire(self) -> None:
        while not self._limiter.hit(self._limit, "vlm"):
            reset, _ = self._limiter.get_window_stats(self._limit, "vlm")
            self._sleep(max(0.001, reset - time.time()))

    def ask(self, data_url: str, question: str, schema: dict[str, Any], *, schema_name: str = "answer",
            system: str | None = None, max_tokens: int = 200) -> VisionAnswer:
        """One constrained question about one image. Raises :class:`LlmError` when the endpoint fails."""
        messages: list[dict[str, Any]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": [
            {"type": "text", "text": question},
            {"type": "image_url", "image_url": {"url": data_url}},
        ]})
        self._acquire()
        started = time.perf_counter()
        result = self._chat.chat(messages, temperature=0.0, max_tokens=max_tokens, response_format={
            "type": "json_schema", "json_schema": {"name": schema_name, "strict": True, "schema": schema}})
        return VisionAnswer(result.content, (time.perf_counter() - started) * 1000, result.requests, result.model)

    def close(self) -> None:
        self._chat.close()


class VlmClient(FromSettings, dg.ConfigurableResource):
    """The escalation endpoint. Unconfigured (no model, or an empty URL), escalation records why and skips."""

    base_url: str | None = knob("vlm_base_url")
    model: str | None = knob("vlm_model")
    allow_remote: bool = knob("vlm_allow_remote")
    max_calls: int = knob("vlm_max_calls")
    rate_limit: str = knob("vlm_rate_limit")
    timeout_s: float = knob("vlm_timeout_s")
    retries: int = knob("vlm_retries")
    image_max_side: int = knob("vlm_image_max_side")
    backoff_s: float = Field(default=1.0, ge=0, description="First backoff without Retry-After; doubles per retry.")

    def disabled_reason(self) -> str | None:
        """Why escalation cannot run now (and what enables it), or ``None``."""
        if not self.base_url:
            return "no VLM endpoint configured (CREATORLENS_VLM_BASE_URL)"
        if not self.model:
            return "no VLM model configured (CREATORLENS_VLM_MODEL)"
        if not self.allow_remote and not is_loopback_url(self.base_url):
            return (f"VLM endpoint {urlparse(self.base_url).hostname} is not on this machine and images stay local "
                    "unless CREATORLENS_VLM_ALLOW_REMOTE=true")
        try:
            parse_limit(self.rate_limit)
        except ValueError as exc:
            return f"bad CREATORLENS_VLM_RATE_LIMIT {self.rate_limit!r}: {exc}"
        return None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> VlmClient:
        return super().from_settings(settings, **overrides)

    @contextmanager
    def client(self) -> Iterator[VisionChat]:
        reason = self.disabled_reason()
        if reason:
            raise LlmError(reason)
        key = env_secret("vlm_api_key")
        chat = VisionChat(self.base_url, self.model, key, timeout_s=self.timeout_s,  # type: ignore[arg-type]
                          retries=self.retries, backoff_s=self.backoff_s, rate_limit=self.rate_limit)
        try:
            yield chat
        finally:
            chat.close()
