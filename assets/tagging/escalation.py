"""VLM escalation: pending review items of a batch, asked of a vision-language model.

```
warehouse/promoted_tags (the batch's review queue is in the warehouse) ─► tagging/escalations
```

For each pending item of the batch, nearest its threshold first, the image and its category make
one constrained question: "which of the category's tags applies" (exclusive: one of them or
``none``; otherwise any subset), with the taxonomy's allowed answers as the JSON schema of
``response_format``. One question answers every queued tag of that category on that image. The answer
is cached in ``vlm_answers`` by (image sha256, prompt version, model, category and its allowed
answers): a re-run asks nothing again. It is recorded per item through
:func:`assets.tagging.review.record_model_answer` (a ``vlm`` row; the item stays pending for a
person, and a reviewer's row always wins) and in ``escalation_outcomes`` with what happened:
``answered``, ``cached``, ``malformed`` (not JSON, or not an allowed answer: the reason is kept),
``error`` (the endpoint failed after its retries), ``skipped_budget`` (the run's call budget was
spent; the item stays un-escalated for the next run) or ``skipped_reviewed`` (a person decided it).
"""


import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import psycopg
from psycopg.types.json import Jsonb

from assets.common.keys import PROMOTED_TAGS, TAG_ESCALATIONS
from assets.common.metadata import GROUP_TAGGING, batch_asset, stage_ran_check, stopwatch
from assets.tagging import review
from assets.tagging.config import TaggingConfig
from assets.tagging.queue_order import refresh_priorities
from assets.tagging.taxonomy import Taxonomy
from creatorlens.queries import load_queries
from resources.blobstore import BlobStore
from resources.vlm import LlmError, VisionChat, VlmClient, image_data_url
from resources.warehouse import Warehouse

QUERIES = "escalation.sql"
PROMPT_VERSION = "tag-question-v1"
NONE = "none"
SYSTEM = ("You label photos for a content catalogue. Answer only from what is visible in the image. "
          "Reply with JSON matching the schema, nothing else.")


@dataclass(frozen=True)
class Item:
    review_id: int
    image_id: int
    image_key: str
    sha256: str | None
    blob_key: str | None
    tag: str
    category: str
    exclusive: bool
    confidence: float
    threshold: float
    model_version: str
    reviewed: bool


@dataclass(frozen=True)
class Question:
    category: str
    exclusive: bool
    choices: tuple[str, ...]
    text: str
    schema: dict[str, Any]

    @property
    def choices_hash(self) -> str:
        return hashlib.sha256(json.dumps([self.exclusive, *self.choices]).encode()).hexdigest()[:16]

    def present(self, answer: dict[str, Any], tag: str) -> bool:
        value = answer["answer"]
        return value == tag if self.exclusive else tag in value


def question_for(taxonomy: Taxonomy, category: str, queued: list[str]) -> Question:
    """The constrained question about one category: the taxonomy's tags are the allowed answers
    (a category the taxonomy does not know, e.g. reviewers' ``custom`` tags, offers the queued ones)."""
    try:
        cat = taxonomy.category(category)
        tags = [(t.name, t.description or ", ".join(t.phrases[:2])) for t in cat.tags]
        exclusive, about = cat.exclusive, cat.description
    except KeyError:
        tags, exclusive, about = [(t, "") for t in sorted(set(queued))], False, ""
    choices = tuple(name for name, _ in tags)
    listing = "\n".join(f"- {name}" + (f": {hint}" if hint else "") for name, hint in tags)
    if exclusive:
        schema = {"type": "object", "additionalProperties": False, "required": ["answer"],
                  "properties": {"answer": {"type": "string", "enum": [*choices, NONE]}}}
        ask = f"Which ONE of these best describes the photo? Answer {NONE!r} if none does."
    else:
        schema = {"type": "object", "additionalProperties": False, "required": ["answer"],
                  "properties": {"answer": {"type": "array", "uniqueItems": True,
                                            "items": {"type": "string", "enum": list(choices)}}}}
        ask = "Which of these apply to the photo? List every one that does (an empty list if none)."
    text = (f"Category: {category}" + (f" ({about})" if about else "") + f"\n{ask}\nAllowed answers:\n{listing}\n"
            'Reply as {"answer": ...}.')
    return Question(category, exclusive, choices, text, schema)


def parse_answer(content: str, question: Question) -> dict[str, Any]:
    """The answer if it is JSON valid under the question's schema, else ``ValueError`` saying why."""
    try:
        value = json.loads(content)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(value, dict) or "answer" not in value:
        raise ValueError('not an object with "answer"')
    answer = value["answer"]
    if question.exclusive:
        if answer not in (*question.choices, NONE):
            raise ValueError(f"answer {str(answer)[:80]!r} is not one of the allowed answers")
    elif not isinstance(answer, list) or not all(isinstance(a, str) and a in question.choices for a in answer):
        raise ValueError(f"answer {str(answer)[:80]!r} is not a list of allowed answers")
    return {"answer": answer}


