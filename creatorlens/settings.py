"""One settings object: every environment variable the project reads is declared here.

The environment (embedded local default vs. production) is decided in exactly one place,
:meth:`Settings.is_embedded`: no ``DATABASE_URL`` means the embedded PostgreSQL under the
state folder. Nothing is read at import time; call :func:`get_settings` when you need values.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"


class Settings(BaseSettings):
    """creatorlens configuration, read from ``CREATORLENS_*`` variables (plus a few standard names)."""

    model_config = SettingsConfigDict(env_prefix="CREATORLENS_", extra="ignore")

    state_dir: Path = Field(
        default=REPO_ROOT / ".creatorlens",
        description="Project-local state: embedded Postgres data, blobs, Parquet, DAGSTER_HOME.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "CREATORLENS_DATABASE_URL"),
        description="PostgreSQL URL; unset means an embedded server under state_dir/pgdata.",
    )
    pgdata_dir: Path | None = Field(default=None, description="Embedded Postgres data dir override.")
    dagster_home: Path | None = Field(
        default=None, validation_alias=AliasChoices("DAGSTER_HOME", "CREATORLENS_DAGSTER_HOME")
    )
    batch_size: int = Field(default=100, ge=1, validation_alias=AliasChoices("BATCH_SIZE", "CREATORLENS_BATCH_SIZE"))
    csv_dir: Path | None = Field(default=None, description="Folder of CSV exports (drop folder).")
    json_dir: Path | None = Field(default=None, description="Folder of raw JSON API dumps.")

    # ---- images stage (IngestConfig) ----------------------------------------------------------
    top_n_images: int = Field(default=10, ge=1, description="Images kept per creator, by likes + comments.")
    image_workers: int | None = Field(default=None, ge=1, description="Fetch threads (default: CPUs x 2).")
    decode_workers: int | None = Field(
        default=None, ge=1, description="Decode + PDQ processes (default: CPUs; 1 = in-process threads)."
    )
    max_image_bytes: int = Field(default=25 * 1024 * 1024, ge=1, description="Largest image file fetched.")
    max_image_pixels: int = Field(default=60_000_000, ge=1, description="Decompression-bomb cap (w x h).")
    http_timeout_s: float = Field(default=20.0, gt=0, description="Image fetch timeout.")
    thumbnail_px: int = Field(default=400, ge=16, description="Longest side of stored thumbnails.")
    pdq_max_distance: int = Field(default=31, ge=0, le=256, description="Near-duplicate Hamming threshold.")
    pdq_min_quality: int = Field(default=50, ge=0, le=100, description="PDQ quality needed to compare.")
    reel_keyframes: int = Field(
        default=3, ge=0, le=30, description="Keyframes taken from each selected video post's video file, each "
        "an image of the post (0: only the cover image).")
    max_video_bytes: int = Field(default=200 * 1024 * 1024, ge=1, description="Largest video file fetched for keyframes.")
    pdq_match_transforms: bool = Field(
        default=True, description="Also find mirrored and rotated reposts (each new image's 7 dihedral PDQ hashes): "
        "about 8x the comparison time of the plain near-duplicate search (bench/dihedral.py).")
    max_failure_rate: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Share of images whose bytes we got but could not process "
        "(decode errors) above which promotion is blocked; unreachable, expired or missing images do not count."
    )

    # ---- vision stage (VisionConfig) ----------------------------------------------------------
    vision_max_side: int = Field(default=1600, ge=64, description="Images are decoded no larger than this (longer side).")
    vision_min_image_px: int = Field(default=32, ge=1, description="Shorter side below which an image is 'too_small'.")
    vision_min_person_px: int = Field(
        default=48, ge=1, description="Person boxes with a shorter side below this are dropped."
    )
    vision_crop_margin: float = Field(default=0.1, ge=0.0, le=1.0, description="Crop = person box widened by this share.")
    vision_crop_jpeg_quality: int = Field(default=90, ge=30, le=100, description="JPEG quality of person crops.")
    vision_decode_workers: int = Field(default=4, ge=1, description="Threads decoding images ahead of the models.")
    vision_cpu_workers: int = Field(
        default=0, ge=0, description="Processes running the CPU-bound vision models (pose, segmentation, face "
        "detection, OCR), each loading them once: 0 = one per core this process may use, 1 = in the step's process."
    )
    vision_pool_min_images: int = Field(
        default=32, ge=1, description="A stage with fewer images (or crops) than this runs its CPU models in the "
        "step's process: starting the worker pool (a few seconds) would cost more than it saves."
    )
    vision_ocr_prefilter: bool = Field(
        default=True, description="Skip OCR on images with no text-like edges (a ~2 ms edge-density test on a "
        "small grey copy); their rows say no_text / prefilter_no_text_edges. false: OCR every image."
    )
    vision_face_cluster_eps: float = Field(
        default=0.55, gt=0.0, lt=2.0, description="Cosine distance within which two faces are neighbours."
    )
    vision_face_cluster_min_samples: int = Field(default=2, ge=1, description="Faces needed to start a cluster.")
    vision_max_failure_rate: float = Field(
        default=0.2, ge=0.0, le=1.0, description="Share of images a stage may fail on before promotion is blocked."
    )
    vision_object_min_confidence: float = Field(
        default=0.25, gt=0.0, le=1.0, description="Object tags (vision/objects): detections below this are dropped."
    )

    # ---- operations ---------------------------------------------------------------------------
    log_format: Literal["text", "json"] = Field(
        default="text", description="CLI and Dagster console logs: coloured text or one JSON object per line."
    )
    run_executor: Literal["in_process", "multiprocess", "k8s"] = Field(
        default="in_process",
        description="How a run executes its steps: in_process (one process, as the CLI does; runs in parallel "
                    "across batches), multiprocess (a forkserver process per step, steps of one run in parallel) "
                    "or k8s (a Kubernetes Job per step, the k8s extra; deploy/k8s).",
    )
    run_max_concurrent_steps: int = Field(default=2, ge=1, description="Steps at once per run (multiprocess only).")
    code_location: Literal["all", "cpu", "gpu"] = Field(
        default="all", description="What this code location serves (orchestration/locations.py); all = everything."
    )

    # ---- models ----------------------------------------------------------------------------
    model_cache_dir: Path | None = Field(
        default=None, description="Model weights cache (default state_dir/models); filled by `creatorlens models pull`."
    )
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N (forces the inference device) | "
                        "cuda:N,M,... (each process claims one of these; auto does so over every visible GPU, "
                        "locks in <TMPDIR>/creatorlens-gpu, see gpu_ops/devices.py).")
    model_backends: dict[str, str] = Field(
        default_factory=dict, description='Forced backend per family, JSON: {"person_detector": "hog"}.'
    )
    inference_batch_size: int = Field(default=16, ge=1, description="Images per inference batch.")
    model_weights: dict[str, str] = Field(
        default_factory=dict,
        description='Weights per family kept outside the cache, JSON: {"face_embedder": "/models/w600k_r50.onnx"}.',
    )

    # ---- profiles: profile API, MongoDB raw responses, LLM endpoint ---------------------------
    profile_url_template: str | None = Field(
        default=None, description="Profile API URL with a {username} placeholder; unset = no enrichment."
    )
    profile_headers: SecretStr | None = Field(default=None, description="Profile API headers, a JSON object.")
    profile_mapping: str | None = Field(default=None, description="Field -> dotted path overrides, JSON.")
    profile_rate_limit: float = Field(default=10.0, gt=0, description="Profile API requests per minute.")
    profile_jitter_min_s: float = Field(default=2.0, ge=0)
    profile_jitter_max_s: float = Field(default=4.0, ge=0)
    profile_batch_size: int = Field(default=100, ge=1, description="Profiles fetched between two pauses.")
    profile_batch_pause_s: float = Field(default=1800.0, ge=0)
    profile_timeout_s: float = Field(default=20.0, gt=0)
    profile_please_wait_pause_s: float = Field(default=900.0, ge=0, description="Pause after 5 'please wait' 401s.")
    profile_cache: Path | None = Field(default=None, description="Profile cache (SQLite) override.")
    mongodb_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_URL", "CREATORLENS_MONGODB_URL"),
        description="MongoDB with raw API responses; unset = no MongoDB source.",
    )
    mongodb_database: str = Field(default="creatorlens")
    mongodb_collection: str = Field(default="raw_api_responses")
    # `creatorlens fetch`: pages of posts/reels from a TikHub-like API into the JSON folder first.
    fetch_api_url: str | None = Field(
        default=None, description="Base URL of the posts/reels API for `creatorlens fetch` (e.g. https://api.tikhub.io)."
    )
    fetch_api_token: SecretStr | None = Field(default=None, description="Bearer token of the fetch API.")
    fetch_posts_endpoint: str = Field(
        default="/api/v1/instagram/web_app/fetch_user_posts_and_reels_by_username?username={username}",
        description="Posts endpoint (path + query, {username} placeholder), relative to fetch_api_url.",
    )
    fetch_posts_cursor_param: str = Field(default="pagination_token", description="Cursor parameter of the posts endpoint.")
    fetch_reels_endpoint: str = Field(
        default="/api/v1/instagram/web_app/fetch_user_reels_by_username_v3?username={username}",
        description="Reels endpoint (path + query, {username} placeholder), relative to fetch_api_url.",
    )
    fetch_reels_cursor_param: str = Field(default="max_id", description="Cursor parameter of the reels endpoint.")
    fetch_post_pages: int = Field(default=3, ge=0, description="Pages of posts fetched per user (--post-pages).")
    fetch_reel_pages: int = Field(default=1, ge=0, description="Pages of reels fetched per user (--reel-pages).")
    fetch_retries: int = Field(default=4, ge=0, description="Retries of a page on 429/5xx/network errors.")
    fetch_backoff_s: float = Field(default=2.0, ge=0, description="First retry wait when no Retry-After is given.")
    fetch_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of one page request.")
    fetch_image_workers: int = Field(default=4, ge=1, description="Images downloaded at once during a fetch.")
    csv_header_map: str | None = Field(
        default=None,
        description='CSV header aliases per field, JSON: {"username": ["IG Handle"], "followers": "Audience"} '
        "(replaces that field's default aliases; fields: username, full_name, followers, category, bio, country).",
    )
    llm_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("LLM_BASE_URL", "CREATORLENS_LLM_BASE_URL"),
        description="OpenAI-compatible base URL (ending in /v1); unset = no LLM profiles.",
    )
    llm_model: str | None = Field(default=None, validation_alias=AliasChoices("LLM_MODEL", "CREATORLENS_LLM_MODEL"))
    llm_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("LLM_API_KEY", "CREATORLENS_LLM_API_KEY")
    )
    llm_timeout_s: float = Field(default=120.0, gt=0)
    text_embed_device: str | None = Field(default=None, description="Force cpu/cuda/mps for text embeddings.")

    # ---- tagging: taxonomy, review, calibration, vector index -----------------------------
    taxonomy_path: Path = Field(
        default=REPO_ROOT / "taxonomy" / "default.yaml", description="Tag taxonomy YAML (validated at start-up)."
    )
    tag_review_floor: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Scores from this fraction of a tag's threshold up to it are queued."
    )
    tag_labels_csv: Path | None = Field(
        default=None, description="Labelled examples for calibration (image_key,tag,label)."
    )
    tag_precision_floor: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Calibrate for this precision (unset: maximise F1)."
    )
    tag_min_labels: int = Field(default=3, ge=1, description="Positives and negatives a tag needs to be calibrated.")
    tag_decode_max_side: int | None = Field(
        default=None, ge=32, description="Longest side images are decoded to for the embedder (default: 2x model input)."
    )
    tag_decode_workers: int = Field(default=4, ge=1, description="Decode threads feeding the embedder.")
    # Image embedding on a Ray cluster (the ray extra; resources/ray_cluster.py). Unset: in-process.
    ray_address: str | None = Field(
        default=None, description="Ray cluster for images/embeddings: auto, host:6379, ray://host:10001 or local; "
                                  "unset embeds in the step's own process.")
    ray_actors: int = Field(default=1, ge=1, description="Model replicas (Ray actors) embedding at once: the GPU count.")
    ray_gpus_per_actor: float = Field(default=1.0, ge=0.0, description="GPUs each replica asks Ray for (0: CPU).")
    ray_actor_resource: str | None = Field(
        default=None, description="A custom Ray resource each replica asks for instead of a GPU (e.g. a node pool).")
    hnsw_m: int = Field(default=16, ge=2, le=100, description="HNSW graph degree of new vector indexes.")
    hnsw_ef_construction: int = Field(default=128, ge=4, le=1000, description="HNSW build candidate list.")
    hnsw_ef_search: int = Field(
        default=100, ge=1, le=1000,
        description="HNSW search candidate list (recall vs latency; 100: recall@10 0.99 at 500,000 images).",
    )
    search_gin_fuzzy_limit: int = Field(
        default=5000, ge=0,
        description="The keyword search's gin_fuzzy_search_limit: a word in more posts than this is ranked on a "
                    "random subset of about this many (latency against keyword recall on very frequent words; "
                    "0: every match).",
    )

    # ---- tagging: VLM escalation, review queue order, tag history -------------------------
    vlm_base_url: str | None = Field(
        default="http://127.0.0.1:11434/v1",
        description="OpenAI-compatible vision endpoint (ending in /v1) asked about queued tags; local by default "
        "(Ollama). Empty = escalation disabled. A non-loopback host is used only with vlm_allow_remote.",
    )
    vlm_model: str | None = Field(
        default=None, description="Vision model the endpoint serves (e.g. qwen2.5vl:7b); unset = escalation disabled."
    )
    vlm_api_key: SecretStr | None = Field(default=None, description="Bearer token for a remote VLM endpoint.")
    vlm_allow_remote: bool = Field(
        default=False, description="Allow sending images to a VLM endpoint that is not on this machine (loopback)."
    )
    vlm_max_calls: int = Field(default=200, ge=0, description="VLM questions per run (budget); the rest are skipped.")
    vlm_rate_limit: str = Field(
        default="2/second", description="VLM request rate (the `limits` package's notation: '2/second', '60/minute')."
    )
    vlm_timeout_s: float = Field(default=60.0, gt=0)
    vlm_retries: int = Field(default=4, ge=0, description="Retries of a VLM question on 429/5xx/network errors.")
    vlm_image_max_side: int = Field(default=768, ge=64, description="Longest side of the image sent to the VLM.")
    review_order_clusters: int = Field(default=8, ge=1, le=64, description="Embedding clusters the review queue "
                                       "spreads its first items over.")
    tag_history_change: float = Field(
        default=0.2, gt=0.0, le=1.0, description="A creator's tag share moving more than this between two "
        "analyses is listed for review."
    )

    # ---- derived paths -------------------------------------------------------------------
    @property
    def is_embedded(self) -> bool:
        return not self.database_url

    @property
    def resolved_pgdata(self) -> Path:
        return self.pgdata_dir or self.state_dir / "pgdata"

    @property
    def resolved_dagster_home(self) -> Path:
        return self.dagster_home or self.state_dir / "dagster_home"

    @property
    def blob_root(self) -> Path:
        return self.state_dir / "blobs"

    @property
    def parquet_root(self) -> Path:
        return self.state_dir / "parquet"

    @property
    def model_cache(self) -> Path:
        return self.model_cache_dir or self.state_dir / "models"

    @property
    def sample_root(self) -> Path:
        return self.state_dir / "sample"

    @property
    def resolved_csv_dir(self) -> Path:
        return self.csv_dir or self.sample_root / "csv"

    @property
    def resolved_json_dir(self) -> Path:
        return self.json_dir or self.sample_root / "json"

    @property
    def resolved_profile_cache(self) -> Path:
        return self.profile_cache or self.state_dir / "profile_cache.sqlite"


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment now (never cached: tests may change the env)."""
    return Settings(**overrides)  # type: ignore[arg-type]


