"""A request's timeline told as a story: one line per step a person would name ("Accepted by Tanya Smirnova
(triage): reproducible with base 2026.11.29.1"), with the notices each step sent folded into it ("Customer
told: Slack sent, e-mail sent") and dead letters said loudly.

Pure functions over `presentation.request_timeline(...)` entries: what a customer may read was decided
there (staff-only events and routing reasons are already gone, other customers' ids masked). Here nothing
new is revealed: a customer's story also leaves out assignees' names and recipients' addresses, and
nobody's mailbox is shown in an actor's name. An action this module does not know still gets a readable
line; only the dispatcher's own bookkeeping (`segment.requested`) is folded away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from release_requests.people.service import public_actor

Translate = Callable[..., str]  # rendering's `_`: (english, **params) → the reader's language


@dataclass(frozen=True)
class Delivery:
    """One kind of delivery of a step's notices, in words: 'Slack sent', 'e-mail not delivered'."""

    text: str
    dead: bool = False


@dataclass(frozen=True)
class Told:
    """Who a step's notices went to ('Customer told', 'Team told', 'Team alerted') and how each went."""

    label: str
    deliveries: tuple[Delivery, ...]

    @property
    def dead(self) -> bool:
        return any(d.dead for d in self.deliveries)


@dataclass
class _Row:
    """One outbox row as its audit events tell it (queued → sent / failed → dead …)."""

    id: str
    event: str | None
    audience: str | None
    channel: str | None
    recipient: str | None
    state: str = "queued"
    error: str | None = None


@dataclass
class Line:
    seq: int
    at: datetime
    action: str
    text: str
    detail: str | None = None  # words a person typed (a note, a question, a reason): shown escaped
    tone: str = ""  # "good" | "bad" | ""
    told: list[Told] = field(default_factory=list)
    rows: list[_Row] = field(default_factory=list, repr=False)
    alerts: list[_Row] = field(default_factory=list, repr=False)

    @property
    def loud(self) -> bool:
        """A notice of this step was not delivered (a dead letter)."""
        return any(t.dead for t in self.told)


# --------------------------------------------------------------------------------------------------
# Words


SYSTEMS = {
    "pipeline": "the pipeline",
    "routing": "routing",
    "sla_watch": "the SLA watch",
    "outbox": "the outbox",
}
CHANNELS = {"slack": "Slack", "email": "e-mail", "webhook": "webhook", "pager": "paging service"}
INTAKE = {"portal": "on the portal", "phone": "by phone", "email": "by e-mail", "tam": "through the TAM"}
STATES = {
    "queued": "queued",
    "sending": "sending",
    "sent": "sent",
    "failed": "failed, retrying",
    "skipped": "not sent: not configured here",
}


def who(actor: str, _: Translate) -> str:
    """'Tanya Smirnova <tanya@vendor.example> (triage)' → 'Tanya Smirnova (triage)'; 'system:pipeline' → 'the
    pipeline'. Nobody's mailbox is part of a story."""
    if actor.startswith("system:"):
        component = actor.removeprefix("system:")
        return _(SYSTEMS[component]) if component in SYSTEMS else component.replace("_", " ")
    return public_actor(actor)


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _attempt(value: Any, default: int) -> int:
    return value if isinstance(value, int) else default


# --------------------------------------------------------------------------------------------------
# One line per step


# What a customer reads for a stage: the vendor's channel names (and its staff-only `internal`) stay inside.
CUSTOMER_STAGES = {
    "internal": "the vendor's test machines",
    "canary": "early-adopter machines",
    "customer": "your update channel",
    "global": "every customer",
}


@dataclass
class _Reading:
    """What the story has learnt so far: the build attempt under way."""

    attempt: int = 1


