"""Sign-off rules, evaluated as a pure function of the sign-off events (so the rule is testable alone).

Events are folded in order: an approval counts until its author revokes it; a rejection stops the
stage; an override by an allowed role (with a written reason) stands in for whatever is missing.
People barred by separation of duties (the requester, the customer's TAMs, the builder) never count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from release_requests.config import SignoffRule


@dataclass(frozen=True)
class SignoffFact:
    person_id: int
    role: str
    action: str  # approve | reject | revoke | override
    reason: str | None = None


@dataclass(frozen=True)
class Evaluation:
    satisfied: bool
    missing: list[str] = field(default_factory=list)
    approvers: list[int] = field(default_factory=list)
    rejected_by: SignoffFact | None = None
    overridden_by: SignoffFact | None = None


def active_approvals(events: Iterable[SignoffFact]) -> dict[int, SignoffFact]:
    approvals: dict[int, SignoffFact] = {}
    for event in events:
        if event.action == "approve":
            approvals[event.person_id] = event
        elif event.action == "revoke":
            approvals.pop(event.person_id, None)
    return approvals


def evaluate(rules: Sequence[SignoffRule], events: Sequence[SignoffFact], *, barred: set[int]) -> Evaluation:
    """Is the stage signed off? Which roles are still missing?"""
    rejected = next((e for e in events if e.action == "reject"), None)
    if rejected is not None:
        return Evaluation(False, [], [], rejected_by=rejected)
    approvals = {pid: e for pid, e in active_approvals(events).items() if pid not in barred}
    missing = []
    for rule in rules:
        have = sum(1 for e in approvals.values() if e.role == rule.role)
        if have < rule.count:
            missing.append(f"{rule.count - have} × {rule.role}")
    override = next((e for e in reversed(events) if e.action == "override"), None)
    if missing and override is not None:
        return Evaluation(True, missing, sorted(approvals), overridden_by=override)
    return Evaluation(not missing, missing, sorted(approvals))
