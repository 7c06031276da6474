"""Policy loaded from reviewed TOML files in `RR_CONFIG_DIR` and validated once, at start.

A typo in a policy file must stop the process with a message that names the file, the key and what
was expected — never surface later as a wrong SLA or a silently ignored rule.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from release_requests.errors import ConfigError
from release_requests.settings import get_settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NotifyTarget = Literal["owner", "tam", "duty_manager", "internal_channel", "customer"]


class SamplesPolicy(_Strict):
    max_bytes: int = Field(gt=0)
    max_per_request: int = Field(default=50, gt=0)


class RequestsPolicy(_Strict):
    id_prefix: str = Field(default="RR", pattern=r"^[A-Z]{1,8}$")
    max_backdate_hours: int = Field(default=168, gt=0)


class EmailIntakePolicy(_Strict):
    """How a message in the support mailbox becomes a request (config/intake.toml, `[email]`)."""

    default_severity: int = Field(default=3, ge=1, le=4, description="when the subject carries no [S1]…[S4] tag")
    default_kind: Literal["false_positive", "false_negative", "private_hotfix"] = "false_positive"
    max_message_bytes: int = Field(default=41943040, gt=0, description="larger messages are held, not parsed")
    max_attachments: int = Field(default=20, gt=0, description="attachments (and archive members) taken per message")
    max_unpacked_bytes: int = Field(default=104857600, gt=0, description="one message's attachments, unpacked")
    archive_passwords: list[str] = Field(default_factory=lambda: ["infected"], max_length=10)
    require_authentication: Literal["none", "spf_or_dkim", "dmarc"] = Field(
        default="none", description="what the receiving server's Authentication-Results must say of a sender"
    )
    trusted_authserv_ids: list[str] = Field(
        default_factory=list, description="Authentication-Results read only from these servers (empty: none)"
    )
    poll_seconds: int = Field(default=60, ge=5, le=3600, description="IMAP poll interval when IDLE is not offered")
    support_phone: str = Field(min_length=3, max_length=40, description="named in the reply to unknown senders")
    portal_url: str = Field(pattern=r"^https?://", description="named in the reply to unknown senders")


class IntakePolicy(_Strict):
    samples: SamplesPolicy
    requests: RequestsPolicy = RequestsPolicy()
    email: EmailIntakePolicy


class Threshold(_Strict):
    at: float = Field(gt=0, lt=1, description="fraction of the response target elapsed")
    notify: list[NotifyTarget]


class SeverityPolicy(_Strict):
    name: str
    names: dict[str, str] = Field(default_factory=dict, description="the name in other languages, e.g. ru")
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

    def label(self, severity: int, language: str = "en") -> str:
        """'1 critical': how people read a severity everywhere (CLI tables, notices, the console)."""
        policy = self.severity[str(severity)]
        return f"{severity} {policy.names.get(language, policy.name)}"


class InternalAudience(_Strict):
    slack_channel: str = Field(min_length=1)
    email: str = Field(min_length=3)
    webhook: bool = Field(
        default=False, description="staff notices also go to the HTTPS webhook (RR_WEBHOOK_URL, RR_WEBHOOK_SECRET)"
    )


class EmailPolicy(_Strict):
    from_address: str = Field(min_length=3)
    status_url: str = Field(pattern=r"^https?://")


class DeliveryPolicy(_Strict):
    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_seconds: list[int] = Field(default_factory=lambda: [5, 30, 120, 600, 1800], min_length=1)
    lease_seconds: int = Field(default=60, ge=1, description="a claimed row not finished by then is retried")
    timeout_seconds: int = Field(default=10, ge=1, description="per Slack/SMTP call; must be well under the lease")


class QuietHoursPolicy(_Strict):
    severities: list[Literal[1, 2, 3, 4]] = Field(
        default_factory=lambda: [3, 4], description="notices a customer's quiet hours may hold back"
    )


class PagingPolicy(_Strict):
    """Who is woken up, and how fast a page climbs (config/paging.toml)."""

    severities: list[Literal[1, 2, 3, 4]] = Field(
        default_factory=lambda: [1, 2], description="severities that page when the customer's TAM is off"
    )
    ack_minutes: dict[Literal["1", "2", "3", "4"], int] = Field(
        description="minutes a page waits for an acknowledgement before the next person in the chain is paged"
    )
    head_of_support: str = Field(
        default="", max_length=254, description="the chain's last step: e-mail or id of a person (empty: none)"
    )

    @model_validator(mode="after")
    def _every_paged_severity_has_a_timeout(self) -> PagingPolicy:
        missing = sorted({str(s) for s in self.severities} - set(self.ack_minutes))
        if missing:
            raise ValueError(f"ack_minutes has no entry for paged severities {missing}")
        if any(minutes < 1 or minutes > 1440 for minutes in self.ack_minutes.values()):
            raise ValueError("ack_minutes must be between 1 and 1440")
        return self


class NotificationsPolicy(_Strict):
    internal: InternalAudience
    email: EmailPolicy
    delivery: DeliveryPolicy = DeliveryPolicy()
    quiet_hours: QuietHoursPolicy = QuietHoursPolicy()


StageName = Literal["internal", "canary", "customer", "global"]
Role = Literal["admin", "tam", "duty_manager", "triage", "build_engineer", "release_manager", "emergency"]


HOTFIX_KINDS = frozenset({"private_hotfix"})  # request kinds answered by a private hotfix build, not a base


class Pipeline(_Strict):
    kinds: list[Literal["false_positive", "false_negative", "private_hotfix"]] = Field(min_length=1)
    stages: list[StageName] = Field(min_length=1)
    channels: dict[StageName, str]

    @model_validator(mode="after")
    def _every_stage_has_a_channel(self) -> Pipeline:
        missing = [s for s in self.stages if s not in self.channels]
        if missing:
            raise ValueError(f"stages {missing} have no channel")
        if len({kind in HOTFIX_KINDS for kind in self.kinds}) > 1:
            raise ValueError("a pipeline ships either bases or private hotfixes, not both")
        return self

    @property
    def builds(self) -> Literal["base", "hotfix"]:
        """What this pipeline ships: a public antivirus base or a customer's private hotfix."""
        return "hotfix" if self.kinds[0] in HOTFIX_KINDS else "base"