def _step(entry, *, _: Translate, staff: bool, people: Mapping[int, str], state: _Reading) -> Line | None:
    action = entry.action
    after: dict = entry.after or {}
    before: dict = entry.before or {}
    by = who(entry.actor, _)
    reason = _text(entry.reason)
    kind, _sep, ident = entry.entity.partition(":")
    line = Line(seq=entry.seq, at=entry.at, action=action, text="", detail=reason)

    def stage_word(name: Any) -> str:
        """A stage as its reader knows it: staff by name, customers by whose machines it reaches."""
        if not isinstance(name, str) or not name:
            return "?"
        return name if staff else _(CUSTOMER_STAGES.get(name, name))

    def say(text: str, *, detail: str | None = reason, tone: str = "", **params: Any) -> Line:
        line.text, line.detail, line.tone = _(text, **params), detail, tone
        return line

    match action:
        case "segment.requested":
            return None  # the dispatcher's bookkeeping: the step it starts has its own line
        case "request.submitted":
            channel = after.get("channel")
            return say("Filed by {who} {channel}", who=by, channel=_(INTAKE.get(channel, channel or "?")))
        case "request.routed":
            if not staff:  # who holds it and why is the team's business
                return say("Passed to the support team", detail=None)
            if not after.get("owner"):
                return say("Nobody could take it yet: it waits in the queue")
            return say("Routed to {owner}", owner=after["owner"])
        case "request.rerouted":
            owner = people.get(after.get("owner_id")) if staff else None
            if owner:
                return say("Handed over to {owner}", owner=owner)
            return say("Handed over to another engineer")
        case "request.assigned":
            if staff and after.get("assignee"):
                return say("Assigned to {assignee} by {who}", assignee=after["assignee"], who=by)
            return say("Assigned to an engineer by {who}", who=by)
        case "sample.added":
            sha = after.get("sha256") or ident
            name = after.get("filename")
            shown = f"{name} · sha256 {sha}" if name else f"sha256 {sha}"
            if after.get("stored"):
                return say("Sample added by {who}", who=by, detail=shown)
            return say("Hash of a sample added by {who}", who=by, detail=shown)
        case "request.accepted":
            parts = [_("Accepted by {who}", who=by)]
            if before.get("severity") and after.get("severity") and before["severity"] != after["severity"]:
                parts.append(_("severity {old} → {new}", old=before["severity"], new=after["severity"]))
            assignee = people.get(after.get("assignee_id")) if staff else None
            if assignee and assignee != by:
                parts.append(_("assigned to {assignee}", assignee=assignee))
            line.text, line.tone = "; ".join(parts), "good"
            return line
        case "request.rejected":
            return say("Rejected by {who}", who=by, tone="bad")
        case "request.duplicate":
            if entry.actor.startswith("system:") and after.get("advisory_id"):
                return say("Joined the shared fix of advisory {advisory}", advisory=after["advisory_id"])
            primary = after.get("duplicate_of_id") or _("another report")
            return say("Marked as a duplicate of {primary} by {who}", primary=primary, who=by)
        case "request.needs_info":
            return say("{who} asked for information", who=by, detail=_text(after.get("question")))
        case "request.answered":
            return say("{who} answered the question", who=by, detail=_text(after.get("answer")))
        case "request.responded":
            return say("{who} responded", who=by, detail=_text(after.get("message")))
        case "request.severity_changed":
            return say(
                "Severity changed {old} → {new} by {who}",
                old=before.get("severity", "?"),
                new=after.get("severity", "?"),
                who=by,
            )
        case "request.cancelled":
            return say("Cancelled by {who}", who=by)
        case "request.closed":
            return say("Closed by {who}", who=by)
        case "request.split":
            return say("Split out of the shared build by {who}", who=by)
        case "request.advisory_opened":
            return say("Advisory {advisory} opened", advisory=after.get("advisory_id") or "?")
        case "build.opened":
            state.attempt = _attempt(after.get("attempt"), state.attempt)
            if after.get("status") == "waiting_input":
                return say("Build {attempt} waits for an engineer's fix", attempt=state.attempt)
            return say("Build {attempt} opened with an automatic fix", attempt=state.attempt)
        case "build.fix_provided":
            state.attempt = _attempt(after.get("attempt"), state.attempt)
            fix = (after.get("fix") or {}).get("type") or "?"
            return say("{who} provided the fix for build {attempt} ({fix})", who=by, attempt=state.attempt, fix=fix)
        case "build.fix_committed":
            return say("Fix committed as {commit}", commit=str(after.get("commit") or "?")[:12])
        case "build.rebase_requested":
            state.attempt = _attempt(after.get("attempt"), state.attempt)
            return say("Rebuild requested: build {attempt}", attempt=state.attempt)
        case "build.rebased":
            return say("Build rebased on the moved release line")
        case "request.building":
            state.attempt = _attempt(after.get("attempt"), state.attempt)
            if after.get("rebuild"):
                return say("Build {attempt} started again", attempt=state.attempt)
            return say("Build {attempt} started", attempt=state.attempt)
        case "request.verifying":
            built = after.get("version")
            if isinstance(built, str):
                return say("Build {attempt} built ({version}); verifying", attempt=state.attempt, version=built)
            return say("Build {attempt} built; verifying", attempt=state.attempt)
        case "release.registered":
            return say("Signed release {version} registered", version=ident)
        case "request.awaiting_approval":
            if after.get("published"):
                return say("Released to {stage}", stage=stage_word(after["published"]), tone="good")
            if after.get("refused"):
                return say(
                    "Publishing to {stage} refused; it will be rebuilt", stage=stage_word(after["refused"]), tone="bad"
                )
            if after.get("waits_for_resume"):
                if not staff:  # a shared channel's name and state are the vendor's to tell
                    return say("Waiting: the release is paused while the team checks reports", tone="bad")
                return say("Waiting: channel {channel} is halted", channel=after["waits_for_resume"], tone="bad")
            return say("Build {attempt} passed verification", attempt=state.attempt, tone="good")
        case "request.releasing":
            return say("Releasing to {stage}", stage=stage_word(after.get("stage")))
        case "request.released":
            version = after.get("version")
            if isinstance(version, str):
                return say("Released: {version}", version=version, tone="good")
            return say("Released", tone="good")
        case "request.failed":
            return say("Failed", tone="bad")
        case "signoff.approve":
            if not staff:
                return say("Approved for {stage} by {who}", stage=stage_word(after.get("stage")), who=by)
            return say("Signed off {stage} by {who}", stage=stage_word(after.get("stage")), who=by)
        case "signoff.reject":
            return say("{who} rejected {stage}", stage=stage_word(after.get("stage")), who=by, tone="bad")
        case "signoff.revoke":
            return say("{who} revoked the sign-off of {stage}", stage=stage_word(after.get("stage")), who=by)
        case "signoff.override":
            return say(
                "{who} overrode the sign-offs of {stage}", stage=stage_word(after.get("stage")), who=by, tone="bad"
            )
        case "slack.decision":
            return say("{who} decided in Slack", who=by)
        case "sla.warning":
            return say("SLA warning: {threshold} of the time used", threshold=after.get("threshold") or "?")
        case "sla.breached":
            return say("SLA breached", tone="bad")
        case "request.customer_message":
            return say("{who} wrote by e-mail", who=by, detail=_text(after.get("message")))
        case "mail.received":
            outcome = after.get("outcome") or "?"
            return say("E-mail from {sender} read: {outcome}", sender=after.get("sender") or "?", outcome=_(outcome))
        case "page.started":
            chain = ", ".join(f"{e.get('name', '?')} ({_(e.get('role', '?'))})" for e in after.get("chain") or [])
            return say("Paging: {chain}", chain=chain or _("nobody to page"))
        case "page.sent":
            return say(
                "Paged {person} ({role}), step {step} of {of}",
                person=after.get("person") or "?",
                role=_(after.get("role") or "?"),
                step=after.get("step", "?"),
                of=after.get("of", "?"),
                detail=None,
            )
        case "page.escalated":
            return say(
                "Not acknowledged in {minutes} min: paged {person} ({role})",
                minutes=after.get("unacknowledged_minutes", "?"),
                person=after.get("person") or "?",
                role=_(after.get("role") or "?"),
                tone="bad",
            )
        case "page.acknowledged":
            return say("{who} acknowledged the page", who=after.get("by") or by, tone="good")
        case "page.resolved":
            return say("The page was resolved")
        case "page.exhausted":
            return say("Nobody acknowledged the page and nobody is left to page", tone="bad")
        case "duty.nobody_on_duty":
            return say("Nobody was on duty: every duty manager was alerted", tone="bad")
        case "line.advanced":
            return say("The fix joined the release line")
        case "line.reverted":
            return say("The fix was taken off the release line", tone="bad")
        case "line.conflict":
            return say("The fix conflicts with another fix on the release line", tone="bad")
        case "line.publish_refused":
            return say("Publishing to {stage} refused", stage=stage_word(after.get("stage")), tone="bad")
        case "channel.published":
            percent = after.get("rollout_percent")
            version = after.get("version") or "?"
            if isinstance(percent, int) and percent < 100:
                return say(
                    "Channel {channel} now serves {version} to {percent}%",
                    channel=ident,
                    version=version,
                    percent=percent,
                )
            return say("Channel {channel} now serves {version}", channel=ident, version=version)
        case "channel.rollout_advanced":
            return say(
                "Rollout of {channel} advanced to {percent}%", channel=ident, percent=after.get("rollout_percent")
            )
        case "channel.halted":
            return say("Channel {channel} halted", channel=ident, tone="bad")
        case "channel.reverted":
            return say("Channel {channel} reverted", channel=ident, tone="bad")
        case "channel.resumed":
            return say("Channel {channel} resumed", channel=ident)
        case "stage.replanned":
            return say("Stage {stage} re-planned", stage=after.get("stage") or ident.rpartition(":")[2])
    # an action this story does not know yet: said plainly, never dropped
    what = action.replace(".", " ").replace("_", " ")
    return say("{what} ({who})", what=what[:1].upper() + what[1:], who=by)


