"""The life cycle through the service with a fixed clock: each step audited with before/after, stale versions
and wrong steps refused, findings all-or-nothing, the delivered report e-mailed with its PDF."""

from __future__ import annotations

import base64
import io
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from release_requests.audit.models import AuditEvent
from release_requests.errors import Conflict, IllegalTransition, InvalidInput, StaleVersion
from release_requests.healthchecks import service
from release_requests.healthchecks.models import HealthCheckFinding
from release_requests.healthchecks.schemas import CancelIn, RescheduleIn
from release_requests.notifications.models import Notification
from release_requests.notifications.render import render
from tests.healthchecks.conftest import NOW

ON_THE_DAY = datetime(2026, 12, 14, 22, 0, tzinfo=UTC)  # 15 December 10:00 in Kamchatka
FINDINGS = [
    {
        "product": "Endpoint Agent 11",
        "area": "Scan settings",
        "setting": "Archive scanning",
        "found": "Archives are not scanned <script>alert(1)</script>",
        "severity": "low",
        "recommendation": "Enable archive scanning in the server policy",
    },
    {
        "product": "Mail Gateway",
        "area": "Updates",
        "setting": "Update source",
        "found": "Updates come from a mirror last synced in March",
        "severity": "critical",
        "recommendation": "Point the gateway at the vendor's update servers",
    },
]


def events(session, healthcheck_id: int) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "healthcheck", AuditEvent.entity_id == str(healthcheck_id))
            .order_by(AuditEvent.seq)
        )
    )


def notices(session, event: str, healthcheck_id: int) -> list[Notification]:
    """The notices of `event` about this Health Check (the shared test database holds other tests' too)."""
    rows = session.scalars(select(Notification).where(Notification.event == event))
    return [r for r in rows if f"HC-{healthcheck_id}" in (r.dedupe_key or "")]


