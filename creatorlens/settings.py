"""One settings object: every environment variable the project reads is declared here.

The environment (embedded local default vs. production) is decided in exactly one place,
:meth:`Settings.is_embedded`: no ``DATABASE_URL`` means the embedded PostgreSQL under the
state folder. Nothing is read at import time; call :func:`get_settings` when you need values.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
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
    top_n_images: int = Field(default=10, ge=1)
    pdq_max_distance: int = Field(default=31, ge=0, le=256)
    pdq_min_quality: int = Field(default=50, ge=0, le=100)
    max_failure_rate: float = Field(default=0.2, ge=0.0, le=1.0)
    image_workers: int | None = Field(default=None, ge=1, description="Image fetch threads.")
    decode_workers: int | None = Field(default=None, ge=1, description="Decode + PDQ processes.")

    # ---- models ----------------------------------------------------------------------------
    model_cache_dir: Path | None = Field(
        default=None, description="Model weights cache (default state_dir/models); filled by `creatorlens models pull`."
    )
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N (forces the inference device).")
    model_backends: dict[str, str] = Field(
        default_factory=dict, description='Forced backend per family, JSON: {"person_detector": "hog"}.'
    )
    inference_batch_size: int = Field(default=16, ge=1, description="Images per inference batch.")

    # ---- tagging: taxonomy, review, calibration, vector index -----------------------------
    taxonomy_path: Path = Field(
        default=REPO_ROOT / "taxonomy" / "default.yaml", description="Tag taxonomy YAML (validated at start-up)."
    )
    tag_review_floor: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Review floor as a fraction of each tag's threshold."
    )
    tag_labels_csv: Path | None = Field(default=None, description="Labelled examples (image_key,tag,label).")
    tag_precision_floor: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Calibrate for this precision (unset: maximise F1)."
    )
    tag_min_labels: int = Field(default=3, ge=1, description="Positives and negatives a tag needs to be calibrated.")
    hnsw_m: int = Field(default=16, ge=2, le=100, description="HNSW graph degree of new vector indexes.")
    hnsw_ef_construction: int = Field(default=128, ge=4, le=1000, description="HNSW build candidate list.")
    hnsw_ef_search: int = Field(
        default=40, ge=1, le=1000, description="HNSW search candidate list (recall vs latency)."
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


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment now (never cached: tests may change the env)."""
    return Settings(**overrides)  # type: ignore[arg-type]