class SignoffRule(_Strict):
    role: Role
    count: int = Field(default=1, ge=1, le=5)


class StagePolicy(_Strict):
    soak_minutes: int = Field(ge=0)
    requires_verification: bool = True
    signoff: list[SignoffRule] = Field(min_length=1, description="never empty: every stage needs a person")


class SeparationOfDuties(_Strict):
    forbidden: list[Literal["requester", "tam", "builder"]]
    override_roles: list[Role] = Field(default_factory=lambda: ["emergency"])


class CanaryStep(_Strict):
    percent: int = Field(gt=0, le=100)
    soak_minutes: int = Field(ge=0)


class CanaryPolicy(_Strict):
    steps: list[CanaryStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _rising_to_everyone(self) -> CanaryPolicy:
        percents = [s.percent for s in self.steps]
        if percents != sorted(set(percents)) or percents[-1] != 100:
            raise ValueError("canary steps must rise strictly and end at 100 percent")
        return self


class TelemetryPolicy(_Strict):
    max_clean_file_detections: int = Field(ge=1)
    spike_min_clients: int = Field(ge=1)
    spike_factor: float = Field(gt=1)
    rate_limit_per_client_per_minute: int = Field(ge=1)
    halt_min_clients: int = Field(ge=1, le=1000, description="distinct enrolled clients behind a halt")
    halt_min_organisations: int = Field(ge=1, le=100, description="distinct organisations behind a halt")

    @model_validator(mode="after")
    def _satisfiable(self) -> TelemetryPolicy:
        if self.halt_min_organisations > self.halt_min_clients:
            raise ValueError(
                f"halt_min_organisations ({self.halt_min_organisations}) cannot exceed halt_min_clients "
                f"({self.halt_min_clients}): every organisation counts with at least one client"
            )
        return self


class ReleaseLinePolicy(_Strict):
    """The branch of the signature repository every shared base is built from (see docs/releases.md)."""

    branch: str = Field(default="main", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")


class StagesConfig(_Strict):
    pipelines: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")], Pipeline]
    stage: dict[StageName, StagePolicy]
    severity_soak_factor: dict[Literal["1", "2", "3", "4"], float]
    separation_of_duties: SeparationOfDuties
    canary: CanaryPolicy
    telemetry: TelemetryPolicy
    release_line: ReleaseLinePolicy = Field(default_factory=ReleaseLinePolicy)

    @model_validator(mode="after")
    def _consistent(self) -> StagesConfig:
        for name, pipeline in self.pipelines.items():
            undefined = [s for s in pipeline.stages if s not in self.stage]
            if undefined:
                raise ValueError(f"pipelines.{name}: stages {undefined} have no [stage.*] policy")
            if pipeline.builds == "hotfix" and "global" in pipeline.stages:
                raise ValueError(f"pipelines.{name}: a private hotfix never goes to the global channel")
        kinds = [kind for pipeline in self.pipelines.values() for kind in pipeline.kinds]
        twice = sorted({kind for kind in kinds if kinds.count(kind) > 1})
        if twice:
            raise ValueError(f"request kinds {twice} are handled by more than one pipeline")
        return self

    def pipeline_for(self, kind: str) -> tuple[str, Pipeline]:
        return next((name, p) for name, p in self.pipelines.items() if kind in p.kinds)

    def shipping(self, builds: str) -> list[Pipeline]:
        """The pipelines that ship `builds` ("base" or "hotfix"): where a release of that kind may go."""
        return [p for p in self.pipelines.values() if p.builds == builds]

    def soak(self, *, stage: str, severity: int) -> int:
        """Minutes the previous stage must soak before `stage`, shortened by severity."""
        return round(self.stage[stage].soak_minutes * self.severity_soak_factor[str(severity)])


class AppConfig(_Strict):
    intake: IntakePolicy
    severity: SeverityConfig
    notifications: NotificationsPolicy
    stages: StagesConfig
    paging: PagingPolicy


_FILES: dict[str, type[BaseModel]] = {
    "intake": IntakePolicy,
    "severity": SeverityConfig,
    "notifications": NotificationsPolicy,
    "stages": StagesConfig,
    "paging": PagingPolicy,
}


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
    return load_config(config_dir or get_settings().config_dir)