# --------------------------------------------------------------------------------------------------
# Notices folded into the step that sent them


# Which step a notice belongs to (the step's action, or a prefix of it); the nearest such step just before.
HOSTS: dict[str, tuple[str, ...]] = {
    "request.received": ("request.submitted",),
    "request.triaged": ("request.accepted", "request.rejected", "request.duplicate"),
    "request.needs_info": ("request.needs_info",),
    "request.response": ("request.responded",),
    "request.closed": ("request.closed",),
    "build.started": ("request.building",),
    "verification.passed": ("request.awaiting_approval",),
    "verification.failed": ("request.failed",),
    "approval.requested": ("request.awaiting_approval", "signoff."),
    "approval.decided": ("slack.decision", "signoff."),
    "release.stage": ("channel.published", "request.releasing", "request.awaiting_approval"),
    "release.customer": ("request.releasing", "channel.published", "request.awaiting_approval"),
    "release.global": ("request.releasing", "channel.published", "request.released"),
    "release.rejected": ("request.failed", "signoff.reject"),
    "release.halted": ("request.failed", "channel.halted"),
    "release.reverted": ("channel.reverted", "line.reverted", "request.failed"),
    "signoff.override": ("signoff.override",),
    "sla.warning": ("sla.warning",),
    "sla.breach": ("sla.breached",),
    "sla.rerouted": ("request.rerouted",),
    "request.customer_message": ("request.customer_message",),
    "page.sent": ("page.sent", "page.escalated"),
    "page.pager": ("page.sent", "page.escalated", "page.acknowledged", "page.resolved"),
    "page.acknowledged": ("page.acknowledged",),
    "page.acknowledged_in_slack": ("slack.decision",),
    "page.exhausted": ("page.exhausted",),
    "duty.nobody_on_duty": ("duty.nobody_on_duty",),
}
NEARBY = 4  # a notice is queued in its step's transaction: its step is among the last few lines
DEAD_LETTER_ALERT = "notification.dead"  # the event of the alert the outbox raises about a dead letter


