"""``profiles/llm`` and ``profiles/embeddings``: LLM-written creator profiles and their text embeddings.

* ``profiles/llm`` asks an OpenAI-compatible endpoint for a validated profile per creator, from the
  bio, the category and the newest captions that fit the prompt budget. A creator whose prompt
  (model included) hashes to what the warehouse already holds is skipped unless ``force``. A
  failed creator is a row with its error, never a failed batch. With no endpoint configured the
  asset generates nothing and says so (an empty table, not an error).
* ``profiles/embeddings`` embeds persona + bio (the persona from this run or from the warehouse;
  the bio alone when there is no LLM profile, and the row says which text it embedded) with
  all-MiniLM-L6-v2. Unchanged texts are not embedded again.
"""


import hashlib
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from assets.common.keys import ENRICHED_PROFILES, LLM_PROFILES, PROFILE_EMBEDDINGS, RAW_POSTS
from assets.common.metadata import (
    GROUP_PROFILES,
    Skip,
    batch_asset,
    batch_check,
    check_result,
    preview_table,
    reason_counts,
    stage_ran_check,
    stopwatch,
    throughput_metadata,
)
from assets.common.quality import column, gxe, validate_frame
from assets.profiles.prompt import PROMPT_VERSION, CreatorProfile, build_messages, input_hash
from assets.profiles.store import profile_state
from creatorlens.fields import is_empty
from gpu_ops.prefetch import prefetch_map
from gpu_ops.text_embed import DIM
from resources.llm import LlmClient
from resources.text_models import TextEmbeddings
from resources.warehouse import Warehouse

LLM_COLUMNS = ("platform", "username", "status", "error", "profile", "persona", "topics", "model",
               "prompt_version", "input_hash", "captions_used", "prompt_chars", "requests", "repaired", "generated_at")
EMBEDDING_COLUMNS = ("platform", "username", "model", "text_source", "text_hash", "embedding", "text_chars")
TEXT_SOURCES = ("persona+bio", "persona", "bio")


class ForceConfig(dg.Config):
    force: bool = Field(default=False, description="Redo creators whose inputs did not change.")


def _captions(raw_posts: pd.DataFrame) -> dict[str, list[tuple[datetime | None, str]]]:
    posts = raw_posts[raw_posts["caption"].notna()]
    out: dict[str, list[tuple[datetime | None, str]]] = {}
    for username, taken_at, caption in posts[["username", "taken_at", "caption"]].itertuples(index=False):
        out.setdefault(username, []).append((None if pd.isna(taken_at) else taken_at.to_pydatetime(), caption))
    return out


def _llm_row(creator: dict[str, Any], model: str, job: dict[str, Any], result: Any) -> dict[str, Any]:
    row = {"platform": creator["platform"], "username": creator["username"], "model": model,
           "prompt_version": PROMPT_VERSION, "input_hash": job["hash"], "captions_used": job["captions"],
           "prompt_chars": job["chars"], "generated_at": datetime.now(UTC)}
    if isinstance(result, BaseException):
        return {**row, "status": "failed", "error": f"{type(result).__name__}: {result}"[:1000], "profile": None,
                "persona": None, "topics": [], "requests": None, "repaired": None}
    profile: CreatorProfile = result.value
    return {**row, "status": "ok", "error": None, "profile": profile.model_dump_json(), "persona": profile.persona,
            "topics": profile.content_topics, "requests": result.requests, "repaired": result.repaired}


