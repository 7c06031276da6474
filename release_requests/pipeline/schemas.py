"""Pipeline I/O: fix inputs for builds, sign-off decisions, and the pipeline status view."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

StageName = Literal["internal", "canary", "customer", "global"]
GitSha = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{7,40}$")]


class FixInput(BaseModel):
    """How to make the fix: allowlist the request's samples (FP), an analyst's rule (FN), a ref an engineer
    already pushed to the signature repository, or commits to cherry-pick onto a product release (hotfix)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    type: Literal["allowlist", "rule", "ref", "commits"]
    rule_text: str | None = Field(default=None, max_length=200_000)
    family: str = Field(default="generic", pattern=r"^[a-z][a-z0-9_]{0,39}$")
    ref: str | None = Field(default=None, max_length=200)
    commits: list[GitSha] = Field(default_factory=list, max_length=50)
    product_version: str | None = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _complete(self) -> FixInput:
        needed = {"rule": self.rule_text, "ref": self.ref, "commits": self.commits}.get(self.type, True)
        if not needed:
            field = {"rule": "rule_text", "ref": "ref", "commits": "commits"}[self.type]
            raise ValueError(f"type '{self.type}' needs {field}")
        return self


class SignoffIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    stage: StageName
    decision: Literal["approve", "reject", "revoke", "override"] = "approve"
    reason: str | None = Field(default=None, max_length=2000)
    commit: GitSha | None = Field(
        default=None,
        description="The build commit the signer looked at (its diff). Given, the decision is refused (409) and "
        "nothing is recorded if the stage's build has changed since (a rebuild, or a rebase on a moved release "
        "line); left out, the decision applies to whatever build is waiting (Slack, the CLI).",
    )

    @model_validator(mode="after")
    def _reason_when_needed(self) -> SignoffIn:
        if self.decision in ("reject", "override") and not self.reason:
            raise ValueError(f"a {self.decision} needs a written reason")
        return self


class RevertFixIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=2000, description="Why the fix leaves the release line (audited)")


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=3, max_length=2000, description="Why this report is a different problem (audited)")


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str | None = Field(default=None, max_length=2000)


class SignoffOut(BaseModel):
    person: str
    role: str
    action: str
    reason: str | None
    via: str
    at: datetime


class StageOut(BaseModel):
    stage: str
    status: str
    channels: list[str]
    opened_at: datetime | None
    published_at: datetime | None
    signed: bool
    missing: list[str]
    soak_until: datetime | None
    signoffs: list[SignoffOut]


class BuildOut(BaseModel):
    attempt: int
    kind: str
    status: str
    fix: dict
    builder: str
    branch: str | None
    commit: str | None
    version: str | None
    passed: bool | None
    error: str | None


class PipelineOut(BaseModel):
    request_id: str
    status: str
    pipeline: str
    stages: list[str]
    build: BuildOut | None
    stage_runs: list[StageOut]
    duplicates: list[str]