def _host(lines: list[Line], event: str | None) -> Line | None:
    wanted = HOSTS.get(event or "", ())
    for line in reversed(lines[-NEARBY:]):
        if line.action.startswith(wanted) and wanted:
            return line
    return lines[-1] if lines else None


def _delivery_text(row: _Row, *, staff: bool, _: Translate) -> Delivery:
    channel = _(CHANNELS.get(row.channel or "", row.channel or "?"))
    if row.state == "dead":
        if staff:
            text = _("{channel} to {recipient} not delivered", channel=channel, recipient=row.recipient or "?")
            return Delivery(f"{text}: {row.error}" if row.error else text, dead=True)
        return Delivery(_("{channel} not delivered", channel=channel), dead=True)
    return Delivery(f"{channel} {_(STATES.get(row.state, row.state))}")


def _deliveries(rows: Iterable[_Row], *, staff: bool, _: Translate) -> tuple[Delivery, ...]:
    """'Slack sent, e-mail sent ×2': the same outcome on the same medium said once, with a count."""
    counted: dict[Delivery, int] = {}
    for row in rows:
        delivery = _delivery_text(row, staff=staff, _=_)
        counted[delivery] = counted.get(delivery, 0) + 1
    return tuple(
        d if n == 1 or d.dead else Delivery(f"{d.text} ×{n}", d.dead) for d, n in sorted(counted.items(), key=_order)
    )