@dataclass
class Report:
    outcomes: Counter = field(default_factory=Counter)  # per item
    calls: int = 0  # questions sent (the budget counts these)
    requests: int = 0  # HTTP requests, retries included
    cache_hits: int = 0  # questions answered from vlm_answers
    latencies_ms: list[float] = field(default_factory=list)
    malformed: list[dict[str, str]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "items": sum(self.outcomes.values()),
            "outcomes": dg.MetadataValue.json(dict(self.outcomes)),
            "calls": self.calls,
            "http_requests": self.requests,
            "cache_hits": self.cache_hits,
            "skipped_budget": self.outcomes.get("skipped_budget", 0),
            "latency_ms_p50": dg.MetadataValue.float(round(lat[len(lat) // 2], 1) if lat else 0.0),
            "latency_ms_max": dg.MetadataValue.float(round(lat[-1], 1) if lat else 0.0),
            "malformed_answers": dg.MetadataValue.json(self.malformed[:20]),
            "errors": dg.MetadataValue.json(self.errors[:20]),
        }


def pending_items(conn: psycopg.Connection, batch_key: str) -> list[Item]:
    with conn.transaction():
        rows = conn.execute(load_queries(QUERIES)["pending_for_batch"], {"batch_key": batch_key}).fetchall()
    return [Item(*r) for r in rows]


def escalate(
    conn: psycopg.Connection,
    batch_key: str,
    *,
    chat: VisionChat,
    taxonomy: Taxonomy,
    read_blob: Callable[[str], bytes],
    max_calls: int,
    run_id: str,
    image_max_side: int = 768,
) -> Report:
    """Ask the VLM about the batch's pending items (see the module docstring); what happened, per item."""
    q = load_queries(QUERIES)
    report = Report()
    model = chat.model
    base = {"model": model, "prompt_version": PROMPT_VERSION, "batch_key": batch_key, "run_id": run_id}

    def outcome(item: Item, status: str, *, answer_id: int | None = None, present: bool | None = None,
                detail: str | None = None) -> None:  # always inside the caller's transaction
        conn.execute(q["upsert_outcome"], {**base, "review_id": item.review_id, "status": status,
                                           "answer_id": answer_id, "present": present, "detail": detail})
        report.outcomes[status] += 1

    # Each group's writes (its answer, the items' vlm rows and outcomes) are one transaction, never held open
    # across the HTTP call: a crash loses at most the answer in flight; the inner transactions are savepoints.
    groups: dict[tuple[int, str], list[Item]] = {}
    with conn.transaction():
        for item in pending_items(conn, batch_key):
            if item.reviewed:
                outcome(item, "skipped_reviewed", detail="a reviewer decided this tag")
            else:
                groups.setdefault((item.image_id, item.category), []).append(item)

    for (_, category), items in groups.items():
        first = items[0]
        question = question_for(taxonomy, category, [i.tag for i in items])
        key = {**base, "sha256": first.sha256, "category": category, "choices_hash": question.choices_hash}
        if not first.sha256 or not first.blob_key:
            with conn.transaction():
                for item in items:
                    outcome(item, "error", detail="the image has no stored content")
            continue
        with conn.transaction():
            cached = conn.execute(q["cached_answer"], key).fetchone()
            if cached is not None:
                report.cache_hits += 1
                _apply(conn, items, question, cached[1], cached[0], "cached", outcome, model)
            elif report.calls >= max_calls:
                for item in items:
                    outcome(item, "skipped_budget", detail=f"budget of {max_calls} calls spent in this run")
        if cached is not None or report.calls >= max_calls:
            continue
        try:
            data_url = image_data_url(read_blob(first.blob_key), max_side=image_max_side)
        except Exception as exc:  # noqa: BLE001 - an unreadable image is recorded, never fatal
            with conn.transaction():
                for item in items:
                    outcome(item, "error", detail=f"image unreadable: {type(exc).__name__}: {exc}"[:500])
            continue
        report.calls += 1
        row = {**key, "answer": None, "raw_answer": None, "error": None, "latency_ms": None, "requests": 1,
               "endpoint": chat.url}
        try:
            reply = chat.ask(data_url, question.text, question.schema, schema_name=f"tag_{category}"[:64],
                             system=SYSTEM)
        except LlmError as exc:
            report.errors.append({"image_key": first.image_key, "category": category, "error": str(exc)[:300]})
            with conn.transaction():
                answer_id = conn.execute(q["upsert_answer"], {**row, "status": "error",
                                                              "error": str(exc)[:1000]}).fetchone()[0]
                for item in items:
                    outcome(item, "error", answer_id=answer_id, detail=str(exc)[:500])
            continue
        report.requests += reply.requests
        report.latencies_ms.append(reply.latency_ms)
        row.update(raw_answer=reply.content[:4000], latency_ms=reply.latency_ms, requests=reply.requests)
        try:
            answer = parse_answer(reply.content, question)
        except ValueError as exc:
            report.malformed.append({"image_key": first.image_key, "category": category, "reason": str(exc)})
            with conn.transaction():
                answer_id = conn.execute(q["upsert_answer"], {**row, "status": "malformed",
                                                              "error": str(exc)}).fetchone()[0]
                for item in items:
                    outcome(item, "malformed", answer_id=answer_id, detail=str(exc)[:500])
            continue
        with conn.transaction():
            answer_id = conn.execute(q["upsert_answer"], {**row, "status": "ok", "answer": Jsonb(answer)}).fetchone()[0]
            _apply(conn, items, question, answer, answer_id, "answered", outcome, model)
    return report


def _apply(conn: psycopg.Connection, items: list[Item], question: Question, answer: dict[str, Any], answer_id: int,
           status: str, outcome: Callable[..., None], model: str) -> None:
    """Record the answer on each queued item as a ``vlm`` row; an item a person settled meanwhile is left alone."""
    for item in items:
        present = question.present(answer, item.tag)
        try:
            review.record_model_answer(conn, item.review_id, model=model, present=present)
        except review.ReviewError as exc:
            outcome(item, "skipped_reviewed", answer_id=answer_id, present=present, detail=str(exc)[:500])
            continue
        outcome(item, status, answer_id=answer_id, present=present,
                detail=f"answer {json.dumps(answer['answer'])[:200]}")


# ---------------------------------------------------------------------------------------------
# The asset
# ---------------------------------------------------------------------------------------------
@batch_asset(
    key=TAG_ESCALATIONS,
    deps=[PROMOTED_TAGS],
    group_name=GROUP_TAGGING,
    kinds={"python", "postgres"},
    description="Pending review items of the batch asked of a vision-language model (any OpenAI-compatible "
    "endpoint, local by default): one constrained question per image and uncertain category, the taxonomy's "
    "allowed answers as a JSON schema; answers cached by image sha256, prompt version and model, recorded as "
    "`vlm` suggestions beside the queue item (never over a reviewer), within a per-run call budget and a rate "
    "limit. Then the review queue's expected-value order is refreshed. No endpoint/model: records why and skips.",
)
def tag_escalations(
    context: dg.AssetExecutionContext, vlm: VlmClient, tagging: TaggingConfig, warehouse: Warehouse,
    blobs: BlobStore,
) -> dg.MaterializeResult:
    disabled = vlm.disabled_reason()
    if disabled:
        context.log.info(f"escalation of {context.partition_key} disabled: {disabled}")
        with warehouse.raw_connection() as conn:
            ranked = refresh_priorities(conn, clusters=tagging.review_order_clusters)
        return dg.MaterializeResult(metadata={"skipped": True, "escalation": "disabled", "skip_reason": disabled,
                                              "queue_items_ranked": ranked})
    with stopwatch() as elapsed, warehouse.raw_connection() as conn, vlm.client() as chat:
        report = escalate(conn, context.partition_key, chat=chat, taxonomy=tagging.taxonomy(), read_blob=blobs.get,
                          max_calls=vlm.max_calls, run_id=context.run.run_id, image_max_side=vlm.image_max_side)
        ranked = refresh_priorities(conn, clusters=tagging.review_order_clusters)
    context.log.info(f"escalated {context.partition_key}: {dict(report.outcomes)}, {report.calls} calls "
                     f"({report.requests} requests), {report.cache_hits} cached, in {elapsed():.2f}s")
    return dg.MaterializeResult(metadata={
        "skipped": False, "escalation": "enabled", "model": vlm.model or "", "endpoint": chat.url,
        "prompt_version": PROMPT_VERSION, "budget": vlm.max_calls, "rate_limit": vlm.rate_limit,
        **report.metadata(), "queue_items_ranked": ranked,
        "seconds": dg.MetadataValue.float(round(elapsed(), 3)),
    })


def _vlm_skip(vlm: VlmClient):
    reason = vlm.disabled_reason()
    return None if reason is None else (reason, "set CREATORLENS_VLM_MODEL (and CREATORLENS_VLM_BASE_URL)")


tag_escalations_ran = stage_ran_check(TAG_ESCALATIONS, "tag_escalations_ran", "vlm", _vlm_skip,
                                      "a VLM endpoint is configured for escalation")
