"""Policy loaded from reviewed TOML files in `RR_CONFIG_DIR` and validated once, at start.

A typo in a policy file must stop the process with a message that names the file, the key and what
was expected — never surface later as a wrong SLA or a silently ignored rule.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from release_requests.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NotifyTarget = Literal["owner", "tam", "duty_manager", "internal_channel", "customer"]


class SamplesPolicy(_Strict):
    max_bytes: int = Field(gt=0)
    max_per_request: int = Field(default=50, gt=0)


class RequestsPolicy(_Strict):
    id_prefix: str = Field(default="RR", pattern=r"^[A-Z]{1,8}$")


class IntakePolicy(_Strict):
    samples: SamplesPolicy
    requests: RequestsPolicy = RequestsPolicy()


class Threshold(_Strict):
    at: float = Field(gt=0, lt=1, description="fraction of the response target elapsed")
    notify: list[NotifyTarget]


class SeverityPolicy(_Strict):
    name: str
    response_minutes: int = Field(gt=0)
    clock: Literal["24x7", "business"]
    thresholds: list[Threshold] = Field(default_factory=list)
    breach_notify: list[NotifyTarget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _thresholds_ascending(self) -> SeverityPolicy:
        ats = [t.at for t in self.thresholds]
        if ats != sorted(set(ats)):
            raise ValueError("thresholds must be strictly ascending by `at`")
        return self


class SeverityOverride(_Strict):
    response_minutes: int | None = Field(default=None, gt=0)
    clock: Literal["24x7", "business"] | None = None


class TierOverrides(_Strict):
    severity: dict[Literal["1", "2", "3", "4"], SeverityOverride] = Field(default_factory=dict)


class SeverityConfig(_Strict):
    severity: dict[Literal["1", "2", "3", "4"], SeverityPolicy]
    tiers: dict[Literal["enterprise", "standard"], TierOverrides] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _all_severities(self) -> SeverityConfig:
        missing = {"1", "2", "3", "4"} - set(self.severity)
        if missing:
            raise ValueError(f"severities {sorted(missing)} are not defined")
        return self

    def for_request(self, *, severity: int, tier: str) -> SeverityPolicy:
        """The policy that applies to one request: the severity's defaults with its tier's overrides."""
        base = self.severity[str(severity)]
        override = self.tiers.get(tier, TierOverrides()).severity.get(str(severity))
        if override is None:
            return base
        return base.model_copy(update=override.model_dump(exclude_none=True))


class AppConfig(_Strict):
    intake: IntakePolicy
    severity: SeverityConfig


_FILES: dict[str, type[BaseModel]] = {"intake": IntakePolicy, "severity": SeverityConfig}


def _read(path: Path, model: type[BaseModel]) -> BaseModel:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (RR_CONFIG_DIR={path.parent})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:5]:
            key = ".".join(str(p) for p in error["loc"]) or "(top level)"
            got = error.get("input")
            shown = "" if isinstance(got, dict) or error["type"] == "missing" else f", got {got!r}"
            problems.append(f"{key}: {error['msg']}{shown}")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None


def load_config(config_dir: Path) -> AppConfig:
    """Read and validate every policy file; the first problem found stops everything."""
    parts = {name: _read(config_dir / f"{name}.toml", model) for name, model in _FILES.items()}
    return AppConfig(**parts)


@lru_cache
def get_config(config_dir: Path | None = None) -> AppConfig:
    from release_requests.settings import get_settings

    return load_config(config_dir or get_settings().config_dir)
