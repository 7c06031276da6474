"""Decisions made with Slack buttons: the same rules as the API, the person behind the Slack user.

The caller (the HTTP view) has verified Slack's signature and timestamp on the raw body and parsed it into
a `BlockActions` (`notifications.slack_requests`), so its shape is known here. Here the Slack
user is mapped to a person (`people.slack_user_id`), the decision is applied by the same service the
API uses (so the same roles and state rules hold), the button press is stored in `slack_decisions`
(a replayed request — same signature — or a second press on a decided message is refused by its unique
keys), the decision is audited, and an outbox row edits the message to show who decided. Nothing is
sent to Slack from here.

Two kinds of message carry buttons (`render.BUTTONS`): a stage awaiting sign-off (Approve / Reject:
`pipeline.service.sign`) and a page (Acknowledge: `paging.service.acknowledge`, which stops the climb up
the escalation chain; a page already taken — in Slack, the CLI or the API — is a Conflict naming who took it).
"""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from release_requests.audit.service import record
from release_requests.clock import db_now
from release_requests.config import AppConfig
from release_requests.errors import Forbidden, InvalidInput
from release_requests.notifications.models import Notification, SlackDecision
from release_requests.notifications.render import BUTTONS
from release_requests.notifications.schemas import BlockActions
from release_requests.notifications.service import Recipient, queue
from release_requests.paging.service import acknowledge
from release_requests.people.models import Person
from release_requests.people.service import actor_of
from release_requests.pipeline.schemas import SignoffIn
from release_requests.pipeline.service import sign
from release_requests.requests.lifecycle import get_visible
from release_requests.requests.models import ReleaseRequest

ACTIONS = ("approve", "reject", "acknowledge")
ACKNOWLEDGED_EVENT = "page.acknowledged_in_slack"  # the page's DM, edited to say who took it


def _button(press: BlockActions) -> tuple[str, dict]:
    """(action, {"notification_id", "request_id"[, "stage"]}) of a press on one of our buttons."""
    action = press.actions[0]
    if action.action_id not in ACTIONS:
        raise InvalidInput(f"unknown Slack action '{action.action_id}'", field="actions.0.action_id")
    keys = (
        ("notification_id", "request_id")
        if action.action_id == "acknowledge"
        else ("notification_id", "request_id", "stage")
    )
    try:
        value = json.loads(action.value)
        ref = {k: str(value[k]) for k in keys}
    except (ValueError, KeyError, TypeError, RecursionError):
        raise InvalidInput("the button carries no decision reference", field="actions.0.value") from None
    return action.action_id, ref


def _decide(
    session: Session, *, person: Person, request_id: str, stage: str, approve: bool, config: AppConfig, repo_path: Path
):
    """A button is a sign-off of one stage: the same service, rules and audit as the API's approvals."""
    decision = SignoffIn(
        stage=stage,
        decision="approve" if approve else "reject",
        reason=None if approve else f"rejected in Slack by {person.name}",
    )
    sign(session, actor=person, request_id=request_id, data=decision, config=config, repo_path=repo_path, via="slack")
    return get_visible(session, actor=person, request_id=request_id)


def handle_interaction(
    session: Session, *, signature: str, press: BlockActions, config: AppConfig, repo_path: Path
) -> ReleaseRequest:
    action, ref = _button(press)
    slack_user = press.user.id
    person = session.scalar(select(Person).where(Person.slack_user_id == slack_user, Person.active.is_(True)))
    if person is None:
        raise Forbidden(f"Slack user '{slack_user}' is not linked to anyone here (people.slack_user_id)")
    asked = session.get(Notification, ref["notification_id"])
    if asked is None or action not in BUTTONS.get(asked.event, ()) or asked.request_id != ref["request_id"]:
        raise InvalidInput("the button does not belong to a decision message of this service")
    inserted = session.execute(
        insert(SlackDecision)
        .values(
            signature=signature,
            notification_id=asked.id,
            request_id=asked.request_id,
            slack_user_id=slack_user,
            person_id=person.id,
            action=action,
        )
        .on_conflict_do_nothing()
        .returning(SlackDecision.signature)
    ).scalar_one_or_none()
    if inserted is None:
        earlier = session.scalar(
            select(SlackDecision).where(SlackDecision.notification_id == asked.id, SlackDecision.person_id == person.id)
        )
        if earlier is None or earlier.signature == signature:
            raise Forbidden("this Slack request was already processed (replay refused)")
        if earlier.action == "acknowledge":
            raise Forbidden("you already acknowledged this page")
        raise Forbidden(f"you already decided this message ({earlier.action})")
    if action == "acknowledge":
        return _acknowledge(session, person=person, asked=asked, press=press, config=config)
    request = _decide(
        session,
        person=person,
        request_id=asked.request_id,
        stage=ref["stage"],
        approve=action == "approve",
        config=config,
        repo_path=repo_path,
    )
    channel, message_ts = press.channel.id, press.message_ts
    now = db_now(session)
    _record_press(
        session, person=person, asked=asked, press=press, request=request, decision=action, stage=ref["stage"]
    )
    queue(
        session,
        request_id=request.id,
        event="approval.decided",
        recipient=Recipient("internal", "slack", channel),
        context={
            "stage": ref["stage"],
            "title": request.title,
            "decision": action,
            "by": person.name,
            "decided_at": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "update_ts": message_ts,
        },
        at=now,
        key=f"{asked.id}:{person.id}",
    )
    return request


def _record_press(
    session: Session,
    *,
    person: Person,
    asked: Notification,
    press: BlockActions,
    request: ReleaseRequest,
    decision: str,
    **details: str,
) -> None:
    """The audit event of one accepted button press: who pressed what on which message, and where it left
    the request (and the stage or page it was about)."""
    record(
        session,
        actor=actor_of(person),
        action="slack.decision",
        entity_type="notification",
        entity_id=asked.id,
        request_id=request.id,
        after={
            "audience": "internal",
            **details,
            "decision": decision,
            "slack_user_id": press.user.id,
            "channel": press.channel.id,
            "message_ts": press.message_ts,
            "status": request.status,
        },
    )


def _acknowledge(
    session: Session, *, person: Person, asked: Notification, press: BlockActions, config: AppConfig
) -> ReleaseRequest:
    """The paged person takes the page from its Slack DM: the same service as `relreq page ack` and the API (the
    climb stops; the paging service hears `acknowledge`), audited as a Slack decision, and the DM edited to
    say who took it and when, without its button."""
    page = acknowledge(session, actor=person, request_id=asked.request_id, via="slack", config=config)
    request = session.get(ReleaseRequest, page.request_id)
    channel, message_ts = press.channel.id, press.message_ts
    _record_press(
        session, person=person, asked=asked, press=press, request=request, decision="acknowledge", page=page.status
    )
    queue(
        session,
        request_id=request.id,
        event=ACKNOWLEDGED_EVENT,
        recipient=Recipient("internal", "slack", channel, asked.language, person.id),
        context={
            "by": person.name,
            "severity": page.severity,
            "acknowledged_at": page.acknowledged_at.astimezone(UTC).strftime("%H:%M UTC"),
            "update_ts": message_ts,
        },
        at=page.acknowledged_at,
        key=f"{asked.id}:{person.id}",
    )
    return request
