"""Every paging notice renders in both languages (StrictUndefined: a missing variable is an error) from the
context the service really queues; the paging service's summary never carries the customer's words."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from release_requests import db
from release_requests.notifications.render import LANGUAGES, render
from release_requests.paging import service as paging
from release_requests.people.models import Person
from tests.paging.conftest import with_head

TITLE = "Payroll <!channel> & <https://evil.example|click>"
EVENTS = ("page.sent", "page.pager", "page.acknowledged", "page.exhausted", "duty.nobody_on_duty")


@pytest.fixture
def queued(scene, engine) -> dict:
    """One outbox context per paging event, queued by the real service: nobody on duty (the head of support is
    paged), the page exhausted, then acknowledged."""
    head, filer = scene.person("admin"), scene.person("triage")
    config = with_head(scene.config, head.email)
    request_id = scene.file(scene.customer(), by=filer, config=config)
    sessions = db.make_sessionmaker(engine)
    paging.escalate_due(sessions, config=config, now=scene.page(request_id).escalate_at + timedelta(seconds=1))
    with db.transaction(sessions) as s:
        paging.acknowledge(s, actor=s.get(Person, head.id), request_id=request_id, via="slack", config=config)
    rows = {}
    for row in scene.rows(request_id):
        rows.setdefault(row.event, row)
    return {"request_id": request_id, "rows": rows}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_paging_notice_renders(queued, language, config):
    request_id, rows = queued["request_id"], queued["rows"]
    assert set(EVENTS) <= set(rows)
    request = {"id": request_id, "title": TITLE, "status": "submitted", "severity": 1, "kind": "false_positive"}
    sla = {"met_at": None, "paused": False, "remaining_seconds": 600, "overdue_seconds": None, "due_at_local": "soon"}
    for event in EVENTS:
        row = rows[event]
        r = render(
            notification_id=row.id,
            event=event,
            language=language,
            audience=row.audience,
            context=row.context,
            request=request,
            sla=sla,
            status_url=f"http://127.0.0.1:8000/requests/{request_id}",
            severities=config.severity,
        )
        assert request_id in r.subject and "\n" not in r.subject, event
        slack = json.dumps(r.blocks)
        assert "<!channel>" not in slack and "<!channel>" not in r.html, event  # escaped where it would act
        if event == "page.pager":  # a third party: our own summary only
            assert "Payroll" not in r.subject + r.text + r.html + slack and "evil" not in r.html + slack
            assert r.subject == r.text.strip()
        else:
            assert "&lt;!channel&gt;" in r.html, event  # the request footer names it, escaped
    sent = render(
        notification_id="n",
        event="page.sent",
        language=language,
        audience="internal",
        context=rows["page.sent"].context,
        request=request,
        sla=sla,
        status_url="http://x/",
        severities=config.severity,
    )
    assert f"relreq page ack {request_id}" in sent.text and "1 / 1" not in sent.text
    assert ("step 1 of 1" if language == "en" else "шаг 1 из 1") in sent.text
