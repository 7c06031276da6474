"""Process settings from `RR_*` environment variables (documented in docs/configuration.md)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the repository (the package is installed editable)


def default_data_dir() -> Path:
    """Where the data lives when RR_DATA_DIR is unset: one place per user, whatever the current folder.

    `$XDG_DATA_HOME/release-requests` (~/.local/share/release-requests); for root `/var/lib/release-requests`,
    because the embedded server runs as its own system user and would have to open up root's home to reach it.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/release-requests")
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "release-requests"


def default_config_dir() -> Path:
    """The reviewed policy shipped with the code (the repository's `config/`), not a folder of the cwd."""
    return SOURCE_ROOT / "config"


class Settings(BaseSettings):
    """Everything a process needs to know about where things are; nothing here is policy (see config/)."""

    model_config = SettingsConfigDict(env_prefix="RR_", extra="ignore")

    database_url: str | None = Field(
        default=None, description="External Postgres (postgresql+psycopg://…); embedded Postgres if unset."
    )
    data_dir: Path = Field(default_factory=default_data_dir, description="Postgres data, samples, artifacts.")
    config_dir: Path = Field(default_factory=default_config_dir, description="Reviewed policy files (TOML).")
    api_url: str = Field(default="http://127.0.0.1:8000", description="Where CLI commands find the API.")
    token: str | None = Field(default=None, description="API token used by CLI commands.")
    sigrepo: Path | None = Field(default=None, description="Signature repository (default RR_DATA_DIR/sigrepo).")
    update_tree_dir: Path | None = Field(
        default=None, description="Static update tree a web server serves (default RR_DATA_DIR/static)."
    )
    public_url: str | None = Field(default=None, description="Base URL used in links sent to customers.")
    slack_token: str | None = None
    slack_base_url: str | None = None
    slack_signing_secret: str | None = Field(default=None, description="Verifies Slack button presses.")
    smtp_url: str | None = None
    webhook_url: str | None = Field(
        default=None, description="Staff notices POSTed as signed JSON: https://, or http:// to a loopback address."
    )
    webhook_secret: str | None = Field(default=None, description="Shared secret of the webhook's HMAC signature.")
    imap_url: str | None = Field(
        default=None,
        description="The support mailbox read for e-mail intake: imaps://user:password@host[:port]/INBOX.",
    )
    paging_webhook_url: str | None = Field(
        default=None,
        description="Events v2 endpoint of the paging service (PagerDuty or compatible): https, or http to loopback.",
    )
    paging_routing_key: str | None = Field(
        default=None, description="The integration (routing) key sent with every Events v2 event."
    )
    log_level: str = "INFO"
    log_format: Literal["auto", "text", "json"] = Field(
        default="auto", description="Log lines: text on a terminal, JSON otherwise (auto), or forced."
    )
    web_session_hours: int = Field(
        default=12, ge=1, le=720, description="A web console session ends this long after sign-in."
    )
    web_idle_minutes: int = Field(
        default=120, ge=5, le=7 * 24 * 60, description="…or after this long without a page being loaded."
    )
    password_memory_kib: int = Field(
        default=65536, ge=19456, le=4 * 1024 * 1024, description="Memory cost of the argon2id password hash (KiB)."
    )
    prefect_port: int = Field(default=4200, description="Port of the Prefect server `relreq serve` starts.")

    @property
    def samples_dir(self) -> Path:
        return self.data_dir / "samples"

    @property
    def signature_repo(self) -> Path:
        """The git repository of signatures the pipeline fixes and builds (RR_SIGREPO)."""
        return self.sigrepo or self.data_dir / "sigrepo"

    @property
    def update_tree(self) -> Path:
        """Where public channels are written as static files for a web server or CDN (RR_UPDATE_TREE_DIR)."""
        return self.update_tree_dir or self.data_dir / "static"

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