@batch_asset(
    key=LLM_PROFILES,
    ins={"enriched_profiles": dg.AssetIn(key=ENRICHED_PROFILES), "raw_posts": dg.AssetIn(key=RAW_POSTS)},
    group_name=GROUP_PROFILES,
    kinds={"python", "pandas", "openai"},
    description="LLM-written profile per creator (persona, tone, interests, topics, posting pattern, audience, "
    "engagement, brand fit), schema-validated; unchanged creators skipped; nothing without an endpoint.",
)
def llm_profiles(context: dg.AssetExecutionContext, config: ForceConfig, enriched_profiles: pd.DataFrame,
                 raw_posts: pd.DataFrame, llm: LlmClient, warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
    creators = enriched_profiles.to_dict("records")
    if not llm.configured:
        context.log.info("no LLM endpoint configured: no profiles generated")
        return dg.Output(pd.DataFrame(columns=list(LLM_COLUMNS)), metadata={
            "llm_endpoint": "not configured (LLM_BASE_URL, LLM_MODEL): no profiles generated",
            "creators": len(creators), "generated": 0})
    model = str(llm.model)
    with stopwatch() as elapsed:
        captions = _captions(raw_posts)
        state = profile_state(warehouse.get_engine(), [c["username"] for c in creators]).set_index("username")
        jobs, skipped = [], 0
        for creator in creators:
            messages, kept = build_messages(creator, captions.get(creator["username"], []),
                                            budget_chars=llm.prompt_budget_chars)
            digest = input_hash(model, messages)
            known = state.loc[creator["username"]] if creator["username"] in state.index else None
            if not config.force and known is not None and known["status"] == "ok" and known["input_hash"] == digest:
                skipped += 1
                continue
            jobs.append({"creator": creator, "messages": messages, "hash": digest, "captions": kept,
                         "chars": sum(len(m["content"]) for m in messages)})
        rows = []
        with llm.client() as client:
            def generate(job: dict[str, Any]) -> Any:
                return client.complete_json(job["messages"], CreatorProfile, temperature=llm.temperature,
                                            json_mode=llm.json_mode)

            for job, result in prefetch_map(generate, jobs, workers=llm.concurrency):
                rows.append(_llm_row(job["creator"], model, job, result))
    df = pd.DataFrame(rows, columns=list(LLM_COLUMNS))
    df["generated_at"] = pd.to_datetime(df["generated_at"], utc=True)
    for col in ("captions_used", "prompt_chars", "requests"):
        df[col] = df[col].astype("Int64")
    df["repaired"] = df["repaired"].astype("boolean")
    failed = df[df["status"] == "failed"]
    context.log.info(f"{len(df) - len(failed)} profiles generated, {len(failed)} failed, {skipped} unchanged")
    return dg.Output(df, metadata={
        "llm_endpoint": f"{llm.base_url} ({model})",
        "creators": len(creators),
        "generated": int((df["status"] == "ok").sum()),
        "repaired": int(df["repaired"].fillna(False).sum()),
        "failed": len(failed),
        "failures_by_reason": dg.MetadataValue.json(reason_counts(e.split(":")[0] for e in failed["error"])),
        "skipped_unchanged": skipped,
        "forced": config.force,
        "requests": int(df["requests"].fillna(0).sum()),
        **throughput_metadata(len(df), elapsed(), "profiles"),
        "preview": preview_table(df, ["username", "status", "persona", "topics", "error"]),
    })


@batch_check(asset=LLM_PROFILES,
                description="Schema present; one row per (platform, username); ok rows have persona and JSON, "
                            "failed rows an error.")
def llm_profiles_valid(llm_profiles: pd.DataFrame) -> dg.AssetCheckResult:
    expectations = [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(LLM_COLUMNS), exact_match=False),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["platform", "username"]),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["ok", "failed"]),
    ]
    if (llm_profiles["status"] == "ok").any():
        expectations += [gxe.ExpectColumnValuesToNotBeNull(column=c, row_condition=column("status") == "ok")
                         for c in ("persona", "profile", "input_hash")]
    if (llm_profiles["status"] == "failed").any():
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column="error", row_condition=column("status") == "failed"))
    return check_result(validate_frame(llm_profiles, expectations, name="llm_profiles"))


def embedding_text(persona: Any, bio: Any) -> tuple[str | None, str | None]:
    """The text to embed and which parts it holds: persona + bio, or whichever exists."""
    parts = {"persona": None if is_empty(persona) else str(persona), "bio": None if is_empty(bio) else str(bio)}
    present = [k for k, v in parts.items() if v]
    if not present:
        return None, None
    return "\n".join(parts[k] for k in present), "+".join(present)