def test_from_booking_to_the_delivered_report(scene):
    s, tam, hc = scene.session, scene.tam, scene.book(date(2026, 12, 15))
    with pytest.raises(StaleVersion, match=f"HC-{hc.id} is at version 1, you sent 7"):
        service.confirm(s, actor=tam, ref=hc.id, version=7, now=NOW)
    with pytest.raises(IllegalTransition, match="'deliver' needs it to be findings_recorded"):
        service.deliver(s, actor=tam, ref=hc.id, version=None, now=NOW, config=scene.config)
    service.confirm(s, actor=tam, ref=f"HC-{hc.id}", version=1, now=NOW)
    with pytest.raises(Conflict, match="cannot start before that day \\(today is 2026-12-01 there\\)"):
        service.start(s, actor=scene.engineer, ref=hc.id, version=None, now=NOW)
    service.start(s, actor=scene.engineer, ref=hc.id, version=2, now=ON_THE_DAY)

    bad = [FINDINGS[0], {**FINDINGS[1], "severity": "urgent"}]
    with pytest.raises(InvalidInput, match="finding row 2: severity: Input should be 'critical'") as info:
        service.record_findings(s, actor=scene.engineer, ref=hc.id, rows=bad, version=None, now=ON_THE_DAY)
    assert info.value.field == "findings[2].severity"
    assert s.scalars(select(HealthCheckFinding).where(HealthCheckFinding.healthcheck_id == hc.id)).all() == []
    assert hc.status == "in_progress"

    service.record_findings(s, actor=scene.engineer, ref=hc.id, rows=FINDINGS, version=3, now=ON_THE_DAY)
    service.deliver(s, actor=scene.engineer, ref=hc.id, version=4, now=ON_THE_DAY, config=scene.config)
    assert (hc.status, hc.version) == ("report_delivered", 5)

    trail = events(s, hc.id)
    assert [e.action for e in trail] == [
        "healthcheck.booked",
        "healthcheck.confirmed",
        "healthcheck.started",
        "healthcheck.findings_recorded",
        "healthcheck.report_delivered",
    ]
    assert [(e.before or {}).get("status") for e in trail] == [
        None,
        "booked",
        "confirmed",
        "in_progress",
        "findings_recorded",
    ]
    assert [e.after["status"] for e in trail] == [
        "booked",
        "confirmed",
        "in_progress",
        "findings_recorded",
        "report_delivered",
    ]
    assert trail[3].after["by_severity"] == {"critical": 1, "high": 0, "medium": 0, "low": 1}
    assert trail[4].actor.startswith(scene.engineer.name)

    # the customer's contact gets the report e-mail with the PDF; the TAM and the engineer are told it went
    (mail,) = notices(s, "healthcheck.report", hc.id)
    assert (mail.recipient, mail.request_id) == (scene.customer.email_contacts[0], None)
    message = render(
        notification_id=mail.id,
        event=mail.event,
        language=mail.language,
        audience=mail.audience,
        context=mail.context,
        request=None,
        sla=None,
        status_url="",
        severities=scene.config.severity,
    )
    assert message.subject == f"Health Check report HC-{hc.id}: {scene.customer.name}"
    assert "&lt;script&gt;" in message.html and "<script>" not in message.html
    assert message.html.index("Critical") < message.html.index("Low")
    (pdf,) = message.attachments
    assert pdf.filename == f"HC-{hc.id}.pdf" and pdf.content_type == "application/pdf"
    text = " ".join(" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Mail Gateway" in text and "Archives are not scanned <script>alert(1)</script>" in text
    assert base64.b64decode(mail.context["composed"]["attachments"][0]["content_base64"]) == pdf.content
    told = {n.recipient for n in notices(s, "healthcheck.delivered", hc.id)}
    assert told == {scene.tam.email, scene.engineer.email}


def test_findings_of_a_remote_audit_written_up_afterwards_and_more_later(scene):
    s, hc = scene.session, scene.book(date(2026, 12, 15))
    service.confirm(s, actor=scene.tam, ref=hc.id, version=None, now=NOW)
    with pytest.raises(Conflict, match="cannot have findings before that day"):
        service.record_findings(s, actor=scene.engineer, ref=hc.id, rows=FINDINGS, version=None, now=NOW)
    service.record_findings(s, actor=scene.engineer, ref=hc.id, rows=FINDINGS[:1], version=None, now=ON_THE_DAY)
    service.record_findings(s, actor=scene.engineer, ref=hc.id, rows=FINDINGS[1:], version=None, now=ON_THE_DAY)
    assert hc.status == "findings_recorded"
    assert [f.severity for f in service.findings(s, actor=scene.tam, ref=hc.id)] == ["low", "critical"]


def test_reschedule_and_cancel_need_a_reason_obey_the_rules_and_tell_everyone(scene, build):
    s, hc = scene.session, scene.book(date(2026, 12, 15))
    service.confirm(s, actor=scene.tam, ref=hc.id, version=None, now=NOW)
    with pytest.raises(ValueError, match="reason"):
        RescheduleIn(date=date(2026, 12, 17))
    with pytest.raises(InvalidInput, match="Saturday"):
        service.reschedule(
            s,
            actor=scene.tam,
            ref=hc.id,
            data=RescheduleIn(date=date(2026, 12, 19), reason="customer's change freeze"),
            now=NOW,
            config=scene.config,
        )
    assert hc.scheduled_on == date(2026, 12, 15)
    # the same booking is not counted against itself: its own year and its own engineer-day are free for it
    replacement = build.person("triage")
    service.reschedule(
        s,
        actor=scene.tam,
        ref=hc.id,
        data=RescheduleIn(date=date(2026, 12, 17), engineer=replacement.email, reason="customer's change freeze"),
        now=NOW,
        config=scene.config,
    )
    assert (hc.status, hc.scheduled_on, hc.engineer_id) == ("booked", date(2026, 12, 17), replacement.id)
    moved = events(s, hc.id)[-1]
    assert moved.action == "healthcheck.rescheduled" and moved.reason == "customer's change freeze"
    assert (moved.before["scheduled_on"], moved.after["scheduled_on"]) == ("2026-12-15", "2026-12-17")
    told = {n.recipient: n for n in notices(s, "healthcheck.rescheduled", hc.id)}
    assert set(told) == {scene.customer.email_contacts[0], scene.tam.email, scene.engineer.email, replacement.email}
    assert told[scene.tam.email].context["previous_when"] == "Tuesday, 15 December 2026"

    with pytest.raises(ValueError, match="reason"):
        CancelIn(reason="")
    service.cancel(s, actor=scene.tam, ref=hc.id, data=CancelIn(reason="budget"), now=NOW, config=scene.config)
    assert events(s, hc.id)[-1].reason == "budget"
    assert {n.recipient for n in notices(s, "healthcheck.cancelled", hc.id)} >= {scene.customer.email_contacts[0]}
    with pytest.raises(IllegalTransition):
        service.confirm(s, actor=scene.tam, ref=hc.id, version=None, now=NOW)
    # a cancelled Health Check leaves its certificate year free
    assert scene.book(date(2026, 12, 17)).status == "booked"


def test_a_new_engineer_may_step_in_at_short_notice_a_new_date_may_not(scene, build):
    s, hc = scene.session, scene.book(date(2026, 12, 15))
    three_days_before = datetime(2026, 12, 11, 22, 0, tzinfo=UTC)  # 12 December in Kamchatka
    stand_in = build.person("tam")
    with pytest.raises(InvalidInput, match="at least 14 days ahead"):
        service.reschedule(
            s,
            actor=scene.tam,
            ref=hc.id,
            data=RescheduleIn(date=date(2026, 12, 17), reason="engineer ill"),
            now=three_days_before,
            config=scene.config,
        )
    service.reschedule(
        s,
        actor=scene.tam,
        ref=hc.id,
        data=RescheduleIn(engineer=str(stand_in.id), reason="engineer ill"),
        now=three_days_before,
        config=scene.config,
    )
    assert (hc.scheduled_on, hc.engineer_id, hc.status) == (date(2026, 12, 15), stand_in.id, "booked")