def env_secret(name: str) -> str | None:
    """A secret setting (a ``SecretStr`` field, e.g. ``llm_api_key``) read from the environment now.

    Resources call this when they open a client, so secrets never sit in resource config, which
    the Dagster UI displays.
    """
    secret = getattr(get_settings(), name)
    return secret.get_secret_value() if secret is not None else None


def knob(setting: str) -> FieldInfo:
    """A stage config field declared by the :class:`Settings` field ``setting``: the same default,
    bounds and description, so each knob is written once and read from the environment once.

    ``IngestConfig.top_n_images: int = knob("top_n_images")`` is what the Dagster UI shows and lets
    a user override per run; :meth:`FromSettings.from_settings` fills it from the environment.
    """
    declared = Settings.model_fields[setting]
    field = copy.copy(declared)
    field.validation_alias = None
    field.alias = None
    if isinstance(declared.default, Path):  # Dagster config holds plain strings
        field.default = str(declared.default)
    field.json_schema_extra = {"setting": setting}
    return field


class FromSettings:
    """Mixin for config resources whose fields are :func:`knob` s: build one from settings."""

    @classmethod
    def knobs(cls) -> dict[str, str]:
        """Config field -> the Settings field that declares it."""
        fields: dict[str, Any] = cls.model_fields  # type: ignore[attr-defined]
        return {name: (f.json_schema_extra or {})["setting"] for name, f in fields.items()
                if isinstance(f.json_schema_extra, dict) and "setting" in f.json_schema_extra}

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any):
        values = {name: getattr(settings, setting) for name, setting in cls.knobs().items()}
        values = {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}
        return cls(**{**values, **overrides})  # type: ignore[call-arg]