@batch_asset(
    key=PROFILE_EMBEDDINGS,
    ins={"enriched_profiles": dg.AssetIn(key=ENRICHED_PROFILES), "llm_profiles": dg.AssetIn(key=LLM_PROFILES)},
    group_name=GROUP_PROFILES,
    kinds={"python", "pytorch"},
    description="384-d all-MiniLM-L6-v2 embedding of persona + bio (bio alone without an LLM profile); "
    "unchanged texts skipped.",
)
def profile_embeddings(context: dg.AssetExecutionContext, config: ForceConfig, enriched_profiles: pd.DataFrame,
                       llm_profiles: pd.DataFrame, text_embeddings: TextEmbeddings,
                       warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
    embedder = text_embeddings.embedder()
    model = embedder.model_name
    fresh = llm_profiles[llm_profiles["status"] == "ok"].set_index("username")["persona"]
    with stopwatch() as elapsed:
        state = profile_state(warehouse.get_engine(), list(enriched_profiles["username"])).set_index("username")
        todo, skipped, no_text = [], 0, 0
        for creator in enriched_profiles.to_dict("records"):
            username = creator["username"]
            known = state.loc[username] if username in state.index else None
            stored = known["persona"] if known is not None and known["status"] == "ok" else None
            text, source = embedding_text(fresh.get(username, stored), creator.get("bio"))
            if text is None:
                no_text += 1
                continue
            digest = hashlib.sha256(f"{model}\n{source}\n{text}".encode()).hexdigest()
            if not config.force and known is not None and known["text_hash"] == digest and known["embed_model"] == model:
                skipped += 1
                continue
            todo.append({"platform": creator["platform"], "username": username, "model": model, "text_source": source,
                         "text_hash": digest, "text": text, "text_chars": len(text)})
        vectors = embedder.embed([t["text"] for t in todo]) if todo else np.zeros((0, DIM), np.float32)
    df = pd.DataFrame([{k: v for k, v in t.items() if k != "text"} for t in todo], columns=list(EMBEDDING_COLUMNS))
    df["embedding"] = list(vectors)
    sources = df["text_source"].value_counts().to_dict()
    where = f" on {embedder.device}" if embedder.device else ""
    context.log.info(f"{len(df)} texts embedded{where}, {skipped} unchanged, {no_text} without text")
    return dg.Output(df, metadata={
        "model": model,
        "device": str(embedder.device or "not loaded"),
        "embedded": len(df),
        "embedded_text": dg.MetadataValue.json(sources),
        "skipped_unchanged": skipped,
        "creators_without_text": no_text,
        **throughput_metadata(len(df), elapsed(), "texts"),
        "preview": preview_table(df, ["username", "text_source", "text_chars"]),
    })


@batch_check(asset=PROFILE_EMBEDDINGS,
                description="One embedding per creator, 384 finite values of unit length, a known text source.")
def profile_embeddings_valid(profile_embeddings: pd.DataFrame) -> dg.AssetCheckResult:
    vectors = profile_embeddings["embedding"]
    shape = profile_embeddings.assign(
        dims=vectors.map(len).astype("int64"),
        norm=vectors.map(lambda v: float(np.linalg.norm(v)) if np.all(np.isfinite(v)) else -1.0),
    ).drop(columns=["embedding"])
    return check_result(
        validate_frame(
            shape,
            [
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["platform", "username"]),
                gxe.ExpectColumnValuesToBeInSet(column="text_source", value_set=list(TEXT_SOURCES)),
                gxe.ExpectColumnValuesToBeBetween(column="dims", min_value=DIM, max_value=DIM),
                gxe.ExpectColumnValuesToBeBetween(column="norm", min_value=0.99, max_value=1.01),
            ],
            name="profile_embeddings",
        )
    )


def llm_skip(llm: LlmClient) -> Skip:
    if llm.configured:
        return None
    return "no LLM endpoint configured: no creator profiles are written", "set LLM_BASE_URL and LLM_MODEL (and LLM_API_KEY)"


llm_profiles_ran = stage_ran_check(LLM_PROFILES, "llm_profiles_ran", "llm", llm_skip, "the LLM endpoint is configured")

