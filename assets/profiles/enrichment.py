"""``profiles/enriched``: the batch's creators, with empty fields filled from the profile API.

Only empty fields are filled (category, bio, name, followers, business/verified flags); a value
from a source is never overwritten. Each creator carries the fetch outcome (``enrich_status``),
which fields the API filled and when the profile was fetched. The API is optional: without a URL
template the asset passes the profiles through unchanged and says so in its metadata. Fetching
goes through the shared profile cache, so a killed run resumes and nothing is fetched twice.
"""


import time
from collections import Counter
from typing import Any

import dagster as dg
import pandas as pd

from assets.common.keys import ENRICHED_PROFILES, RAW_PROFILES
from assets.common.metadata import (
    GROUP_PROFILES,
    Skip,
    batch_asset,
    batch_check,
    check_result,
    preview_table,
    stage_ran_check,
    stopwatch,
    throughput_metadata,
)
from assets.common.promotion import CREATOR_COLUMNS
from assets.common.quality import gxe, validate_frame
from assets.profiles.filling import coverage, fill_creator
from creatorlens.fields import BIO_LIMIT, USERNAME_PATTERN
from resources.profile_api import FetchStatus, ProfileApi, ProfileResult

ENRICHED_COLUMNS = (*CREATOR_COLUMNS, "enrich_status", "enriched_fields", "enriched_at")
LOG_EVERY_S = 30
PROFILE_API_POOL = "profile_api"


def _fetch_all(context: dg.AssetExecutionContext, api: ProfileApi, usernames: list[str]) -> tuple[
        dict[str, ProfileResult], dict[str, Any]]:
    results: dict[str, ProfileResult] = {}
    last_log = time.monotonic()
    with api.open_client() as client:
        for result in client.fetch_many(usernames):
            results[result.username] = result
            if time.monotonic() - last_log > LOG_EVERY_S:
                last_log = time.monotonic()
                context.log.info(f"{len(results)}/{len(usernames)} profiles ({client.stats.fetched} fetched, "
                                 f"{client.stats.cached} from cache)")
        stats = client.stats
    return results, {
        "requests": stats.requests,
        "fetched": stats.fetched,
        "from_cache": stats.cached,
        "responses": dict(stats.responses),
        "paused_s": round(stats.paused_s, 1),
        "batch_pauses": stats.batch_pauses,
        "long_pauses": stats.long_pauses,
    }


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=list(ENRICHED_COLUMNS))
    df["followers"] = df["followers"].astype("Int64")
    for col in ("is_business", "is_verified"):
        df[col] = df[col].astype("boolean")
    df["enriched_at"] = pd.to_datetime(df["enriched_at"], utc=True)
    df["enriched_fields"] = df["enriched_fields"].map(lambda v: list(v) if v is not None else [])
    df["sources"] = df["sources"].map(lambda v: list(v) if v is not None else [])
    return df


@batch_asset(
    key=ENRICHED_PROFILES,
    ins={"raw_profiles": dg.AssetIn(key=RAW_PROFILES)},
    group_name=GROUP_PROFILES,
    kinds={"python", "pandas"},
    # One enrichment step at a time across all runs: the rate limit is per API session, not per run.
    pool=PROFILE_API_POOL,
    description="Creators with empty category/bio (and name, followers, flags) filled from the profile API; "
    "never overwrites. Coverage report before/after in the metadata.",
)
def enriched_profiles(context: dg.AssetExecutionContext, raw_profiles: pd.DataFrame,
                      profile_api: ProfileApi) -> dg.Output[pd.DataFrame]:
    rows = raw_profiles.to_dict("records")
    usernames = [r["username"] for r in rows]
    with stopwatch() as elapsed:
        if profile_api.configured:
            results, client_meta = _fetch_all(context, profile_api, usernames)
            api_state = f"configured ({profile_api.url_template.split('?')[0]})"
        else:
            results, client_meta = {}, {}
            api_state = "not configured (CREATORLENS_PROFILE_URL_TEMPLATE): profiles passed through unchanged"
        out = []
        for row in rows:
            result = results.get(row["username"])
            ok = result is not None and result.status == FetchStatus.OK
            filled_row, filled = fill_creator(row, result.profile if ok else None)
            filled_row.update(enrich_status=str(result.status) if result else None, enriched_fields=filled,
                              enriched_at=result.fetched_at if result else None)
            out.append(filled_row)
    df = _frame(out)
    report = coverage(rows, out, df["enrich_status"],
                      business_flags=[(r.profile or {}).get("is_business") for r in results.values()
                                      if r.status == FetchStatus.OK])
    filled_by_field = Counter(f for fields in df["enriched_fields"] for f in fields)
    context.log.info(f"profile API {api_state}; {report.summary()}")
    return dg.Output(
        df,
        metadata={
            "creators": len(df),
            "profile_api": api_state,
            "coverage": dg.MetadataValue.md(report.markdown()),
            "coverage_json": dg.MetadataValue.json(report.as_dict()),
            "net_profiles_gained": report.gained,
            "business_share": dg.MetadataValue.float(float(report.business_share or 0.0)),
            "fetch_outcomes": dg.MetadataValue.json(report.statuses),
            "fields_filled": dg.MetadataValue.json(dict(filled_by_field)),
            "client": dg.MetadataValue.json(client_meta),
            **throughput_metadata(len(results), elapsed(), "profiles"),
            "preview": preview_table(df[df["enriched_fields"].map(len) > 0] if filled_by_field else df,
                                     ["username", "category", "bio", "enrich_status", "enriched_fields"]),
        },
    )


@batch_check(asset=ENRICHED_PROFILES,
                description="Schema present; (platform, username) unique and valid; bio ≤ 500 chars on one line; "
                            "known fetch statuses.")
def enriched_profiles_valid(enriched_profiles: pd.DataFrame) -> dg.AssetCheckResult:
    return check_result(
        validate_frame(
            enriched_profiles,
            [
                gxe.ExpectTableColumnsToMatchSet(column_set=list(ENRICHED_COLUMNS), exact_match=False),
                gxe.ExpectColumnValuesToNotBeNull(column="username"),
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["platform", "username"]),
                gxe.ExpectColumnValuesToMatchRegex(column="username", regex=USERNAME_PATTERN),
                gxe.ExpectColumnValueLengthsToBeBetween(column="bio", max_value=BIO_LIMIT),
                gxe.ExpectColumnValuesToNotMatchRegex(column="bio", regex=r"[\r\n]"),
                gxe.ExpectColumnValuesToBeInSet(column="enrich_status", value_set=[str(s) for s in FetchStatus]),
                gxe.ExpectColumnValuesToBeBetween(column="followers", min_value=0),
            ],
            name="enriched_profiles",
        )
    )


def profile_api_skip(profile_api: ProfileApi) -> Skip:
    if profile_api.configured:
        return None
    return ("no profile API configured: creators pass through unenriched",
            "set CREATORLENS_PROFILE_URL_TEMPLATE (and CREATORLENS_PROFILE_HEADERS)")


enriched_profiles_ran = stage_ran_check(ENRICHED_PROFILES, "enriched_profiles_ran", "profile_api", profile_api_skip,
                                        "the profile API is configured")