def _order(item: tuple[Delivery, int]) -> tuple[bool, str]:
    return (not item[0].dead, item[0].text)  # dead letters first: they are what the reader must see


def _fold(line: Line, *, staff: bool, _: Translate) -> None:
    groups = [
        ("Customer told" if staff else "You were told", [r for r in line.rows if r.audience == "customer"]),
        ("Team told", [r for r in line.rows if r.audience != "customer"]),
        ("Team alerted", line.alerts),
    ]
    line.told = [Told(_(label), _deliveries(rows, staff=staff, _=_)) for label, rows in groups if rows]


def tell(
    entries: Iterable,
    *,
    _: Translate,
    staff: bool,
    people: Mapping[int, str] | None = None,
    outbox: Mapping[str, str] | None = None,
) -> list[Line]:
    """The story of a request from its timeline entries (oldest first).

    `people` names the person ids the events carry (owners, assignees; staff stories only); `outbox` is each
    notice's current status where the reader may see the outbox (a notice skipped for want of a configured
    transport has no audit event of its own)."""
    people = people or {}
    outbox = outbox or {}
    lines: list[Line] = []
    rows: dict[str, _Row] = {}
    dead_host: Line | None = None  # the step whose notice died last: an alert about it belongs there
    reading = _Reading()
    for entry in entries:
        kind, _sep, ident = entry.entity.partition(":")
        if kind == "notification" and entry.action.startswith("notification."):
            after = entry.after or {}
            row = rows.get(ident)
            if row is None:
                row = rows[ident] = _Row(
                    ident, after.get("event"), after.get("audience"), after.get("channel"), after.get("recipient")
                )
                if row.event == DEAD_LETTER_ALERT and dead_host is not None:
                    dead_host.alerts.append(row)
                else:
                    host = _host(lines, row.event)
                    if host is None:  # a notice before any step (never in practice): a line of its own
                        host = Line(seq=entry.seq, at=entry.at, action="notification", text=_("Notice"))
                        lines.append(host)
                    host.rows.append(row)
            state = entry.action.removeprefix("notification.")
            row.state = "queued" if state == "retried" else state
            row.error = _text(after.get("error"))
            if state == "dead":
                dead_host = next((line for line in lines if row in line.rows or row in line.alerts), dead_host)
            continue
        line = _step(entry, _=_, staff=staff, people=people, state=reading)
        if line is not None:
            lines.append(line)
    for row in rows.values():
        row.state = outbox.get(row.id, row.state)  # the outbox is current; a skip or a claim is not audited
    for line in lines:
        _fold(line, staff=staff, _=_)
    return lines


def person_ids(entries: Iterable) -> set[int]:
    """The person ids the story may name (owners and assignees), for the view to look up."""
    found = set()
    for entry in entries:
        for key in ("owner_id", "assignee_id"):
            value = (entry.after or {}).get(key)
            if isinstance(value, int):
                found.add(value)
    return found
