"""Process settings from `RR_*` environment variables (the public contract in DESIGN.md §3)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a process needs to know about where things are; nothing here is policy (see config/)."""

    model_config = SettingsConfigDict(env_prefix="RR_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="External Postgres (postgresql+psycopg://…); embedded Postgres if unset."
    )
    data_dir: Path = Field(default=Path(".data"), description="Embedded Postgres data, samples, artifacts.")
    config_dir: Path = Field(default=Path("config"), description="Reviewed policy files (TOML).")
    api_url: str = Field(default="http://127.0.0.1:8000", description="Where CLI commands find the API.")
    token: str | None = Field(default=None, description="API token used by CLI commands.")
    sigrepo: Path | None = Field(default=None, description="Signature repository (default RR_DATA_DIR/sigrepo).")
    public_url: str | None = Field(default=None, description="Base URL used in links sent to customers.")
    slack_token: str | None = None
    slack_base_url: str | None = None
    slack_signing_secret: str | None = Field(default=None, description="Verifies Slack button presses.")
    smtp_url: str | None = None
    log_level: str = "INFO"
    prefect_port: int = Field(default=4200, description="Port of the Prefect server `relreq serve` starts.")

    @property
    def samples_dir(self) -> Path:
        return self.data_dir / "samples"

    @property
    def signature_repo(self) -> Path:
        """The git repository of signatures the pipeline fixes and builds (RR_SIGREPO)."""
        return self.sigrepo or self.data_dir / "sigrepo"

    @property
    def bundles_dir(self) -> Path:
        return self.data_dir / "bundles"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"

    @property
    def postgres_dir(self) -> Path:
        return self.data_dir / "postgres"


@lru_cache
def get_settings() -> Settings:
    return Settings()
