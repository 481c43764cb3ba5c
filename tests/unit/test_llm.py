"""LlmClient against a real chat-completions server on 127.0.0.1 (tests/support/llm_server.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from assets.profiles.prompt import CreatorProfile, build_messages, input_hash
from resources.http import RetryableHttpError
from resources.llm import LlmClient, LlmOutputError
from tests.support.llm_server import FakeLlm, profile_for, serve_llm

CREATOR = {"username": "anna.fit", "full_name": "Anna", "category": "Fitness", "followers": 1200,
           "bio": "Coach in Berlin"}


@pytest.fixture
def llm():
    with serve_llm() as server:
        yield server


def client(llm: FakeLlm, **kw) -> LlmClient:
    return LlmClient(**{"base_url": llm.base_url, "model": "test-model", "api_key": "sk-test", "backoff_s": 0.01, **kw})


def messages():
    return build_messages(CREATOR, [(datetime(2024, 5, 1, tzinfo=UTC), "Leg day #fit")])[0]


def test_valid_reply_is_validated_and_the_request_is_openai_shaped(llm):
    result = client(llm).complete_json(messages(), CreatorProfile)
    assert isinstance(result.value, CreatorProfile) and not result.repaired and result.requests == 1
    assert result.value.persona.startswith("@anna.fit is a fitness creator")
    assert result.value.posting_pattern.best_time == "weekday evenings"
    body, headers = llm.requests[0], llm.headers[0]
    assert body["model"] == "test-model" and body["response_format"] == {"type": "json_object"}
    assert headers["Authorization"] == "Bearer sk-test"
    assert "Bio: Coach in Berlin" in body["messages"][1]["content"] and '"persona"' in body["messages"][0]["content"]


def test_fenced_json_needs_no_repair(llm):
    llm.script = ["fenced"]
    result = client(llm).complete_json(messages(), CreatorProfile)
    assert not result.repaired and result.value.interests == ["fitness", "community"]


@pytest.mark.parametrize("first", ["invalid", "bad_schema"])
def test_one_repair_attempt_fixes_an_invalid_reply(llm, first):
    llm.script = [first]
    result = client(llm).complete_json(messages(), CreatorProfile)
    assert result.repaired and result.requests == 2
    repair = llm.requests[1]["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "not valid" in repair[3]["content"]


def test_a_second_invalid_reply_is_an_error_not_a_loop(llm):
    llm.script = ["invalid", "bad_schema"]
    with pytest.raises(LlmOutputError) as err:
        client(llm).complete_json(messages(), CreatorProfile)
    assert "persona" in str(err.value) and len(llm.requests) == 2


def test_429s_and_500s_are_retried_with_exponential_backoff(llm):
    llm.script = ["429", "500", "500", "valid"]
    started = time.monotonic()
    result = client(llm, backoff_s=0.1).complete_json(messages(), CreatorProfile)
    elapsed = time.monotonic() - started
    assert result.requests == 4 and not result.repaired
    assert 0.2 + 0.4 <= elapsed < 3.0  # 429 with Retry-After 0, then 0.2 s and 0.4 s of backoff

    llm.script = ["500"] * 6
    started = time.monotonic()
    with pytest.raises(RetryableHttpError) as err:
        client(llm, backoff_s=0.02).chat(messages())
    assert err.value.status == 500 and len(llm.requests) == 4 + 6
    assert time.monotonic() - started >= 0.02 * (1 + 2 + 4 + 8 + 16)  # five retries: 1, 2, 4, 8, 16 x base


def test_retry_after_wins_over_backoff(llm):
    llm.script, llm.retry_after = ["429"], "1"
    started = time.monotonic()
    assert client(llm, backoff_s=0.01).chat(messages()).requests == 2
    assert time.monotonic() - started >= 1.0


def test_prompt_keeps_the_newest_captions_within_budget_and_hashes_its_inputs():
    now = datetime(2024, 6, 1, tzinfo=UTC)
    captions = [(now - timedelta(days=i), f"caption number {i} " + "x" * 200) for i in range(50)]
    msgs, kept = build_messages(CREATOR, captions, budget_chars=2000)
    user = msgs[1]["content"]
    assert 3 <= kept < 50 and len(user) <= 2000 + len("\n\nRecent captions (newest first):\n")
    assert user.index("caption number 0 ") < user.index("caption number 1 ")
    assert "caption number 49" not in user
    same = build_messages(CREATOR, list(reversed(captions)), budget_chars=2000)[0]
    assert input_hash("m", msgs) == input_hash("m", same)
    assert input_hash("m", msgs) != input_hash("other-model", msgs)
    assert input_hash("m", msgs) != input_hash("m", build_messages({**CREATOR, "bio": "new bio"}, captions,
                                                                   budget_chars=2000)[0])


def test_schema_wants_a_two_to_three_sentence_persona():
    good = profile_for("Username: @x\nCategory: Food")
    assert CreatorProfile.model_validate(good).content_topics == ["food", "tutorials"]
    for persona in ("Only one sentence here without end", "One. Two. Three. Four."):
        with pytest.raises(ValidationError):
            CreatorProfile.model_validate({**good, "persona": persona})


def test_api_key_comes_from_the_environment_and_stays_out_of_resource_config(llm, monkeypatch):
    from creatorlens.settings import Settings

    monkeypatch.setenv("LLM_API_KEY", "sk-from-env")
    resource = LlmClient.from_settings(Settings(llm_base_url=llm.base_url, llm_model="m"))
    assert resource.api_key is None and "sk-from-env" not in resource.model_dump_json()
    resource.chat(messages())
    assert llm.headers[-1]["Authorization"] == "Bearer sk-from-env"
