"""``LlmClient``: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Works with OpenAI, Gemini's OpenAI-compatible endpoint, vLLM, Ollama and the llama.cpp
server: base URL, model and API key come from the environment (``LLM_BASE_URL``, ``LLM_MODEL``,
``LLM_API_KEY``). 429 and 5xx answers (and network errors) are retried on ``tenacity`` with
exponential backoff, 1, 2, 4, 8, 16 s by default, honouring ``Retry-After``.

* :meth:`LlmClient.chat` — one generic chat call, for any caller (e.g. image escalation).
* :meth:`LlmClient.complete_json` — a chat call whose reply must validate against a pydantic
  model; an invalid reply gets exactly one repair turn, then :class:`LlmOutputError`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import dagster as dg
import httpx
from pydantic import BaseModel, Field, ValidationError

from creatorlens.settings import Settings, env_secret
from resources.http import HttpClientOwner, http_retrying, raise_for_retryable

M = TypeVar("M", bound=BaseModel)

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.IGNORECASE)


def extract_json(text: str) -> Any:
    """Parse the JSON object in a reply, tolerating code fences and text around the object."""
    body = _FENCE.sub("", text.strip())
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end <= start:
            raise
        return json.loads(body[start : end + 1])


def repair_messages(messages: list[dict[str, str]], reply: str, problem: str) -> list[dict[str, str]]:
    """The one repair turn: the invalid reply, what was wrong, and a request for corrected JSON."""
    return [
        *messages,
        {"role": "assistant", "content": reply},
        {"role": "user", "content": f"That reply was not valid: {problem[:1500]}\n"
                                    "Reply again with only the corrected JSON object, matching the schema."},
    ]



class LlmError(RuntimeError):
    """The endpoint answered something that is not a chat completion (or a non-retryable error)."""


class LlmOutputError(LlmError):
    """The reply did not validate, even after the repair turn."""

    def __init__(self, message: str, reply: str) -> None:
        super().__init__(message)
        self.reply = reply


@dataclass
class ChatResult:
    content: str
    model: str | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    requests: int = 1  # HTTP requests it took, retries included


@dataclass
class JsonResult:
    value: BaseModel
    reply: str
    repaired: bool
    requests: int
    usage: dict[str, Any] = field(default_factory=dict)


def chat_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base if base.endswith("/chat/completions") else f"{base}/chat/completions"


class ChatClient(HttpClientOwner):
    """Plain httpx client for one endpoint and model; no Dagster in sight."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, timeout_s: float = 120.0,
                 retries: int = 5, backoff_s: float = 1.0, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url = chat_url(base_url)
        self.model = model
        self.retries = retries
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._init_http(http, timeout=timeout_s)

    def chat(self, messages: Sequence[Mapping[str, Any]], *, temperature: float | None = 0.2,
             max_tokens: int | None = None, json_mode: bool = False, **extra: Any) -> ChatResult:
        """POST one chat completion (retrying 429/5xx/network errors); returns the first choice's text."""
        payload: dict[str, Any] = {"model": self.model, "messages": list(messages), **extra}
        if temperature is not None:
            payload["temperature"] = temperature
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        if json_mode:
            payload["response_format"] = {"type": "json_object"}
        requests = 0

        def once() -> httpx.Response:
            nonlocal requests
            requests += 1
            response = self._http.post(self.url, json=payload, headers=self._headers)
            raise_for_retryable(response)
            return response

        response = http_retrying(attempts=self.retries + 1, backoff_s=self.backoff_s, sleep=self._sleep)(once)
        if response.status_code >= 400:
            raise LlmError(f"HTTP {response.status_code} from {self.url}: {response.text[:500]}")
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LlmError(f"not a chat completion: {response.text[:500]}") from exc
        if not isinstance(content, str):
            raise LlmError(f"no text in the reply: {str(data)[:500]}")
        return ChatResult(content, data.get("model"), data.get("usage") or {}, requests)

    def complete_json(self, messages: Sequence[Mapping[str, Any]], schema: type[M], **kwargs: Any) -> JsonResult:
        """A reply validated against ``schema``; one repair turn when it is invalid."""
        first = self.chat(messages, **kwargs)
        try:
            return JsonResult(schema.model_validate(extract_json(first.content)), first.content, False,
                              first.requests, first.usage)
        except (ValueError, ValidationError) as exc:
            problem = str(exc)
        second = self.chat(repair_messages(list(messages), first.content, problem), **kwargs)
        try:
            value = schema.model_validate(extract_json(second.content))
        except (ValueError, ValidationError) as exc:
            raise LlmOutputError(f"invalid after one repair attempt: {str(exc)[:500]}", second.content) from exc
        return JsonResult(value, second.content, True, first.requests + second.requests, second.usage)


class LlmClient(dg.ConfigurableResource):
    """An OpenAI-compatible chat endpoint. Optional: unconfigured, ``llm_profiles`` writes nothing."""

    base_url: str | None = Field(default=None, description="e.g. https://api.openai.com/v1, http://localhost:11434/v1")
    model: str | None = Field(default=None, description="Model name the endpoint knows.")
    api_key: str | None = Field(
        default=None, description="Bearer token; empty = LLM_API_KEY, read when the client opens (kept out of the "
        "resource config, so the Dagster UI never shows it). Local servers need none.")
    timeout_s: float = Field(default=120.0, gt=0)
    retries: int = Field(default=5, ge=0, description="Retries on 429/5xx/network errors.")
    backoff_s: float = Field(default=1.0, ge=0, description="First backoff; doubles per retry (1, 2, 4, 8, 16 s).")
    temperature: float = Field(default=0.2, ge=0)
    json_mode: bool = Field(default=True, description="Ask for response_format json_object.")
    concurrency: int = Field(default=2, ge=1, description="Creators in flight at once.")
    prompt_budget_chars: int = Field(default=6000, ge=500, description="Prompt size budget (bio + captions).")

    @classmethod
    def from_settings(cls, settings: Settings) -> LlmClient:
        return cls(base_url=settings.llm_base_url, model=settings.llm_model, timeout_s=settings.llm_timeout_s)

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.model)

    @contextmanager
    def client(self) -> Iterator[ChatClient]:
        if not self.base_url or not self.model:
            raise LlmError("no LLM endpoint configured (LLM_BASE_URL and LLM_MODEL)")
        key = self.api_key or env_secret("llm_api_key")
        with ChatClient(self.base_url, self.model, key, timeout_s=self.timeout_s, retries=self.retries,
                        backoff_s=self.backoff_s) as chat_client:
            yield chat_client

    def chat(self, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> ChatResult:
        """One chat completion with this resource's endpoint, model and retry policy."""
        kwargs.setdefault("temperature", self.temperature)
        with self.client() as c:
            return c.chat(messages, **kwargs)

    def complete_json(self, messages: Sequence[Mapping[str, Any]], schema: type[M], **kwargs: Any) -> JsonResult:
        kwargs.setdefault("temperature", self.temperature)
        kwargs.setdefault("json_mode", self.json_mode)
        with self.client() as c:
            return c.complete_json(messages, schema, **kwargs)
